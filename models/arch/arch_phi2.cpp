// Phi-2: one LayerNorm (with bias) feeds attention and the MLP side by side, whose outputs
// are added to the residual together; rotary on the first rope.dimension_count dims of each
// head in NEOX (half-split) order; tanh-GELU; a classifier with bias. Its block is also
// GPT-J's (arch_gptj.cpp: no attention biases, interleaved rotary).
#include <nlohmann/json.hpp>

#include "models/arch/architecture.h"
#include "models/arch/stage_variants.h"
#include "models/arch/weights.h"
#include "models/format/hf_shape.h"
#include "models/format/checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/format/gguf_writer.h"

namespace troupe {
namespace {

struct ParallelBlock {
  at::Tensor norm_w, norm_b;
  LinearWeight wq, wk, wv, wo;
  LinearWeight up, down;
};

class ParallelStage : public StageModel {
 public:
  ParallelStage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec, const ParallelVariant& variant)
      : StageModel(ckpt->config(), spec), rotary_(config_.rotary_dims(), config_.rope_theta, config_.n_ctx, variant.rotary) {
    const auto& c = config_;
    const int64_t d = c.n_embd, kv_dim = c.n_head_kv * c.head_dim();
    const bool bias = variant.attention_bias;
    if (spec.has_embedding || (spec.has_head && c.tied_head))
      token_embd_ = WeightMatrix(ckpt, "token_embd.weight", c.n_vocab, d);
    for (int64_t l = spec.layer_first; l <= spec.layer_last; ++l) {
      auto name = [l](const char* suffix) { return layer_tensor_name(l, suffix); };
      ParallelBlock b;
      b.norm_w = load_tensor(ckpt, name("attn_norm.weight"), {d});
      b.norm_b = load_tensor(ckpt, name("attn_norm.bias"), {d});
      b.wq = LinearWeight(ckpt, name("attn_q"), d, d, bias);
      b.wk = LinearWeight(ckpt, name("attn_k"), kv_dim, d, bias);
      b.wv = LinearWeight(ckpt, name("attn_v"), kv_dim, d, bias);
      b.wo = LinearWeight(ckpt, name("attn_output"), d, d, bias);
      b.up = LinearWeight(ckpt, name("ffn_up"), c.n_ff, d, true);
      b.down = LinearWeight(ckpt, name("ffn_down"), d, c.n_ff, true);
      for (const auto* w : {&b.wq, &b.wk, &b.wv, &b.wo, &b.up, &b.down}) add_weight(w->memory());
      add_weight(b.norm_w);
      add_weight(b.norm_b);
      blocks_.push_back(std::move(b));
    }
    if (spec.has_head) {
      output_norm_w_ = load_tensor(ckpt, "output_norm.weight", {d});
      output_norm_b_ = load_tensor(ckpt, "output_norm.bias", {d});
      output_ = c.tied_head ? token_embd_ : WeightMatrix(ckpt, "output.weight", c.n_vocab, d);
      if (!c.tied_head) add_weight(output_.memory());
      if (ckpt->has_tensor("output.bias")) output_b_ = load_tensor(ckpt, "output.bias", {c.n_vocab});
      for (const auto* t : {&output_norm_w_, &output_norm_b_, &output_b_})
        if (t->defined()) add_weight(*t);
    }
    if (token_embd_.defined()) add_weight(token_embd_.memory());
  }

