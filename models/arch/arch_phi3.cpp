// Phi-3: the LLaMA block (arch_llama.cpp) with q, k, v in one matrix (attn_qkv: q rows,
// then k, then v), gate and up in one matrix (ffn_up: gate rows first), rotary in NEOX
// (half-split) order. Hugging Face Phi3ForCausalLM, GGUF arch `phi3`.
#include <nlohmann/json.hpp>

#include "models/arch/architecture.h"
#include "models/arch/stage_variants.h"
#include "models/format/hf_shape.h"
#include "models/format/checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/format/gguf_writer.h"

namespace troupe {
namespace {

const LlamaVariant kPhi3{/*qkv_bias=*/false, /*fused_qkv=*/true, /*fused_gate_up=*/true, RotaryOrder::halves};

void read_gguf(const GgufFile& f, const std::string& p, ModelConfig& c) {
  c.norm_eps = f.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5);
  c.rope_theta = f.get_float(p + "rope.freq_base", 10000.0);
  c.n_rot = f.get_int(p + "rope.dimension_count", 0);
  c.sliding_window = f.get_int(p + "attention.sliding_window", 0);
  if (f.find_tensor("rope_factors_long.weight"))
    throw CheckpointError(f.path() + ": Phi-3 long-context rope factors (128k variants) are not supported");
}

void write_gguf(GgufWriter& w, const std::string& p, const ModelConfig& c) {
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(c.n_head_kv));
  w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(c.rotary_dims()));
  w.set_f32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(c.norm_eps));
  w.set_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
  if (c.sliding_window > 0) w.set_u32(p + "attention.sliding_window", static_cast<uint32_t>(c.sliding_window));
}

void read_hf(const nlohmann::json& cfg, const std::string& path, ModelConfig& c) {
  read_hf_llama_style_shape(cfg, path, 4096, c);
  c.norm_eps = hf_float(cfg, path, "rms_norm_eps", 1e-5);
  c.rope_theta = hf_float(cfg, path, "rope_theta", 10000.0);
  c.tied_head = hf_bool(cfg, path, "tie_word_embeddings", false);
  if (cfg.contains("sliding_window") && cfg["sliding_window"].is_number_integer())
    c.sliding_window = cfg["sliding_window"].get<int64_t>();
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null())
    throw CheckpointError(path + ": rope_scaling is not supported for Phi-3 (the 128k long-rope variants)");
}

Architecture describe() {
  Architecture a;
  a.format.name = "phi3";
  a.format.hf_model_types = {"phi3"};
  a.format.read_gguf = read_gguf;
  a.format.write_gguf = write_gguf;
  a.format.read_hf = read_hf;
  a.format.hf_layer_prefix = "model.layers.";
  a.format.hf_globals = {{"token_embd.weight", "model.embed_tokens.weight"},
                         {"output_norm.weight", "model.norm.weight"},
                         {"output.weight", "lm_head.weight"}};
  a.format.hf_layer = {{"attn_norm.weight", "input_layernorm.weight"},
                       {"attn_qkv.weight", "self_attn.qkv_proj.weight"},
                       {"attn_output.weight", "self_attn.o_proj.weight"},
                       {"ffn_norm.weight", "post_attention_layernorm.weight"},
                       {"ffn_up.weight", "mlp.gate_up_proj.weight"},
                       {"ffn_down.weight", "mlp.down_proj.weight"}};
  a.first_stage_tensors = {"token_embd.weight"};
  a.last_stage_tensors = {"output_norm.weight", "output.weight"};
  a.matmul_params_per_layer = sequential_block_params;
  a.tensors = [](const ModelConfig& c) { return sequential_block_tensors(c, kPhi3); };
  ModelConfig p;  // microsoft/Phi-3-mini-4k-instruct
  p.arch = "phi3", p.name = "phi3-mini";
  p.n_embd = 3072, p.n_layer = 32, p.n_head = 32, p.n_head_kv = 32, p.n_ff = 8192, p.n_vocab = 32064;
  p.n_ctx = 4096, p.norm_eps = 1e-5, p.sliding_window = 2047;
  a.presets = {{"phi3-mini", p}};
  a.make_stage = [](const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec) {
    return make_llama_stage(ckpt, spec, kPhi3);
  };
  return a;
}

}  // namespace

const Architecture& phi3_architecture() {
  static const Architecture a = describe();
  return a;
}

}  // namespace troupe
