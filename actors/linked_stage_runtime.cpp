#include "actors/linked_stage_runtime.h"

#include <algorithm>

#include "models/arch/open_checkpoint.h"
#include "models/format/checkpoint.h"
#include "models/runtime/footprint.h"

namespace troupe {

namespace {

StageBytes stage_bytes(const StageConfig& stage) {
  const auto ckpt = open_checkpoint(stage.model_path);
  const ModelConfig& c = ckpt->config();
  const int64_t positions = stage.max_positions > 0 ? std::min(stage.max_positions, c.n_ctx) : c.n_ctx;
  StageBytes b;
  if (ckpt->shard_info().is_shard) {  // a shard (split, or sent to the cache) holds just the stage's tensors
    for (const auto& name : ckpt->tensor_names()) b.weights += ckpt->tensor_nbytes(name);
    b.kv_cache = 2 * static_cast<uint64_t>(c.n_head_kv * c.head_dim()) * sizeof(float) *
                 static_cast<uint64_t>(positions * std::max<int64_t>(stage.spec.n_layers(), 0));
  } else {
    const ModelFootprint f = footprint_of(*ckpt);
    b.weights = stage_weight_bytes(f, stage.spec);
    b.kv_cache = stage_kv_bytes(f, stage.spec, positions);
  }
  return b;
}

}  // namespace

StageRuntime linked_stage_runtime() {
  StageRuntime r;
  r.stage_bytes = stage_bytes;
  r.spawn_stage = spawn_stage_actor;
  r.probe_speed = [](int threads, const std::function<bool()>& keep_going) {
    return probe_machine_speed(threads, ProbeSchedule{}, keep_going);
  };
  return r;
}

}  // namespace troupe
