#pragma once
// The options every command that runs through caf-node daemons shares (--nodes,
// --layers, --wire, --max-batch), and deploying a pipeline from them: the split given by --layers, or
// else the one the planner picks from what the nodes report.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <CLI/CLI.hpp>
#include <string>

#include "framework/deploy/deploy.h"
#include "models/format/checkpoint.h"

namespace troupe::cli {

struct NodeOptions {
  std::string nodes, layers, wire = "f32";
  int32_t max_batch = 0;  // sessions per forward pass in each stage; 0: the stage default
  int64_t prefill_chunk = kDefaultPrefillChunk;  // --prefill-chunk
  int64_t speculate = 0;  // --speculate: draft tokens per step (prompt lookup)
  std::string standby;     // host:port,... daemons that may take over a failed stage
  double repair_wait_s = 60;  // a request waits this long for a repair under way
  double stall_timeout_s = 5;  // a stage without progress this long is stuck (DeployOptions::stage_stall_timeout)

  void add_to(CLI::App* cmd);
  bool used() const { return !nodes.empty(); }
};

// The --cluster-key given to the troupe command (any subcommand), "" when none.
std::string& cluster_key_flag();

// A CAF actor system configured as every troupe process is (actors/protocol/actor_system.h),
// with the cluster key of --cluster-key, $TROUPE_CLUSTER_KEY or the default path (TLS on
// every link), or none (plain links, for nodes that run without a key). Throws when the key
// file is unusable.
class ClientActorSystem {
 public:
  ClientActorSystem();
  caf::actor_system& get() { return *sys_; }

 private:
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
};

// Deploys `model` (a path the nodes resolve, and readable here for the tokenizer and
// shape) on the nodes; logs the loading progress and where each stage went.
Pipeline deploy_on_nodes(caf::actor_system& sys, const NodeOptions& o, const std::string& model, const Checkpoint& ckpt,
                         const SamplingOptions& sampling);

}  // namespace troupe::cli
