// GPT-2: LayerNorm with bias, learned positions, fused QKV with bias, tanh-GELU,
// classifier tied to the token embedding.
#include "models/arch/architectures.h"
#include "models/arch/layers.h"
#include "models/arch/weights.h"

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
      for (const auto* w : {&b.qkv, &b.proj, &b.up, &b.down}) add_weight(w->memory());
      for (const auto* t : {&b.ln1_w, &b.ln1_b, &b.ln2_w, &b.ln2_b}) add_weight(*t);
      blocks_.push_back(std::move(b));
    }
    if (spec.has_head) {
      output_norm_w_ = load_tensor(ckpt, "output_norm.weight", {d});
      output_norm_b_ = load_tensor(ckpt, "output_norm.bias", {d});
      add_weight(output_norm_w_);
      add_weight(output_norm_b_);
    }
    if (token_embd_.defined()) add_weight(token_embd_.memory());
    if (position_embd_.defined()) add_weight(position_embd_);
  }

  std::vector<at::Tensor> run(const StepBatch& batch, bool all_logits) override {
    const auto& c = config_;
    const int64_t hd = c.head_dim();
    at::Tensor x = batch.stacked_inputs();
    if (spec_.has_embedding) {
      const at::Tensor positions = batch.per_sequence([&](size_t s, RowRange r) {
        if (batch[s].pos + r.count > c.n_ctx)
          throw std::length_error("sequence of " + std::to_string(batch[s].pos + r.count) +
                                  " positions exceeds the context length " + std::to_string(c.n_ctx));
        return position_embd_.narrow(0, batch[s].pos, r.count);
      });
      x = token_embd_.rows(x) + positions;
    }
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const Gpt2Block& b = blocks_[i];
      // Attention: projections over all rows, cache and attention per sequence
      const RowGroups& rows = batch.groups();
      const auto qkv = b.qkv(layer_norm(x, b.ln1_w, b.ln1_b, c.norm_eps), rows).split(c.n_embd, -1);
      const at::Tensor attn = batch.per_sequence([&](size_t s, RowRange r) {
        auto heads = [&](const at::Tensor& t) { return r.of(t).view({r.count, c.n_head, hd}).transpose(0, 1); };
        auto [keys, values] = batch[s].cache->append(static_cast<int64_t>(i), batch[s].pos, heads(qkv[1]), heads(qkv[2]));
        return causal_attention(heads(qkv[0]), keys, values);
      });
      x = x + b.proj(attn, rows);
      const at::Tensor up = b.up(layer_norm(x, b.ln2_w, b.ln2_b, c.norm_eps), rows);
      x = x + b.down(batch.each_sequence(up, [](const at::Tensor& u) { return at::gelu(u, "tanh"); }), rows);
    }
    if (!spec_.has_head) return batch.split(x);
    const at::Tensor logits =
        all_logits ? token_embd_.linear(layer_norm(x, output_norm_w_, output_norm_b_, c.norm_eps), c10::nullopt,
                                        batch.groups())
                   : token_embd_.linear(layer_norm(batch.last_rows(x), output_norm_w_, output_norm_b_, c.norm_eps),
                                        c10::nullopt, batch.last_row_groups());
    return all_logits ? batch.split(logits) : batch.split_one_each(logits);
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
