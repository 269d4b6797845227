#pragma once
// A short stable id for a model: its shape, tensor directory and a sample of its
// weights. Shards cut from a model carry the id of the model they came from.
#include <string>

#include "models/format/checkpoint.h"

namespace troupe {

std::string fingerprint_model(const Checkpoint& ckpt);

}  // namespace troupe
