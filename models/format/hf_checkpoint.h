#pragma once
// A Hugging Face model directory: config.json, model.safetensors (or shards listed in
// model.safetensors.index.json), and tokenizer files. Tensors are renamed to the
// canonical GGUF names and brought to GGUF's layout (rotary rows interleaved, GPT-2
// Conv1D weights transposed), so architectures see one layout whatever the source.
#include <memory>
#include <string>

#include "models/format/architecture_format.h"
#include "models/format/checkpoint.h"

namespace troupe {

std::unique_ptr<Checkpoint> open_hf_checkpoint(const std::string& dir, const ArchitectureCatalog& catalog);

}  // namespace troupe
