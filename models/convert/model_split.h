#pragma once
// `troupe split`: one GGUF file per stage holding only that stage's tensors plus the
// metadata to run it, so each laptop needs only its part on disk. Shards record the
// model they came from and their layer range; a stage refuses a shard of another
// model or another range.
#include <string>
#include <vector>

#include "models/arch/stage_spec.h"
#include "models/convert/quant_recipe.h"

namespace troupe {

// Writes <out_dir>/<stem>.stage<i>-of-<n>.gguf for each spec and returns their paths. With a
// recipe, tensors are quantized as `troupe quantize` would (types chosen for the whole model).
std::vector<std::string> write_stage_shards(const std::string& model_path, const std::vector<StageSpec>& specs,
                                            const std::string& out_dir, const QuantRecipe* recipe = nullptr);

}  // namespace troupe
