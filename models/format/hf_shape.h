#pragma once
// The shape keys the LLaMA-style config.json files share (LLaMA, Qwen2, Phi-3, Phi-2):
// hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads (default: the
// attention heads), intermediate_size, vocab_size and max_position_embeddings (default
// `default_context`). Each architecture's read_hf reads the rest itself.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

#include "models/format/model_config.h"

namespace troupe {

void read_hf_llama_style_shape(const nlohmann::json& cfg, const std::string& path, int64_t default_context,
                               ModelConfig& c);

}  // namespace troupe
