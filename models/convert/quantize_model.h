#pragma once
// `troupe quantize`: a GGUF file or Hugging Face directory in, a GGUF file of the recipe's
// types out (models/convert/quant_recipe.h). Streams: the input stays mapped, each tensor is
// converted row by row into one output buffer and written before the next is read, and the
// input pages of a finished tensor are given back, so peak memory is about one output tensor,
// not the model.
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "models/convert/quant_recipe.h"
#include "models/format/checkpoint.h"
#include "models/format/gguf_writer.h"

namespace troupe {

struct QuantizeProgress {
  int64_t tensors_done = 0, tensors_total = 0;
  uint64_t bytes_done = 0, bytes_total = 0;  // of the input
  std::string tensor;                        // the one just written
};
using QuantizeProgressFn = std::function<void(const QuantizeProgress&)>;

struct QuantizeSummary {
  uint64_t bytes_in = 0, bytes_out = 0;
  std::map<std::string, uint32_t> tensor_types;  // name -> ggml type written
};

// Quantizes `model_path` with the recipe into `out_path`.
QuantizeSummary quantize_model(const std::string& model_path, const QuantRecipe& recipe, const std::string& out_path,
                               const QuantizeProgressFn& progress = {});

// The recipe's view of a model (layers, grouped-query factor, tied head).
RecipeModelShape recipe_model_shape(const Checkpoint& ckpt);

// Queues tensor `name` of `ckpt` on the writer in the recipe's type (nullptr: as stored).
// The conversion runs when the writer writes it; afterwards the input pages are released
// and `done(input_bytes)` is called. Returns the type chosen.
uint32_t add_converted_tensor(GgufWriter& w, const Checkpoint& ckpt, const std::string& name, const QuantRecipe* recipe,
                              const RecipeModelShape& shape, std::function<void(uint64_t)> done = {});

}  // namespace troupe
