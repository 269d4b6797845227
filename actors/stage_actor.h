#pragma once
// A pipeline stage: one layer range of one model, one KV cache per session. Receives an
// Activation (token ids for the first stage, hidden states otherwise), runs its layers and
// delegates the result to its successor (the next stage, or for the last stage the sampler
// next to it), so the reply travels from the end of the chain straight to the requester.
// Spawned detached: each stage has its own thread and LibTorch thread team.
#include <memory>

#include <caf/fwd.hpp>
#include <cstdint>
#include <string>

#include "actors/protocol/interfaces.h"
#include "actors/protocol/wire_tensor.h"
#include "models/arch/stage_spec.h"
#include "actors/stage_work.h"

namespace troupe {

// Pending decode steps of up to this many sessions go through the stage in one forward pass.
// Decode reads every weight once per pass whatever the number of rows, so a pass of 16
// costs little more than a pass of 1 on a laptop (memory-bound); more rarely waits in a queue.
constexpr int32_t kDefaultMaxBatch = 16;

struct StageConfig {
  std::string node;           // "host:port" of the node running it, for error messages and logs
  std::string model;          // the path as the client named it
  std::string model_path;     // resolved on this node
  StageSpec spec;
  WireDType wire_dtype = WireDType::f32;  // for the activations it sends
  int32_t threads = 1;        // LibTorch threads of this stage's thread
  int64_t max_positions = 0;  // per-session KV cache length; 0: the model's context
  bool with_sampler = false;  // spawn a sampler beside it and make it the successor
  int32_t max_batch = kDefaultMaxBatch;  // sessions per forward pass (1: one at a time)
  int32_t max_sessions = 0;   // sessions held at once (the node's --max-sessions; 0: no cap)
  proto::load_listener progress;  // gets proto::LoadProgress while the weights load (may be invalid)
  std::shared_ptr<StageWork> work;  // shared with its node, which reports it (may be null)
};

// Spawns the stage (detached; proto::stage_actor in actors/protocol/interfaces.h). It loads
// its weights when it receives load_atom (reply: proto::StageReady), and quits when `owner`
// (if valid) goes down.
proto::stage_actor spawn_stage_actor(caf::actor_system& sys, const StageConfig& cfg, const caf::actor& owner);

}  // namespace troupe
