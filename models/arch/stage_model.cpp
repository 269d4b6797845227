#include "models/arch/stage_model.h"

#include "models/arch/architecture.h"

namespace troupe {

std::unique_ptr<StageModel> StageModel::load(std::shared_ptr<const Checkpoint> ckpt, const StageSpec& spec) {
  const auto& c = ckpt->config();
  if (spec.layer_first < 0 || spec.layer_last >= c.n_layer || spec.n_layers() < 0)
    throw CheckpointError(ckpt->path() + ": stage " + spec.describe() + " is outside the model's " +
                          std::to_string(c.n_layer) + " layers");
  const ShardInfo shard = ckpt->shard_info();
  if (shard.is_shard && (spec.layer_first < shard.layer_first || spec.layer_last > shard.layer_last ||
                         (spec.has_embedding && !shard.has_embedding) || (spec.has_head && !shard.has_head)))
    throw CheckpointError(ckpt->path() + ": this shard holds layers " + std::to_string(shard.layer_first) + "-" +
                          std::to_string(shard.layer_last) + (shard.has_embedding ? " +embedding" : "") +
                          (shard.has_head ? " +head" : "") + ", not the requested " + spec.describe());
  try {
    return architecture(c.arch).make_stage(ckpt, spec);
  } catch (const std::invalid_argument& e) {  // an unknown architecture
    throw CheckpointError(ckpt->path() + ": " + e.what());
  }
}

at::Tensor StageModel::forward(const at::Tensor& input, int64_t pos, KvCache& cache, bool all_logits) {
  const std::vector<SequenceStep> steps{SequenceStep{input, pos, &cache}};
  return run(StepBatch(steps), all_logits).front();
}

std::vector<at::Tensor> StageModel::forward_batch(const std::vector<SequenceStep>& steps) {
  return run(StepBatch(steps), /*all_logits=*/false);
}

std::unique_ptr<KvCache> StageModel::new_cache(int64_t max_positions) const {
  return std::make_unique<KvCache>(spec_.n_layers(), config_.n_head_kv, config_.head_dim(),
                                   std::min(max_positions, config_.n_ctx));
}

}  // namespace troupe
