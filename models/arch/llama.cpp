// LLaMA family (LLaMA-2, TinyLlama, Mistral): RMSNorm, rotary embedding on interleaved
// pairs, grouped-query attention, SwiGLU feed-forward, optional tied classifier.
#include "models/arch/architectures.h"
#include "models/arch/layers.h"
#include "models/arch/weights.h"

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
      for (const auto* w : {&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down}) add_weight(w->memory());
      add_weight(b.attn_norm);
      add_weight(b.ffn_norm);
      blocks_.push_back(std::move(b));
    }
    if (spec.has_head) {
      output_norm_ = load_tensor(ckpt, "output_norm.weight", {d});
      output_ = c.tied_head ? token_embd_ : WeightMatrix(ckpt, "output.weight", c.n_vocab, d);
      if (!c.tied_head) add_weight(output_.memory());
      add_weight(output_norm_);
    }
    if (token_embd_.defined()) add_weight(token_embd_.memory());
  }

  std::vector<at::Tensor> run(const StepBatch& batch, bool all_logits) override {
    const auto& c = config_;
    const int64_t hd = c.head_dim();
    at::Tensor x = spec_.has_embedding ? token_embd_.rows(batch.stacked_inputs()) : batch.stacked_inputs();
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const LlamaBlock& b = blocks_[i];
      // Attention: projections over all rows, positions and cache per sequence
      const at::Tensor xn = rms_norm(x, b.attn_norm, c.norm_eps);
      const RowGroups& rows = batch.groups();
      const at::Tensor q_all = b.wq(xn, rows), k_all = b.wk(xn, rows), v_all = b.wv(xn, rows);
      const at::Tensor attn = batch.per_sequence([&](size_t s, RowRange r) {
        const SequenceStep& seq = batch[s];
        const at::Tensor q = rotary_.apply(r.of(q_all).view({r.count, c.n_head, hd}), seq.pos);
        const at::Tensor k = rotary_.apply(r.of(k_all).view({r.count, c.n_head_kv, hd}), seq.pos);
        const at::Tensor v = r.of(v_all).view({r.count, c.n_head_kv, hd});
        auto [keys, values] = seq.cache->append(static_cast<int64_t>(i), seq.pos, k.transpose(0, 1), v.transpose(0, 1));
        return causal_attention(q.transpose(0, 1), keys, values);
      });
      x = x + b.wo(attn, rows);
      // Feed-forward (SwiGLU)
      const at::Tensor hn = rms_norm(x, b.ffn_norm, c.norm_eps);
      const at::Tensor gate = batch.each_sequence(b.w_gate(hn, rows), [](const at::Tensor& g) { return at::silu(g); });
      x = x + b.w_down(gate * b.w_up(hn, rows), rows);
    }
    if (!spec_.has_head) return batch.split(x);
    const at::Tensor logits =
        all_logits ? output_.linear(rms_norm(x, output_norm_, c.norm_eps), c10::nullopt, batch.groups())
                   : output_.linear(rms_norm(batch.last_rows(x), output_norm_, c.norm_eps), c10::nullopt,
                                    batch.last_row_groups());
    return all_logits ? batch.split(logits) : batch.split_one_each(logits);
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