  std::vector<at::Tensor> run(const StepBatch& batch, bool all_logits) override {
    const auto& c = config_;
    const int64_t hd = c.head_dim();
    at::Tensor x = spec_.has_embedding ? token_embd_.rows(batch.stacked_inputs()) : batch.stacked_inputs();
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const ParallelBlock& b = blocks_[i];
      const RowGroups& rows = batch.groups();
      const at::Tensor h = layer_norm(x, b.norm_w, b.norm_b, c.norm_eps);
      // Attention
      const at::Tensor q_all = b.wq(h, rows), k_all = b.wk(h, rows), v_all = b.wv(h, rows);
      const at::Tensor attn = batch.per_sequence([&](size_t s, RowRange r) {
        const SequenceStep& seq = batch[s];
        const at::Tensor q = rotary_.apply(r.of(q_all).reshape({r.count, c.n_head, hd}), seq.pos);
        const at::Tensor k = rotary_.apply(r.of(k_all).reshape({r.count, c.n_head_kv, hd}), seq.pos);
        const at::Tensor v = r.of(v_all).reshape({r.count, c.n_head_kv, hd});
        auto [keys, values] = seq.cache->append(static_cast<int64_t>(i), seq.pos, k.transpose(0, 1), v.transpose(0, 1));
        return causal_attention(q.transpose(0, 1), keys, values);
      });
      const at::Tensor attn_out = b.wo(attn, rows);
      // MLP, from the same normed input
      const at::Tensor up = batch.each_sequence(b.up(h, rows), gelu_tanh);
      const at::Tensor mlp_out = b.down(up, rows);
      x = attn_out + mlp_out + x;
      layer_done();
    }
    if (!spec_.has_head) return batch.split(x);
    const c10::optional<at::Tensor> bias = output_b_.defined() ? c10::optional<at::Tensor>(output_b_) : c10::nullopt;
    const at::Tensor logits =
        all_logits ? output_.linear(layer_norm(x, output_norm_w_, output_norm_b_, c.norm_eps), bias, batch.groups())
                   : output_.linear(layer_norm(batch.last_rows(x), output_norm_w_, output_norm_b_, c.norm_eps), bias,
                                    batch.last_row_groups());
    return all_logits ? batch.split(logits) : batch.split_one_each(logits);
  }

 private:
  Rotary rotary_;
  WeightMatrix token_embd_, output_;
  at::Tensor output_norm_w_, output_norm_b_, output_b_;
  std::vector<ParallelBlock> blocks_;
};

// --- what Phi-2 files say and hold ---

void read_gguf(const GgufFile& f, const std::string& p, ModelConfig& c) {
  c.norm_eps = f.get_float(p + "attention.layer_norm_epsilon", 1e-5);
  c.rope_theta = f.get_float(p + "rope.freq_base", 10000.0);
  c.n_rot = f.get_int(p + "rope.dimension_count", 0);
}

void read_hf(const nlohmann::json& cfg, const std::string& path, ModelConfig& c) {
  read_hf_llama_style_shape(cfg, path, 2048, c);
  c.norm_eps = hf_float(cfg, path, "layer_norm_eps", 1e-5);
  c.rope_theta = hf_float(cfg, path, "rope_theta", 10000.0);
  if (c.n_head > 0)
    c.n_rot = static_cast<int64_t>(hf_float(cfg, path, "partial_rotary_factor", 0.5) * static_cast<double>(c.n_embd / c.n_head));
  c.tied_head = hf_bool(cfg, path, "tie_word_embeddings", false);
  if (hf_bool(cfg, path, "qk_layernorm", false))
    throw CheckpointError(path + ": qk_layernorm is not supported (Phi-2 has none)");
}

void write_gguf(GgufWriter& w, const std::string& p, const ModelConfig& c) {
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(c.n_head_kv));
  w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(c.rotary_dims()));
  w.set_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set_f32(p + "attention.layer_norm_epsilon", static_cast<float>(c.norm_eps));
}

