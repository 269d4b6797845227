#pragma once
// The shape of a model: everything an architecture needs to know besides its weights.
// Filled from GGUF metadata or a Hugging Face config.json.
#include <cstdint>
#include <string>

namespace troupe {

enum class Architecture { llama, gpt2 };

std::string to_string(Architecture arch);
Architecture architecture_from_string(const std::string& name);  // throws on unknown names

struct ModelConfig {
  Architecture arch = Architecture::llama;
  std::string name;            // human readable, for logs
  int64_t n_embd = 0;          // model width
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;       // == n_head unless grouped-query attention
  int64_t n_ff = 0;            // feed-forward hidden size
  int64_t n_vocab = 0;
  int64_t n_ctx = 0;           // trained context length
  double norm_eps = 1e-5;      // RMSNorm (llama) or LayerNorm (gpt2) epsilon
  double rope_theta = 10000.0; // llama only
  bool tied_head = false;      // classifier shares the token embedding

  int64_t head_dim() const { return n_embd / n_head; }
};

}  // namespace troupe
