#pragma once
// The node: the one actor a caf-node daemon publishes on its port. Tells what the machine
// has (memory, cores, model files) and spawns stage actors (with a sampler beside the last
// one) on request. A client also runs one in-process for stages placed without .on().
#include <caf/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "actors/protocol/messages.h"
#include "actors/stage_runtime.h"

namespace troupe {

struct NodeConfig {
  std::string name;        // "host:port", used in every error and log line
  std::string models_dir;  // model paths in SpawnStage are relative to it
  int32_t threads = 1;     // LibTorch threads per stage unless the request says otherwise
  uint64_t memory_limit = 0;  // bytes troupe may use on this machine (0: none); stages that would exceed it are refused
  int32_t max_stages = 0;     // stages hosted at once, all clients together (0: no cap)
  int32_t max_sessions = 0;   // sessions each stage holds at once (0: no cap)
  double gflops = 0;          // measured when the daemon starts, reported to planners
  double mem_gbps = 0;
  std::string cache_dir = {};  // --cache: shards sent by clients are kept here (actors/shard_cache.h); "" : none
  uint64_t cache_cap = 0;     // --cache-cap: bytes the cache may hold
  double speed_spread = 0;    // of the probe rounds behind those figures (models/machine/speed_probe.h)
  std::chrono::steady_clock::time_point speed_measured_at{};  // of those figures (epoch: never)
  // Re-probing (caf-node --reprobe-idle): once no stage has worked for a random time between
  // this and twice this, the node measures its speed again on a thread of its own, stopping
  // (and keeping the old figures) as soon as a stage is spawned or computes. 0: never.
  std::chrono::milliseconds reprobe_idle{0};
  // Sizes and spawns the stages, re-probes the speed: linked in (a client's in-process node)
  // or opened on first use (caf-node); see actors/stage_runtime.h.
  StageRuntime runtime;
};

// proto::node_actor (actors/protocol/interfaces.h). An exit message sent to the node takes
// its stages down with it. With cfg.cache_dir it also keeps a shard cache
// (actors/shard_cache.h; throws ShardCacheError when the directory cannot be made). Throws
// std::invalid_argument when cfg.runtime lacks a function (a node that could spawn nothing).
proto::node_actor spawn_node_actor(caf::actor_system& sys, NodeConfig cfg);

// What info_atom answers, minus the live stage count.
proto::NodeInfo describe_node(const NodeConfig& cfg);

// `model` relative to `models_dir` unless absolute (a client naming its own files).
std::string resolve_model_path(const std::string& models_dir, const std::string& model);

// What a node serves: the file or directory `model` names inside `models_dir`, or nothing
// when it does not exist or lies outside. `..` components, and absolute paths and symbolic
// links leading out of the models dir are refused (the real path must lie under the real
// models dir, compared component by component), and
// the caller gives one answer for every refusal, so a client learns nothing about files outside.
std::optional<std::string> model_path_inside(const std::string& models_dir, const std::string& model);

// What --memory-limit defaults to: the memory available now, less a margin for the rest of
// the machine (10% of the total, at least 512 MiB).
uint64_t default_memory_limit();

}  // namespace troupe
