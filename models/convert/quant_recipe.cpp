#include "models/convert/quant_recipe.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "models/quant/quantizers.h"
#include "models/quant/type_traits.h"

namespace troupe {
namespace {

using namespace ggml_type;

// llama_ftype numbers, as llama.cpp writes them to general.file_type.
const QuantRecipe kRecipes[] = {
    {"f32", F32, 0},      {"f16", F16, 1},       {"bf16", BF16, 32},    {"q8_0", Q8_0, 7},    {"q4_0", Q4_0, 2},
    {"q4_1", Q4_1, 3},    {"q5_0", Q5_0, 8},     {"q5_1", Q5_1, 9},     {"q2_k", Q2_K, 10},   {"q3_k_m", Q3_K, 12},
    {"q4_k_s", Q4_K, 14}, {"q4_k_m", Q4_K, 15},  {"q5_k_m", Q5_K, 17},  {"q6_k", Q6_K, 18},   {"iq4_nl", IQ4_NL, 25},
    {"iq4_xs", IQ4_XS, 30},
};

constexpr uint32_t kI32 = 26;

bool is_block_type(uint32_t t) { return t != F32 && t != F16 && t != BF16; }

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Tensors llama.cpp never quantizes: 1-D ones, norms, anything not a ".weight", position embeddings.
bool quantizable(const std::string& name, const std::vector<int64_t>& shape) {
  if (shape.size() < 2) return false;
  if (name.size() < 6 || name.compare(name.size() - 6, 6, "weight") != 0) return false;
  if (contains(name, "_norm.weight")) return false;
  if (name == "position_embd.weight" || name == "token_types.weight") return false;
  if (contains(name, "ffn_gate_inp.weight")) return false;
  return true;
}

int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// More bits for the first and last eighth of the layers and every third in between.
bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int64_t block_elems(uint32_t t) {
  const TypeTraits* q = find_type_traits(t);
  return q ? q->block_elems : 1;
}

// llama.cpp's tensor_type_fallback: a type whose block does not divide the row width.
uint32_t fallback(uint32_t t, int64_t cols) {
  if (cols % block_elems(t) == 0) return t;
  uint32_t next;
  switch (t) {
    case IQ4_XS: next = IQ4_NL; break;
    case Q2_K: case Q3_K: next = Q4_0; break;
    case Q4_K: next = Q5_0; break;
    case Q5_K: next = Q5_1; break;
    case Q6_K: next = Q8_0; break;
    default: next = F16;
  }
  return cols % block_elems(next) == 0 ? next : F16;
}

}  // namespace

const QuantRecipe& quant_recipe(const std::string& name) {
  std::string lower = name;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& r : kRecipes)
    if (r.name == lower) return r;
  std::string known;
  for (const auto& r : kRecipes) known += (known.empty() ? "" : ", ") + r.name;
  throw std::invalid_argument("unknown quantization type '" + name + "' (known: " + known + ")");
}

std::vector<std::string> quant_recipe_names() {
  std::vector<std::string> names;
  for (const auto& r : kRecipes) names.push_back(r.name);
  return names;
}

uint32_t recipe_tensor_type(const QuantRecipe& recipe, const std::string& name, const std::vector<int64_t>& shape,
                            uint32_t source_type, const RecipeModelShape& model) {
  if (!quantizable(name, shape)) return source_type == kI32 ? source_type : F32;  // integer tensors are copied
  const int64_t cols = shape.back();
  const uint32_t ft = recipe.file_type;
  uint32_t t = recipe.default_type;
  if (!is_block_type(t)) return t;  // f32 / f16 / bf16: every matrix in that type

  const bool is_head = name == "output.weight" || (!model.has_output_weight && name == "token_embd.weight");
  const int64_t layer = layer_of(name), n_layer = model.n_layer;
  if (is_head) {
    if (cols % block_elems(t) != 0) t = Q8_0;
    else if (t != Q8_0) t = Q6_K;
  } else if (name == "token_embd.weight") {
    // the default type
  } else if (contains(name, "attn_v.weight") || contains(name, "attn_qkv.weight")) {
    const bool v = contains(name, "attn_v.weight");
    if (v) {
      if (ft == 10) t = model.n_gqa >= 4 ? Q4_K : Q3_K;                         // Q2_K
      else if (ft == 12) t = layer < 2 ? Q5_K : Q4_K;                           // Q3_K_M
      else if ((ft == 25 || ft == 30) && model.n_gqa >= 4) t = Q5_K;            // IQ4_NL, IQ4_XS
      else if ((ft == 15 || ft == 17) && use_more_bits(layer, n_layer)) t = Q6_K;  // Q4_K_M, Q5_K_M
      else if (ft == 14 && layer < 4) t = Q5_K;                                 // Q4_K_S
    } else {
      if (ft == 12) t = Q4_K;
      else if (ft == 15) t = Q5_K;
      else if (ft == 17) t = Q6_K;
    }
  } else if (contains(name, "ffn_down")) {
    if (ft == 10) t = Q3_K;
    else if (ft == 12) t = layer < n_layer / 16 ? Q5_K : Q4_K;
    else if (ft == 15) { if (use_more_bits(layer, n_layer)) t = Q6_K; }
    else if (layer < n_layer / 8 && (ft == 25 || ft == 30)) t = Q5_K;
    else if (ft == 17 && use_more_bits(layer, n_layer)) t = Q6_K;
    else if (ft == 14 && layer < n_layer / 8) t = Q5_K;
  } else if (contains(name, "attn_output.weight")) {
    if (ft == 10) t = Q3_K;
    else if (ft == 12) t = Q4_K;
  }
  return fallback(t, cols);
}

}  // namespace troupe
