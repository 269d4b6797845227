#pragma once
// The compute of one pipeline stage: optional token embedding, a contiguous range of
// transformer blocks, optional final norm + classifier. The single-process run is one
// stage holding everything; a distributed run is several, and gives the same numbers.
#include <ATen/ATen.h>

#include <memory>

#include "models/checkpoint.h"
#include "models/kv_cache.h"
#include "models/stage_spec.h"

namespace troupe {

class StageModel {
 public:
  virtual ~StageModel() = default;

  // Loads only the tensors `spec` needs from `ckpt`. Weight matrices point into the mapped
  // file in their stored format (no copy), so the stage keeps the checkpoint alive.
  static std::unique_ptr<StageModel> load(std::shared_ptr<const Checkpoint> ckpt, const StageSpec& spec);

  // input: int64 token ids [T] for a stage with the embedding, else float hidden states [T, n_embd].
  // pos: position of the first of the T inputs (the cache must hold exactly pos positions).
  // Returns hidden states [T, n_embd]; a stage with the head returns logits [T, n_vocab]
  // when all_logits, else the last row only [1, n_vocab].
  virtual at::Tensor forward(const at::Tensor& input, int64_t pos, KvCache& cache, bool all_logits = false) = 0;

  std::unique_ptr<KvCache> new_cache(int64_t max_positions) const;
  const ModelConfig& config() const { return config_; }
  const StageSpec& spec() const { return spec_; }
  size_t weight_bytes() const { return weight_bytes_; }

 protected:
  StageModel(ModelConfig config, StageSpec spec) : config_(std::move(config)), spec_(spec) {}
  ModelConfig config_;
  StageSpec spec_;
  size_t weight_bytes_ = 0;
};

}  // namespace troupe
