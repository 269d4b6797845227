// LLaMA family (LLaMA-2, TinyLlama, Mistral): RMSNorm, rotary embedding on interleaved
// pairs, grouped-query attention, SwiGLU feed-forward, optional tied classifier.
#include "models/architectures.h"
#include "models/layers.h"
#include "models/weights.h"

namespace troupe {
namespace {

struct LlamaBlock {
  at::Tensor attn_norm, ffn_norm;
  LinearWeight wq, wk, wv, wo;
  LinearWeight w_gate, w_up, w_down;
};

class LlamaStage : public StageModel {
 public:
  LlamaStage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec)
      : StageModel(ckpt->config(), spec), rotary_(config_.head_dim(), config_.rope_theta, config_.n_ctx) {
    const auto& c = config_;
    const int64_t d = c.n_embd, kv_dim = c.n_head_kv * c.head_dim();
    if (spec.has_embedding || (spec.has_head && c.tied_head))
      token_embd_ = WeightMatrix(ckpt, "token_embd.weight", c.n_vocab, d);
    for (int64_t l = spec.layer_first; l <= spec.layer_last; ++l) {
      auto name = [l](const char* suffix) { return layer_tensor_name(l, suffix); };
      LlamaBlock b;
      b.attn_norm = load_tensor(ckpt, name("attn_norm.weight"), {d});
      b.wq = LinearWeight(ckpt, name("attn_q"), d, d);
      b.wk = LinearWeight(ckpt, name("attn_k"), kv_dim, d);
      b.wv = LinearWeight(ckpt, name("attn_v"), kv_dim, d);
      b.wo = LinearWeight(ckpt, name("attn_output"), d, d);
      b.ffn_norm = load_tensor(ckpt, name("ffn_norm.weight"), {d});
      b.w_gate = LinearWeight(ckpt, name("ffn_gate"), c.n_ff, d);
      b.w_up = LinearWeight(ckpt, name("ffn_up"), c.n_ff, d);
      b.w_down = LinearWeight(ckpt, name("ffn_down"), d, c.n_ff);
      for (const auto* w : {&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down}) weight_bytes_ += w->bytes();
      weight_bytes_ += 2 * d * sizeof(float);
      blocks_.push_back(std::move(b));
    }
    if (spec.has_head) {
      output_norm_ = load_tensor(ckpt, "output_norm.weight", {d});
      output_ = c.tied_head ? token_embd_ : WeightMatrix(ckpt, "output.weight", c.n_vocab, d);
      weight_bytes_ += (c.tied_head ? 0 : output_.bytes()) + d * sizeof(float);
    }
    if (token_embd_.defined()) weight_bytes_ += token_embd_.bytes();
  }

  at::Tensor forward(const at::Tensor& input, int64_t pos, KvCache& cache, bool all_logits) override {
    const auto& c = config_;
    at::Tensor x = spec_.has_embedding ? token_embd_.rows(input) : input;
    const int64_t T = x.size(0);
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const LlamaBlock& b = blocks_[i];
      // Attention
      const at::Tensor xn = rms_norm(x, b.attn_norm, c.norm_eps);
      const at::Tensor q = rotary_.apply(b.wq(xn).view({T, c.n_head, c.head_dim()}), pos);
      const at::Tensor k = rotary_.apply(b.wk(xn).view({T, c.n_head_kv, c.head_dim()}), pos);
      const at::Tensor v = b.wv(xn).view({T, c.n_head_kv, c.head_dim()});
      auto [keys, values] = cache.append(static_cast<int64_t>(i), pos, k.transpose(0, 1), v.transpose(0, 1));
      x = x + b.wo(causal_attention(q.transpose(0, 1), keys, values));
      // Feed-forward (SwiGLU)
      const at::Tensor hn = rms_norm(x, b.ffn_norm, c.norm_eps);
      x = x + b.w_down(at::silu(b.w_gate(hn)) * b.w_up(hn));
    }
    if (!spec_.has_head) return x;
    if (!all_logits) x = x.narrow(0, T - 1, 1);
    return output_.linear(rms_norm(x, output_norm_, c.norm_eps));
  }

 private:
  Rotary rotary_;
  WeightMatrix token_embd_, output_;  // the same matrix when the classifier is tied
  at::Tensor output_norm_;
  std::vector<LlamaBlock> blocks_;
};

}  // namespace

std::unique_ptr<StageModel> make_llama_stage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec) {
  return std::make_unique<LlamaStage>(ckpt, spec);
}

}  // namespace troupe
