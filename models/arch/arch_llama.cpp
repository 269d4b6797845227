// LLaMA family (LLaMA-2, TinyLlama, Mistral, Llama-3.x): RMSNorm, rotary embedding,
// grouped-query attention, SwiGLU feed-forward, optional tied classifier. Its block is also
// Qwen2's and Phi-3's (stage_variants.h): they differ in biases, fused matrices and rotary order.
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

struct LlamaBlock {
  at::Tensor attn_norm, ffn_norm;
  LinearWeight wq, wk, wv, wqkv, wo;  // wqkv instead of wq, wk, wv when fused
  LinearWeight w_gate, w_up, w_down;  // w_up holds gate and up rows when fused
};

// The rotary table: Llama-3 scales its frequencies, by the file's rope_freqs.weight (GGUF)
// or by the config's rope_scaling (Hugging Face, or a shard written from one).
Rotary make_rotary(const std::shared_ptr<const Checkpoint>& ckpt, const ModelConfig& c, RotaryOrder order) {
  const int64_t dims = c.rotary_dims();
  at::Tensor factors;
  if (ckpt->has_tensor("rope_freqs.weight"))
    factors = load_tensor(ckpt, "rope_freqs.weight", {dims / 2});
  else if (c.rope_llama3)
    factors = llama3_rope_factors(dims, c.rope_theta, c.rope_factor, c.rope_low_freq_factor, c.rope_high_freq_factor,
                                  c.rope_original_context);
  return Rotary(dims, c.rope_theta, c.n_ctx, order, factors);
}

