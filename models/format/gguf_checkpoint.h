#pragma once
// A model in one GGUF file (or a stage shard written by `troupe split`).
#include <memory>
#include <string>

#include "models/format/architecture_format.h"
#include "models/format/checkpoint.h"

namespace troupe {

std::unique_ptr<Checkpoint> open_gguf_checkpoint(const std::string& path, const ArchitectureCatalog& catalog);

}  // namespace troupe
