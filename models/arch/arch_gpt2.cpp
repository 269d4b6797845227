// GPT-2: LayerNorm with bias, learned positions, fused QKV with bias, tanh-GELU,
// classifier tied to the token embedding.
#include <nlohmann/json.hpp>

#include "models/arch/architecture.h"
#include "models/arch/layers.h"
#include "models/arch/stage_model.h"
#include "models/arch/weights.h"
#include "models/format/checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/format/gguf_writer.h"

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
      layer_done();
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

// --- what GPT-2 files say and hold ---

void read_gguf(const GgufFile& f, const std::string& p, ModelConfig& c) {
  c.norm_eps = f.get_float(p + "attention.layer_norm_epsilon", 1e-5);
}

void write_gguf(GgufWriter& w, const std::string& p, const ModelConfig& c) {
  w.set_f32(p + "attention.layer_norm_epsilon", static_cast<float>(c.norm_eps));
}

void read_hf(const nlohmann::json& cfg, const std::string& path, ModelConfig& c) {
  c.n_embd = hf_int(cfg, path, "n_embd");
  c.n_layer = hf_int(cfg, path, "n_layer");
  c.n_head = hf_int(cfg, path, "n_head");
  c.n_head_kv = c.n_head;
  c.n_ff = hf_int(cfg, path, "n_inner", 4 * c.n_embd);
  c.n_vocab = hf_int(cfg, path, "vocab_size");
  c.n_ctx = hf_int(cfg, path, "n_positions", hf_int(cfg, path, "n_ctx", 1024));
  c.norm_eps = hf_float(cfg, path, "layer_norm_epsilon", 1e-5);
  c.tied_head = true;
}

std::vector<TensorShape> tensors(const ModelConfig& c) {
  const int64_t d = c.n_embd;
  std::vector<TensorShape> t = {{"token_embd.weight", {c.n_vocab, d}, TensorShape::embedding},
                                {"position_embd.weight", {c.n_ctx, d}, TensorShape::positions}};
  for (int64_t l = 0; l < c.n_layer; ++l) {
    auto name = [l](const char* s) { return layer_tensor_name(l, s); };
    t.push_back({name("attn_norm.weight"), {d}, TensorShape::ones});
    t.push_back({name("attn_norm.bias"), {d}, TensorShape::zeros});
    t.push_back({name("attn_qkv.weight"), {3 * d, d}});
    t.push_back({name("attn_qkv.bias"), {3 * d}, TensorShape::zeros});
    t.push_back({name("attn_output.weight"), {d, d}});
    t.push_back({name("attn_output.bias"), {d}, TensorShape::zeros});
    t.push_back({name("ffn_norm.weight"), {d}, TensorShape::ones});
    t.push_back({name("ffn_norm.bias"), {d}, TensorShape::zeros});
    t.push_back({name("ffn_up.weight"), {c.n_ff, d}});
    t.push_back({name("ffn_up.bias"), {c.n_ff}, TensorShape::zeros});
    t.push_back({name("ffn_down.weight"), {d, c.n_ff}});
    t.push_back({name("ffn_down.bias"), {d}, TensorShape::zeros});
  }
  t.push_back({"output_norm.weight", {d}, TensorShape::ones});
  t.push_back({"output_norm.bias", {d}, TensorShape::zeros});
  return t;
}

ModelConfig shape(const char* name, int64_t embd, int64_t layers, int64_t heads) {
  ModelConfig c;
  c.arch = "gpt2", c.name = name;
  c.n_embd = embd, c.n_layer = layers, c.n_head = heads, c.n_head_kv = heads, c.n_ff = 4 * embd;
  c.n_vocab = 50257, c.n_ctx = 1024, c.norm_eps = 1e-5, c.tied_head = true;
  return c;
}

Architecture describe() {
  Architecture a;
  a.format.name = "gpt2";
  a.format.hf_model_types = {"gpt2"};
  a.format.rotary = false;
  a.format.read_gguf = read_gguf;
  a.format.write_gguf = write_gguf;
  a.format.read_hf = read_hf;
  a.format.hf_layer_prefix = "h.";
  a.format.hf_optional_prefix = "transformer.";  // some GPT-2 checkpoints name everything transformer.*
  a.format.hf_globals = {{"token_embd.weight", "wte.weight"},
                         {"position_embd.weight", "wpe.weight"},
                         {"output_norm.weight", "ln_f.weight"},
                         {"output_norm.bias", "ln_f.bias"}};
  a.format.hf_layer = {{"attn_norm.weight", "ln_1.weight"},
                       {"attn_norm.bias", "ln_1.bias"},
                       {"attn_qkv.weight", "attn.c_attn.weight", HfLayout::transposed},
                       {"attn_qkv.bias", "attn.c_attn.bias"},
                       {"attn_output.weight", "attn.c_proj.weight", HfLayout::transposed},
                       {"attn_output.bias", "attn.c_proj.bias"},
                       {"ffn_norm.weight", "ln_2.weight"},
                       {"ffn_norm.bias", "ln_2.bias"},
                       {"ffn_up.weight", "mlp.c_fc.weight", HfLayout::transposed},
                       {"ffn_up.bias", "mlp.c_fc.bias"},
                       {"ffn_down.weight", "mlp.c_proj.weight", HfLayout::transposed},
                       {"ffn_down.bias", "mlp.c_proj.bias"}};
  a.first_stage_tensors = {"token_embd.weight", "position_embd.weight"};
  a.last_stage_tensors = {"output_norm.weight", "output_norm.bias"};
  a.matmul_params_per_layer = [](const ModelConfig& c) {
    const double d = static_cast<double>(c.n_embd), ff = static_cast<double>(c.n_ff);
    return 4 * d * d + 2 * d * ff;  // qkv, attn output; ffn up, down
  };
  a.tensors = tensors;
  a.presets = {{"gpt2", shape("gpt2", 768, 12, 12)}, {"gpt2-medium", shape("gpt2-medium", 1024, 24, 16)}};
  a.make_stage = [](const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec) -> std::unique_ptr<StageModel> {
    return std::make_unique<Gpt2Stage>(ckpt, spec);
  };
  return a;
}

}  // namespace

const Architecture& gpt2_architecture() {
  static const Architecture a = describe();
  return a;
}

}  // namespace troupe
