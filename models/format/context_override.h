#pragma once
// A checkpoint seen with another context length than it declares (`--ctx N`, as llama.cpp's
// -c): every tensor and the vocabulary are the file's; only config().n_ctx differs. Longer
// than declared works for rotary models (LLaMA family), which may then write worse text;
// GPT-2's learned position table has exactly n_ctx rows, so it is refused for those.
#include <memory>

#include "models/format/checkpoint.h"

namespace troupe {

// Throws std::invalid_argument naming the file when `n_ctx` is not possible for the model.
std::shared_ptr<const Checkpoint> with_context(std::shared_ptr<const Checkpoint> ckpt, int64_t n_ctx);

}  // namespace troupe
