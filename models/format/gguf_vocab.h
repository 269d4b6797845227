#pragma once
// The vocabulary in a GGUF file's tokenizer.ggml.* metadata (a vocab-only file is enough).
#include "models/format/gguf_file.h"
#include "models/vocab/vocab.h"

namespace troupe {

// Throws CheckpointError naming the file and key for an unsupported tokenizer.ggml.model or
// tokenizer.ggml.pre, or inconsistent arrays.
Vocab read_gguf_vocab(const GgufFile& f);

}  // namespace troupe
