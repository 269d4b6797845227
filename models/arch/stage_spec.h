#pragma once
// Which part of a model one pipeline stage holds. Torch-free: it travels in messages.
#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct StageSpec {
  int64_t layer_first = 0;
  int64_t layer_last = -1;     // inclusive; last < first means no transformer blocks
  bool has_embedding = false;  // takes token ids and embeds them (first stage)
  bool has_head = false;       // ends with final norm + classifier (last stage)

  int64_t n_layers() const { return layer_last - layer_first + 1; }
  std::string describe() const;  // "layers 0-2 +embedding +head"
  bool operator==(const StageSpec& o) const {
    return layer_first == o.layer_first && layer_last == o.layer_last && has_embedding == o.has_embedding &&
           has_head == o.has_head;
  }
};

// The whole model as one stage (the single-process run).
StageSpec whole_model_spec(int64_t n_layer);

// n_layer layers over n_stages stages as evenly as possible (earlier stages take the
// remainder); the first stage embeds, the last holds the head.
std::vector<StageSpec> even_split(int64_t n_layer, int64_t n_stages);

// "0-1,2-3,4-4": inclusive ranges, one per stage, in order, covering every layer once.
// Throws std::invalid_argument saying what is wrong.
std::vector<StageSpec> parse_layer_ranges(const std::string& text, int64_t n_layer);

struct ModelConfig;

// Which stage needs a canonical tensor of a model: layer tensors by their block, the
// embedding and head tensors by the roles its architecture gives them (a tied head needs
// the embedding table too), anything else (rope_freqs) every stage. (stage_spec_tensors.cpp)
bool stage_needs_tensor(const ModelConfig& c, const std::string& name, const StageSpec& spec);

}  // namespace troupe