Architecture describe() {
  Architecture a;
  a.format.name = "phi2";
  a.format.hf_model_types = {"phi"};
  a.format.read_gguf = read_gguf;
  a.format.write_gguf = write_gguf;
  a.format.read_hf = read_hf;
  a.format.hf_layer_prefix = "model.layers.";
  a.format.hf_globals = {{"token_embd.weight", "model.embed_tokens.weight"},
                         {"output_norm.weight", "model.final_layernorm.weight"},
                         {"output_norm.bias", "model.final_layernorm.bias"},
                         {"output.weight", "lm_head.weight"},
                         {"output.bias", "lm_head.bias"}};
  a.format.hf_layer = {{"attn_norm.weight", "input_layernorm.weight"}, {"attn_norm.bias", "input_layernorm.bias"},
                       {"attn_q.weight", "self_attn.q_proj.weight"},   {"attn_q.bias", "self_attn.q_proj.bias"},
                       {"attn_k.weight", "self_attn.k_proj.weight"},   {"attn_k.bias", "self_attn.k_proj.bias"},
                       {"attn_v.weight", "self_attn.v_proj.weight"},   {"attn_v.bias", "self_attn.v_proj.bias"},
                       {"attn_output.weight", "self_attn.dense.weight"}, {"attn_output.bias", "self_attn.dense.bias"},
                       {"ffn_up.weight", "mlp.fc1.weight"},            {"ffn_up.bias", "mlp.fc1.bias"},
                       {"ffn_down.weight", "mlp.fc2.weight"},          {"ffn_down.bias", "mlp.fc2.bias"}};
  a.first_stage_tensors = {"token_embd.weight"};
  a.last_stage_tensors = {"output_norm.weight", "output_norm.bias", "output.weight", "output.bias"};
  a.matmul_params_per_layer = parallel_block_params;
  a.tensors = [](const ModelConfig& c) { return parallel_block_tensors(c, /*attention_bias=*/true); };
  ModelConfig phi2;  // microsoft/phi-2
  phi2.arch = "phi2", phi2.name = "phi2";
  phi2.n_embd = 2560, phi2.n_layer = 32, phi2.n_head = 32, phi2.n_head_kv = 32, phi2.n_ff = 10240;
  phi2.n_vocab = 51200, phi2.n_ctx = 2048, phi2.n_rot = 32, phi2.norm_eps = 1e-5;
  a.presets = {{"phi2", phi2}};
  a.make_stage = [](const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec) {
    return make_parallel_stage(ckpt, spec, ParallelVariant{true, RotaryOrder::halves});
  };
  return a;
}

}  // namespace

std::unique_ptr<StageModel> make_parallel_stage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec,
                                                const ParallelVariant& variant) {
  return std::make_unique<ParallelStage>(ckpt, spec, variant);
}

double parallel_block_params(const ModelConfig& c) {
  const double d = static_cast<double>(c.n_embd);
  const double kv = static_cast<double>(c.n_head_kv * c.head_dim());
  return d * (2 * d + 2 * kv) + 2 * d * static_cast<double>(c.n_ff);
}

std::vector<TensorShape> parallel_block_tensors(const ModelConfig& c, bool attention_bias) {
  const int64_t d = c.n_embd, kv = c.n_head_kv * c.head_dim();
  std::vector<TensorShape> t = {{"token_embd.weight", {c.n_vocab, d}, TensorShape::embedding}};
  for (int64_t l = 0; l < c.n_layer; ++l) {
    auto name = [l](const char* s) { return layer_tensor_name(l, s); };
    t.push_back({name("attn_norm.weight"), {d}, TensorShape::ones});
    t.push_back({name("attn_norm.bias"), {d}, TensorShape::zeros});
    for (const auto& [proj, rows] : {std::pair<const char*, int64_t>{"attn_q", d}, {"attn_k", kv}, {"attn_v", kv}, {"attn_output", d}}) {
      t.push_back({name((std::string(proj) + ".weight").c_str()), {rows, d}});
      if (attention_bias) t.push_back({name((std::string(proj) + ".bias").c_str()), {rows}, TensorShape::zeros});
    }
    t.push_back({name("ffn_up.weight"), {c.n_ff, d}});
    t.push_back({name("ffn_up.bias"), {c.n_ff}, TensorShape::zeros});
    t.push_back({name("ffn_down.weight"), {d, c.n_ff}});
    t.push_back({name("ffn_down.bias"), {d}, TensorShape::zeros});
  }
  t.push_back({"output_norm.weight", {d}, TensorShape::ones});
  t.push_back({"output_norm.bias", {d}, TensorShape::zeros});
  if (!c.tied_head) t.push_back({"output.weight", {c.n_vocab, d}});
  t.push_back({"output.bias", {c.n_vocab}, TensorShape::zeros});
  return t;
}

const Architecture& phi2_architecture() {
  static const Architecture a = describe();
  return a;
}

}  // namespace troupe
