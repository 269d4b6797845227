#pragma once
#include <atomic>
// The compute of one pipeline stage: optional token embedding, a contiguous range of
// transformer blocks, optional final norm + classifier. The single-process run is one
// stage holding everything; a distributed run is several, and gives the same numbers.
#include <ATen/ATen.h>

#include <memory>

#include "models/format/checkpoint.h"
#include "models/arch/kv_cache.h"
#include "models/format/page_prefetch.h"
#include "models/arch/stage_spec.h"
#include "models/arch/step_batch.h"

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
  at::Tensor forward(const at::Tensor& input, int64_t pos, KvCache& cache, bool all_logits = false);

  // One pass over several sequences (each with its own cache, at its own position): the
  // matrix products see all their rows at once. Returns, per sequence, what forward() would
  // (hidden states, or the logits of its last position), with the same bits.
  std::vector<at::Tensor> forward_batch(const std::vector<SequenceStep>& steps);

  std::unique_ptr<KvCache> new_cache(int64_t max_positions) const;
  // Every layer computed adds one to `counter` (may be null): a watcher on another thread
  // sees a long forward pass make progress (actors/stage_work.h).
  void count_layers_in(std::atomic<uint64_t>* counter) { layer_counter_ = counter; }
  const ModelConfig& config() const { return config_; }
  const StageSpec& spec() const { return spec_; }
  size_t weight_bytes() const { return weight_bytes_; }
  // Reads the stage's weights from disk into memory now, reporting (bytes done, bytes total).
  void prefetch_weights(const std::function<void(uint64_t, uint64_t)>& on_progress) const {
    prefetch_pages(weight_ranges_, on_progress);
  }

 protected:
  StageModel(ModelConfig config, StageSpec spec) : config_(std::move(config)), spec_(spec) {}
  // The architecture's pass over a batch; all_logits: every row's logits (one sequence only).
  virtual std::vector<at::Tensor> run(const StepBatch& batch, bool all_logits) = 0;
  ModelConfig config_;
  StageSpec spec_;
  // Called by run() after each layer.
  void layer_done() const {
    if (layer_counter_) layer_counter_->fetch_add(1, std::memory_order_relaxed);
  }
  // Counts a weight in weight_bytes() and the memory prefetch_weights() reads.
  void add_weight(const void* data, size_t bytes) {
    weight_bytes_ += bytes;
    if (data && bytes) weight_ranges_.push_back(MemoryRange{data, bytes});
  }
  void add_weight(MemoryRange m) { add_weight(m.data, m.bytes); }
  void add_weight(const std::vector<MemoryRange>& ms) {
    for (const auto& m : ms) add_weight(m);
  }
  void add_weight(const at::Tensor& t) { add_weight(t.data_ptr(), t.numel() * t.element_size()); }

 private:
  size_t weight_bytes_ = 0;
  std::atomic<uint64_t>* layer_counter_ = nullptr;
  std::vector<MemoryRange> weight_ranges_;
};

}  // namespace troupe
