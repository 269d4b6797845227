#pragma once
// A model's shape and vocabulary written as GGUF metadata, with the same keys
// gguf_checkpoint reads (so a file written here opens like one from llama.cpp).
#include "models/gguf_writer.h"
#include "models/model_config.h"
#include "models/vocab.h"

namespace troupe {

void write_config_metadata(GgufWriter& w, const ModelConfig& c);
void write_vocab_metadata(GgufWriter& w, const Vocab& v);

}  // namespace troupe
