#pragma once
// What a node needs of the code that runs models: sizing a stage, spawning it, measuring the
// machine's speed. That code is LibTorch and the model core, well over 100 MiB resident as soon
// as it is loaded, so nodes reach it only through this interface: a client links it in
// (linked_stage_runtime.h), while caf-node opens it from a shared module on first use
// (stage_runtime_module.h), so that an idle daemon holds none of it.
#include <caf/fwd.hpp>
#include <cstdint>
#include <functional>

#include "actors/stage_actor.h"
#include "models/machine/machine_speed.h"

namespace troupe {

// What a stage would hold: its weights as stored, and one session's KV cache at full length.
struct StageBytes {
  uint64_t weights = 0;
  uint64_t kv_cache = 0;
};

struct StageRuntime {
  // Of the stage `cfg` describes (its model_path, spec and max_positions). Throws what it cannot read.
  std::function<StageBytes(const StageConfig& cfg)> stage_bytes;
  // spawn_stage_actor (actors/stage_actor.h).
  std::function<proto::stage_actor(caf::actor_system&, const StageConfig&, const caf::actor& owner)> spawn_stage;
  // probe_machine_speed (models/machine/machine_speed.h) with the default schedule.
  std::function<MachineSpeed(int threads, const std::function<bool()>& keep_going)> probe_speed;
};

}  // namespace troupe
