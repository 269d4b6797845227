#pragma once
// Which part of a model one pipeline stage holds. Torch-free: it travels in messages.
#include <cstdint>
#include <string>

namespace troupe {

struct StageSpec {
  int64_t layer_first = 0;
  int64_t layer_last = -1;     // inclusive; last < first means no transformer blocks
  bool has_embedding = false;  // takes token ids and embeds them (first stage)
  bool has_head = false;       // ends with final norm + classifier (last stage)

  int64_t n_layers() const { return layer_last - layer_first + 1; }
  std::string describe() const;  // "layers 0-2 +embedding +head"
};

// The whole model as one stage (the single-process run).
StageSpec whole_model_spec(int64_t n_layer);

}  // namespace troupe