class LlamaStage : public StageModel {
 public:
  LlamaStage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec, const LlamaVariant& variant)
      : StageModel(ckpt->config(), spec), variant_(variant), rotary_(make_rotary(ckpt, config_, variant.rotary)) {
    const auto& c = config_;
    const int64_t d = c.n_embd, kv_dim = c.n_head_kv * c.head_dim();
    if (spec.has_embedding || (spec.has_head && c.tied_head))
      token_embd_ = WeightMatrix(ckpt, "token_embd.weight", c.n_vocab, d);
    for (int64_t l = spec.layer_first; l <= spec.layer_last; ++l) {
      auto name = [l](const char* suffix) { return layer_tensor_name(l, suffix); };
      LlamaBlock b;
      b.attn_norm = load_tensor(ckpt, name("attn_norm.weight"), {d});
      if (variant.fused_qkv) {
        b.wqkv = LinearWeight(ckpt, name("attn_qkv"), d + 2 * kv_dim, d, variant.qkv_bias);
      } else {
        b.wq = LinearWeight(ckpt, name("attn_q"), d, d, variant.qkv_bias);
        b.wk = LinearWeight(ckpt, name("attn_k"), kv_dim, d, variant.qkv_bias);
        b.wv = LinearWeight(ckpt, name("attn_v"), kv_dim, d, variant.qkv_bias);
      }
      b.wo = LinearWeight(ckpt, name("attn_output"), d, d);
      b.ffn_norm = load_tensor(ckpt, name("ffn_norm.weight"), {d});
      if (variant.fused_gate_up) {
        b.w_up = LinearWeight(ckpt, name("ffn_up"), 2 * c.n_ff, d);
      } else {
        b.w_gate = LinearWeight(ckpt, name("ffn_gate"), c.n_ff, d);
        b.w_up = LinearWeight(ckpt, name("ffn_up"), c.n_ff, d);
      }
      b.w_down = LinearWeight(ckpt, name("ffn_down"), d, c.n_ff);
      for (const auto* w : {&b.wq, &b.wk, &b.wv, &b.wqkv, &b.wo, &b.w_gate, &b.w_up, &b.w_down}) add_weight(w->memory());
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
    const int64_t hd = c.head_dim(), kv_dim = c.n_head_kv * hd;
    check_window(batch);
    at::Tensor x = spec_.has_embedding ? token_embd_.rows(batch.stacked_inputs()) : batch.stacked_inputs();
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const LlamaBlock& b = blocks_[i];
      // Attention: projections over all rows, positions and cache per sequence
      const at::Tensor xn = rms_norm(x, b.attn_norm, c.norm_eps);
      const RowGroups& rows = batch.groups();
      at::Tensor q_all, k_all, v_all;
      if (variant_.fused_qkv) {
        const at::Tensor qkv = b.wqkv(xn, rows);
        q_all = qkv.narrow(-1, 0, c.n_embd), k_all = qkv.narrow(-1, c.n_embd, kv_dim);
        v_all = qkv.narrow(-1, c.n_embd + kv_dim, kv_dim);
      } else {
        q_all = b.wq(xn, rows), k_all = b.wk(xn, rows), v_all = b.wv(xn, rows);
      }
      const at::Tensor attn = batch.per_sequence([&](size_t s, RowRange r) {
        const SequenceStep& seq = batch[s];
        const at::Tensor q = rotary_.apply(r.of(q_all).reshape({r.count, c.n_head, hd}), seq.pos);
        const at::Tensor k = rotary_.apply(r.of(k_all).reshape({r.count, c.n_head_kv, hd}), seq.pos);
        const at::Tensor v = r.of(v_all).reshape({r.count, c.n_head_kv, hd});
        auto [keys, values] = seq.cache->append(static_cast<int64_t>(i), seq.pos, k.transpose(0, 1), v.transpose(0, 1));
        return causal_attention(q.transpose(0, 1), keys, values);
      });
      x = x + b.wo(attn, rows);
      // Feed-forward (SwiGLU)
      const at::Tensor hn = rms_norm(x, b.ffn_norm, c.norm_eps);
      at::Tensor gate_in, up;
      if (variant_.fused_gate_up) {
        const at::Tensor gate_up = b.w_up(hn, rows);
        gate_in = gate_up.narrow(-1, 0, c.n_ff), up = gate_up.narrow(-1, c.n_ff, c.n_ff);
      } else {
        gate_in = b.w_gate(hn, rows), up = b.w_up(hn, rows);
      }
      const at::Tensor gate = batch.each_sequence(gate_in, [](const at::Tensor& g) { return at::silu(g); });
      x = x + b.w_down(gate * up, rows);
      layer_done();
    }
    if (!spec_.has_head) return batch.split(x);
    const at::Tensor logits =
        all_logits ? output_.linear(rms_norm(x, output_norm_, c.norm_eps), c10::nullopt, batch.groups())
                   : output_.linear(rms_norm(batch.last_rows(x), output_norm_, c.norm_eps), c10::nullopt,
                                    batch.last_row_groups());
    return all_logits ? batch.split(logits) : batch.split_one_each(logits);
  }

 private:
  // troupe does not slide the attention window (Mistral): it refuses sequences beyond it.
  void check_window(const StepBatch& batch) const {
    if (config_.sliding_window <= 0) return;
    for (size_t s = 0; s < batch.size(); ++s) {
      const int64_t end = batch[s].pos + batch.rows_of(s).count;
      if (end > config_.sliding_window)
        throw std::length_error("sequence of " + std::to_string(end) + " positions exceeds " + config_.name +
                                "'s sliding attention window of " + std::to_string(config_.sliding_window) +
                                " positions; troupe refuses contexts beyond the window");
    }
  }

  LlamaVariant variant_;
  Rotary rotary_;
  WeightMatrix token_embd_, output_;  // the same matrix when the classifier is tied
  at::Tensor output_norm_;
  std::vector<LlamaBlock> blocks_;
};

// --- what LLaMA files say and hold ---

void read_gguf(const GgufFile& f, const std::string& p, ModelConfig& c) {
  c.norm_eps = f.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5);
  c.rope_theta = f.get_float(p + "rope.freq_base", 10000.0);
  c.n_rot = f.get_int(p + "rope.dimension_count", 0);
  c.sliding_window = f.get_int(p + "attention.sliding_window", 0);
  if (f.get_string(p + "rope.scaling.type", "") == "llama3") {  // written by troupe for Llama-3 from HF
    c.rope_llama3 = true;
    c.rope_factor = f.get_float(p + "rope.scaling.factor", c.rope_factor);
    c.rope_low_freq_factor = f.get_float(p + "rope.scaling.low_freq_factor", c.rope_low_freq_factor);
    c.rope_high_freq_factor = f.get_float(p + "rope.scaling.high_freq_factor", c.rope_high_freq_factor);
    c.rope_original_context = f.get_int(p + "rope.scaling.original_context_length", c.rope_original_context);
  }
}

