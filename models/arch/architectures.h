#pragma once
// Constructors of the per-architecture stages (one file per architecture).
#include <memory>

#include "models/arch/stage_model.h"

namespace troupe {

std::unique_ptr<StageModel> make_llama_stage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec);
std::unique_ptr<StageModel> make_gpt2_stage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec);

}  // namespace troupe
