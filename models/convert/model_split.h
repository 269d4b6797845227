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

// Writes the shard of one stage to `out_path` (the bytes `write_stage_shards` writes for that
// spec: the same model and spec always give the same bytes, so a shard can be named by its
// hash). A client sending weights to a node builds the shard with this
// (framework/deploy/shard_transfer.h).
void write_stage_shard(const std::string& model_path, const StageSpec& spec, const std::string& out_path,
                       const QuantRecipe* recipe = nullptr);

// Writes <out_dir>/<stem>.stage<i>-of-<n>.gguf for each spec and returns their paths. With a
// recipe, tensors are quantized as `troupe quantize` would (types chosen for the whole model).
std::vector<std::string> write_stage_shards(const std::string& model_path, const std::vector<StageSpec>& specs,
                                            const std::string& out_dir, const QuantRecipe* recipe = nullptr);

}  // namespace troupe
