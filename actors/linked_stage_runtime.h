#pragma once
// The stage runtime linked into this program (LibTorch and the model core): what a client's
// in-process node uses, and what caf-node's shared module hands out.
#include "actors/stage_runtime.h"

namespace troupe {

StageRuntime linked_stage_runtime();

}  // namespace troupe
