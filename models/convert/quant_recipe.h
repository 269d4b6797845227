#pragma once
// Quantization recipes (`troupe quantize --type q4_k_m`): which GGUF type each tensor gets,
// as llama.cpp's llama_tensor_get_type chooses it for the same file type, so a model we
// quantize has the same type per tensor as one made by `llama-quantize` (no importance
// matrix). The `_M`/`_S` mixes give some tensors more bits: the head (Q6_K), parts of
// attn_v and ffn_down by layer. 1-D tensors and norms stay F32; rows whose width is not a
// multiple of the block fall back as llama.cpp does (Q4_K -> Q5_0, Q6_K -> Q8_0, ...,
// then F16).
#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct QuantRecipe {
  std::string name;       // "q4_k_m"
  uint32_t default_type;  // ggml type of most matrices (Q4_K)
  uint32_t file_type;     // value of general.file_type (llama_ftype), e.g. 15 for Q4_K_M
};

// The recipe of that name (case-insensitive); throws std::invalid_argument listing the known ones.
const QuantRecipe& quant_recipe(const std::string& name);
std::vector<std::string> quant_recipe_names();

// What the recipe needs to know of the whole model (a stage shard uses the whole model's).
struct RecipeModelShape {
  int64_t n_layer = 0;
  int64_t n_gqa = 1;              // attention heads per KV head
  bool has_output_weight = true;  // false: the head is tied to token_embd, which then counts as the head
};

// The ggml type for one tensor. `shape` is outermost first ([rows, cols]); `source_type` is
// the type it has in the input.
uint32_t recipe_tensor_type(const QuantRecipe& recipe, const std::string& name, const std::vector<int64_t>& shape,
                            uint32_t source_type, const RecipeModelShape& model);

}  // namespace troupe
