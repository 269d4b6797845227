// Qwen2 / Qwen2.5: the LLaMA block (arch_llama.cpp) with biases on q, k and v and rotary in
// NEOX (half-split) order, which Hugging Face and GGUF both store as is.
#include <nlohmann/json.hpp>

#include "models/arch/architecture.h"
#include "models/arch/stage_variants.h"
#include "models/format/hf_shape.h"
#include "models/format/checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/format/gguf_writer.h"

namespace troupe {
namespace {

const LlamaVariant kQwen2{/*qkv_bias=*/true, /*fused_qkv=*/false, /*fused_gate_up=*/false, RotaryOrder::halves};

void read_gguf(const GgufFile& f, const std::string& p, ModelConfig& c) {
  c.norm_eps = f.get_float(p + "attention.layer_norm_rms_epsilon", 1e-6);
  c.rope_theta = f.get_float(p + "rope.freq_base", 1000000.0);
}

void write_gguf(GgufWriter& w, const std::string& p, const ModelConfig& c) {
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(c.n_head_kv));
  w.set_f32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(c.norm_eps));
  w.set_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
}

void read_hf(const nlohmann::json& cfg, const std::string& path, ModelConfig& c) {
  read_hf_llama_style_shape(cfg, path, 32768, c);
  c.norm_eps = hf_float(cfg, path, "rms_norm_eps", 1e-6);
  c.rope_theta = hf_float(cfg, path, "rope_theta", 1000000.0);
  c.tied_head = hf_bool(cfg, path, "tie_word_embeddings", false);
  if (hf_bool(cfg, path, "use_sliding_window", false)) c.sliding_window = hf_int(cfg, path, "sliding_window");
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null())
    throw CheckpointError(path + ": rope_scaling is not supported for Qwen2 (YaRN long-context variants)");
}

Architecture describe() {
  Architecture a;
  a.format.name = "qwen2";
  a.format.hf_model_types = {"qwen2"};
  a.format.read_gguf = read_gguf;
  a.format.write_gguf = write_gguf;
  a.format.read_hf = read_hf;
  a.format.hf_layer_prefix = "model.layers.";
  a.format.hf_globals = {{"token_embd.weight", "model.embed_tokens.weight"},
                         {"output_norm.weight", "model.norm.weight"},
                         {"output.weight", "lm_head.weight"}};
  a.format.hf_layer = {{"attn_norm.weight", "input_layernorm.weight"},
                       {"attn_q.weight", "self_attn.q_proj.weight"},
                       {"attn_q.bias", "self_attn.q_proj.bias"},
                       {"attn_k.weight", "self_attn.k_proj.weight"},
                       {"attn_k.bias", "self_attn.k_proj.bias"},
                       {"attn_v.weight", "self_attn.v_proj.weight"},
                       {"attn_v.bias", "self_attn.v_proj.bias"},
                       {"attn_output.weight", "self_attn.o_proj.weight"},
                       {"ffn_norm.weight", "post_attention_layernorm.weight"},
                       {"ffn_gate.weight", "mlp.gate_proj.weight"},
                       {"ffn_up.weight", "mlp.up_proj.weight"},
                       {"ffn_down.weight", "mlp.down_proj.weight"}};
  a.first_stage_tensors = {"token_embd.weight"};
  a.last_stage_tensors = {"output_norm.weight", "output.weight"};
  a.matmul_params_per_layer = sequential_block_params;
  a.tensors = [](const ModelConfig& c) { return sequential_block_tensors(c, kQwen2); };
  ModelConfig q;  // Qwen/Qwen2.5-7B
  q.arch = "qwen2", q.name = "qwen2.5-7b";
  q.n_embd = 3584, q.n_layer = 28, q.n_head = 28, q.n_head_kv = 4, q.n_ff = 18944, q.n_vocab = 152064;
  q.n_ctx = 32768, q.norm_eps = 1e-6, q.rope_theta = 1000000.0;
  a.presets = {{"qwen2.5-7b", q}};
  a.make_stage = [](const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec) {
    return make_llama_stage(ckpt, spec, kQwen2);
  };
  return a;
}

}  // namespace

const Architecture& qwen2_architecture() {
  static const Architecture a = describe();
  return a;
}

}  // namespace troupe