void write_gguf(GgufWriter& w, const std::string& p, const ModelConfig& c) {
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(c.n_head_kv));
  w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(c.rotary_dims()));
  w.set_f32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(c.norm_eps));
  w.set_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
  if (c.sliding_window > 0) w.set_u32(p + "attention.sliding_window", static_cast<uint32_t>(c.sliding_window));
  if (c.rope_llama3) {
    w.set_string(p + "rope.scaling.type", "llama3");
    w.set_f32(p + "rope.scaling.factor", static_cast<float>(c.rope_factor));
    w.set_f32(p + "rope.scaling.low_freq_factor", static_cast<float>(c.rope_low_freq_factor));
    w.set_f32(p + "rope.scaling.high_freq_factor", static_cast<float>(c.rope_high_freq_factor));
    w.set_u32(p + "rope.scaling.original_context_length", static_cast<uint32_t>(c.rope_original_context));
  }
}

void read_hf(const nlohmann::json& cfg, const std::string& path, ModelConfig& c) {
  read_hf_llama_style_shape(cfg, path, 2048, c);
  c.norm_eps = hf_float(cfg, path, "rms_norm_eps", 1e-6);
  c.rope_theta = hf_float(cfg, path, "rope_theta", 10000.0);
  c.tied_head = hf_bool(cfg, path, "tie_word_embeddings", false);
  if (c.n_head > 0 && hf_int(cfg, path, "head_dim", c.n_embd / c.n_head) != c.n_embd / c.n_head)
    throw CheckpointError(path + ": head_dim differs from hidden_size / num_attention_heads, which troupe does not support");
  if (cfg.contains("sliding_window") && cfg["sliding_window"].is_number_integer())
    c.sliding_window = cfg["sliding_window"].get<int64_t>();
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null()) {
    const auto& s = cfg["rope_scaling"];
    const std::string type = s.value("rope_type", s.value("type", ""));
    if (type != "llama3")
      throw CheckpointError(path + ": rope_scaling type '" + type + "' is not supported (supported: llama3)");
    c.rope_llama3 = true;
    c.rope_factor = hf_float(s, path, "factor", 8.0);
    c.rope_low_freq_factor = hf_float(s, path, "low_freq_factor", 1.0);
    c.rope_high_freq_factor = hf_float(s, path, "high_freq_factor", 4.0);
    c.rope_original_context = hf_int(s, path, "original_max_position_embeddings", 8192);
  }
}

ModelConfig shape(const char* name, int64_t embd, int64_t layers, int64_t heads, int64_t heads_kv, int64_t ff,
                  int64_t vocab, int64_t ctx, double theta = 10000.0) {
  ModelConfig c;
  c.arch = "llama", c.name = name;
  c.n_embd = embd, c.n_layer = layers, c.n_head = heads, c.n_head_kv = heads_kv, c.n_ff = ff, c.n_vocab = vocab;
  c.n_ctx = ctx, c.norm_eps = 1e-5, c.rope_theta = theta;
  return c;
}

