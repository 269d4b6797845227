#pragma once
// A model's shape and vocabulary written as GGUF metadata, with the same keys
// gguf_checkpoint reads (so a file written here opens like one from llama.cpp).
#include "models/format/architecture_format.h"
#include "models/format/gguf_writer.h"
#include "models/format/model_config.h"
#include "models/vocab/vocab.h"

namespace troupe {

// The shared keys, then the architecture's own (arch.write_gguf).
void write_config_metadata(GgufWriter& w, const ModelConfig& c, const ArchitectureFormat& arch);
void write_vocab_metadata(GgufWriter& w, const Vocab& v);

}  // namespace troupe
