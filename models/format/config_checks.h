#pragma once
// Plausibility checks on a model's shape, shared by the GGUF and Hugging Face readers: a
// NaN epsilon or head counts that do not divide would otherwise load and print garbage.
// Errors name the file and the key the value came from, in that format's own spelling.
#include <string>

#include "models/format/model_config.h"

namespace troupe {

// Where each ModelConfig field is read from ("llama.attention.head_count", "num_attention_heads", ...).
struct ConfigKeys {
  std::string n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx, norm_eps, rope_theta;
  bool rotary = true;  // the architecture rotates q and k (rope_theta and the rotary width are checked)
};

// Throws CheckpointError "<file>: <key> is <value>, expected ..." for the first value out of range.
void check_model_config(const ModelConfig& c, const std::string& file, const ConfigKeys& keys);

// The token embedding must have one row per vocabulary entry.
void check_embedding_rows(const ModelConfig& c, int64_t rows, const std::string& file, const ConfigKeys& keys,
                          const std::string& tensor_name);

}  // namespace troupe