Architecture describe() {
  Architecture a;
  a.format.name = "llama";
  a.format.gguf_aliases = {"mistral"};
  a.format.hf_model_types = {"llama", "mistral"};
  a.format.read_gguf = read_gguf;
  a.format.write_gguf = write_gguf;
  a.format.read_hf = read_hf;
  a.format.hf_layer_prefix = "model.layers.";
  a.format.hf_globals = {{"token_embd.weight", "model.embed_tokens.weight"},
                         {"output_norm.weight", "model.norm.weight"},
                         {"output.weight", "lm_head.weight"}};
  a.format.hf_layer = {{"attn_norm.weight", "input_layernorm.weight"},
                       {"attn_q.weight", "self_attn.q_proj.weight", HfLayout::rotary_halves},
                       {"attn_k.weight", "self_attn.k_proj.weight", HfLayout::rotary_halves},
                       {"attn_v.weight", "self_attn.v_proj.weight"},
                       {"attn_output.weight", "self_attn.o_proj.weight"},
                       {"ffn_norm.weight", "post_attention_layernorm.weight"},
                       {"ffn_gate.weight", "mlp.gate_proj.weight"},
                       {"ffn_up.weight", "mlp.up_proj.weight"},
                       {"ffn_down.weight", "mlp.down_proj.weight"}};
  a.first_stage_tensors = {"token_embd.weight"};
  a.last_stage_tensors = {"output_norm.weight", "output.weight"};
  a.matmul_params_per_layer = sequential_block_params;
  a.tensors = [](const ModelConfig& c) { return sequential_block_tensors(c, LlamaVariant{}); };
  a.presets = {{"tinyllama", shape("tinyllama", 2048, 22, 32, 4, 5632, 32000, 2048)},
               {"llama2-7b", shape("llama2-7b", 4096, 32, 32, 32, 11008, 32000, 4096)},
               {"llama3-8b", shape("llama3-8b", 4096, 32, 32, 8, 14336, 128256, 8192, 500000.0)},
               {"mistral-7b", shape("mistral-7b", 4096, 32, 32, 8, 14336, 32000, 32768)}};
  a.presets["mistral-7b"].sliding_window = 4096;
  a.make_stage = [](const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec) {
    return make_llama_stage(ckpt, spec, LlamaVariant{});
  };
  return a;
}

}  // namespace

std::unique_ptr<StageModel> make_llama_stage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec,
                                             const LlamaVariant& variant) {
  return std::make_unique<LlamaStage>(ckpt, spec, variant);
}

double sequential_block_params(const ModelConfig& c) {
  const double d = static_cast<double>(c.n_embd);
  const double kv = static_cast<double>(c.n_head_kv * c.head_dim());
  return d * (2 * d + 2 * kv) + 3 * d * static_cast<double>(c.n_ff);
}

std::vector<TensorShape> sequential_block_tensors(const ModelConfig& c, const LlamaVariant& v) {
  const int64_t d = c.n_embd, kv = c.n_head_kv * c.head_dim();
  std::vector<TensorShape> t = {{"token_embd.weight", {c.n_vocab, d}, TensorShape::embedding}};
  for (int64_t l = 0; l < c.n_layer; ++l) {
    auto name = [l](const std::string& s) { return layer_tensor_name(l, s); };
    t.push_back({name("attn_norm.weight"), {d}, TensorShape::ones});
    const std::vector<std::pair<std::string, int64_t>> projections =
        v.fused_qkv ? std::vector<std::pair<std::string, int64_t>>{{"attn_qkv", d + 2 * kv}}
                    : std::vector<std::pair<std::string, int64_t>>{{"attn_q", d}, {"attn_k", kv}, {"attn_v", kv}};
    for (const auto& [proj, rows] : projections) {
      t.push_back({name(proj + ".weight"), {rows, d}});
      if (v.qkv_bias) t.push_back({name(proj + ".bias"), {rows}, TensorShape::zeros});
    }
    t.push_back({name("attn_output.weight"), {d, d}});
    t.push_back({name("ffn_norm.weight"), {d}, TensorShape::ones});
    if (v.fused_gate_up) {
      t.push_back({name("ffn_up.weight"), {2 * c.n_ff, d}});
    } else {
      t.push_back({name("ffn_gate.weight"), {c.n_ff, d}});
      t.push_back({name("ffn_up.weight"), {c.n_ff, d}});
    }
    t.push_back({name("ffn_down.weight"), {d, c.n_ff}});
  }
  t.push_back({"output_norm.weight", {d}, TensorShape::ones});
  if (!c.tied_head) t.push_back({"output.weight", {c.n_vocab, d}});
  return t;
}

const Architecture& llama_architecture() {
  static const Architecture a = describe();
  return a;
}

}  // namespace troupe
