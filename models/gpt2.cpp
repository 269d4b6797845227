// GPT-2: LayerNorm with bias, learned positions, fused QKV with bias, tanh-GELU,
// classifier tied to the token embedding.
#include "models/architectures.h"
#include "models/layers.h"
#include "models/weights.h"

namespace troupe {
namespace {

struct Gpt2Block {
  at::Tensor ln1_w, ln1_b, ln2_w, ln2_b;
  LinearWeight qkv, proj, up, down;
};

class Gpt2Stage : public StageModel {
 public:
  Gpt2Stage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec)
      : StageModel(ckpt->config(), spec) {
    const auto& c = config_;
    const int64_t d = c.n_embd;
    if (spec.has_embedding || spec.has_head) token_embd_ = WeightMatrix(ckpt, "token_embd.weight", c.n_vocab, d);
    if (spec.has_embedding) position_embd_ = load_tensor(ckpt, "position_embd.weight", {c.n_ctx, d});
    for (int64_t l = spec.layer_first; l <= spec.layer_last; ++l) {
      auto name = [l](const char* suffix) { return layer_tensor_name(l, suffix); };
      Gpt2Block b;
      b.ln1_w = load_tensor(ckpt, name("attn_norm.weight"), {d});
      b.ln1_b = load_tensor(ckpt, name("attn_norm.bias"), {d});
      b.qkv = LinearWeight(ckpt, name("attn_qkv"), 3 * d, d, /*with_bias=*/true);
      b.proj = LinearWeight(ckpt, name("attn_output"), d, d, true);
      b.ln2_w = load_tensor(ckpt, name("ffn_norm.weight"), {d});
      b.ln2_b = load_tensor(ckpt, name("ffn_norm.bias"), {d});
      b.up = LinearWeight(ckpt, name("ffn_up"), c.n_ff, d, true);
      b.down = LinearWeight(ckpt, name("ffn_down"), d, c.n_ff, true);
      for (const auto* w : {&b.qkv, &b.proj, &b.up, &b.down}) weight_bytes_ += w->bytes();
      weight_bytes_ += 4 * d * sizeof(float);
      blocks_.push_back(std::move(b));
    }
    if (spec.has_head) {
      output_norm_w_ = load_tensor(ckpt, "output_norm.weight", {d});
      output_norm_b_ = load_tensor(ckpt, "output_norm.bias", {d});
      weight_bytes_ += 2 * d * sizeof(float);
    }
    if (token_embd_.defined()) weight_bytes_ += token_embd_.bytes();
    if (position_embd_.defined()) weight_bytes_ += position_embd_.numel() * sizeof(float);
  }

  at::Tensor forward(const at::Tensor& input, int64_t pos, KvCache& cache, bool all_logits) override {
    const auto& c = config_;
    at::Tensor x = input;
    if (spec_.has_embedding) {
      if (pos + input.size(0) > c.n_ctx)
        throw std::length_error("sequence of " + std::to_string(pos + input.size(0)) +
                                " positions exceeds the context length " + std::to_string(c.n_ctx));
      x = token_embd_.rows(input) + position_embd_.narrow(0, pos, input.size(0));
    }
    const int64_t T = x.size(0), hd = c.head_dim();
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const Gpt2Block& b = blocks_[i];
      const auto qkv = b.qkv(layer_norm(x, b.ln1_w, b.ln1_b, c.norm_eps)).split(c.n_embd, -1);
      const at::Tensor q = qkv[0].view({T, c.n_head, hd}).transpose(0, 1);
      const at::Tensor k = qkv[1].view({T, c.n_head, hd}).transpose(0, 1);
      const at::Tensor v = qkv[2].view({T, c.n_head, hd}).transpose(0, 1);
      auto [keys, values] = cache.append(static_cast<int64_t>(i), pos, k, v);
      x = x + b.proj(causal_attention(q, keys, values));
      x = x + b.down(at::gelu(b.up(layer_norm(x, b.ln2_w, b.ln2_b, c.norm_eps)), "tanh"));
    }
    if (!spec_.has_head) return x;
    if (!all_logits) x = x.narrow(0, T - 1, 1);
    return token_embd_.linear(layer_norm(x, output_norm_w_, output_norm_b_, c.norm_eps));
  }

 private:
  WeightMatrix token_embd_;  // also the classifier
  at::Tensor position_embd_, output_norm_w_, output_norm_b_;
  std::vector<Gpt2Block> blocks_;
};

}  // namespace

std::unique_ptr<StageModel> make_gpt2_stage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec) {
  return std::make_unique<Gpt2Stage>(ckpt, spec);
}

}  // namespace troupe
