// GPT-J: Phi-2's parallel block (arch_phi2.cpp) without attention biases, rotary on the
// first rotary_dim dims of each head in interleaved (every-two) order, tanh-GELU, a
// classifier with bias. Hugging Face GPTJForCausalLM, or GGUF arch `gptj` with llama.cpp's names.
#include <nlohmann/json.hpp>

#include "models/arch/architecture.h"
#include "models/arch/stage_variants.h"
#include "models/format/checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/format/gguf_writer.h"

namespace troupe {
namespace {

void read_gguf(const GgufFile& f, const std::string& p, ModelConfig& c) {
  c.norm_eps = f.get_float(p + "attention.layer_norm_epsilon", 1e-5);
  c.rope_theta = f.get_float(p + "rope.freq_base", 10000.0);
  c.n_rot = f.get_int(p + "rope.dimension_count", 0);
}

void read_hf(const nlohmann::json& cfg, const std::string& path, ModelConfig& c) {
  c.n_embd = hf_int(cfg, path, "n_embd");
  c.n_layer = hf_int(cfg, path, "n_layer");
  c.n_head = hf_int(cfg, path, "n_head");
  c.n_head_kv = c.n_head;
  c.n_ff = hf_int(cfg, path, "n_inner", 4 * c.n_embd);  // null in GPT-J-6B's config: 4 x n_embd
  c.n_vocab = hf_int(cfg, path, "vocab_size");
  c.n_ctx = hf_int(cfg, path, "n_positions", 2048);
  c.n_rot = hf_int(cfg, path, "rotary_dim", 0);
  c.norm_eps = hf_float(cfg, path, "layer_norm_epsilon", 1e-5);
  c.tied_head = hf_bool(cfg, path, "tie_word_embeddings", false);
}

void write_gguf(GgufWriter& w, const std::string& p, const ModelConfig& c) {
  w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(c.rotary_dims()));
  w.set_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set_f32(p + "attention.layer_norm_epsilon", static_cast<float>(c.norm_eps));
}

Architecture describe() {
  Architecture a;
  a.format.name = "gptj";
  a.format.hf_model_types = {"gptj"};
  a.format.read_gguf = read_gguf;
  a.format.write_gguf = write_gguf;
  a.format.read_hf = read_hf;
  a.format.hf_layer_prefix = "transformer.h.";
  a.format.hf_globals = {{"token_embd.weight", "transformer.wte.weight"},
                         {"output_norm.weight", "transformer.ln_f.weight"},
                         {"output_norm.bias", "transformer.ln_f.bias"},
                         {"output.weight", "lm_head.weight"},
                         {"output.bias", "lm_head.bias"}};
  a.format.hf_layer = {{"attn_norm.weight", "ln_1.weight"},      {"attn_norm.bias", "ln_1.bias"},
                       {"attn_q.weight", "attn.q_proj.weight"},  {"attn_k.weight", "attn.k_proj.weight"},
                       {"attn_v.weight", "attn.v_proj.weight"},  {"attn_output.weight", "attn.out_proj.weight"},
                       {"ffn_up.weight", "mlp.fc_in.weight"},    {"ffn_up.bias", "mlp.fc_in.bias"},
                       {"ffn_down.weight", "mlp.fc_out.weight"}, {"ffn_down.bias", "mlp.fc_out.bias"}};
  a.first_stage_tensors = {"token_embd.weight"};
  a.last_stage_tensors = {"output_norm.weight", "output_norm.bias", "output.weight", "output.bias"};
  a.matmul_params_per_layer = parallel_block_params;
  a.tensors = [](const ModelConfig& c) { return parallel_block_tensors(c, /*attention_bias=*/false); };
  ModelConfig gptj;  // EleutherAI/gpt-j-6b
  gptj.arch = "gptj", gptj.name = "gptj";
  gptj.n_embd = 4096, gptj.n_layer = 28, gptj.n_head = 16, gptj.n_head_kv = 16, gptj.n_ff = 16384;
  gptj.n_vocab = 50400, gptj.n_ctx = 2048, gptj.n_rot = 64, gptj.norm_eps = 1e-5;
  a.presets = {{"gptj", gptj}};
  a.make_stage = [](const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec) {
    return make_parallel_stage(ckpt, spec, ParallelVariant{false, RotaryOrder::interleaved});
  };
  return a;
}

}  // namespace

const Architecture& gptj_architecture() {
  static const Architecture a = describe();
  return a;
}

}  // namespace troupe
