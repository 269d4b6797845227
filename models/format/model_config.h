#pragma once
// The shape of a model: everything an architecture needs to know besides its weights.
// Filled from GGUF metadata or a Hugging Face config.json by the architecture's own
// readers (models/arch/arch_*.cpp).
#include <cstdint>
#include <string>

namespace troupe {

struct ModelConfig {
  std::string arch = "llama";  // architecture, as GGUF's general.architecture names it ("llama", "phi2", ...)
  std::string name;            // human readable, for logs
  int64_t n_embd = 0;          // model width
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;       // == n_head unless grouped-query attention
  int64_t n_ff = 0;            // feed-forward hidden size
  int64_t n_vocab = 0;
  int64_t n_ctx = 0;           // trained context length
  double norm_eps = 1e-5;      // RMSNorm or LayerNorm epsilon
  double rope_theta = 10000.0; // rotary base
  int64_t n_rot = 0;           // rotary dimensions per head (the first n_rot); 0 = the whole head
  // Llama-3 rope scaling (HF rope_scaling {"rope_type": "llama3"}); GGUF files carry the
  // resulting per-frequency factors as the tensor rope_freqs.weight instead.
  bool rope_llama3 = false;
  double rope_factor = 8.0, rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int64_t rope_original_context = 8192;
  int64_t sliding_window = 0;  // attention window (Mistral); 0 = none
  bool tied_head = false;      // classifier shares the token embedding

  int64_t head_dim() const { return n_embd / n_head; }
  int64_t rotary_dims() const { return n_rot > 0 ? n_rot : head_dim(); }
};

}  // namespace troupe
