#pragma once
// Opening a model file: the readers (models/format) with the known architectures.
#include <memory>
#include <string>

#include "models/format/checkpoint.h"

namespace troupe {

// Opens a GGUF file (by magic) or a Hugging Face directory; refuses an unknown
// architecture by name, listing the known ones.
std::unique_ptr<Checkpoint> open_checkpoint(const std::string& path);

}  // namespace troupe
