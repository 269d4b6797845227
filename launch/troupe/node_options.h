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

// --discover: the nodes that announce themselves on the LAN (framework/cluster/discovery.h),
// with those of --nodes.
struct DiscoverOptions {
  bool discover = false;
  double seconds = 2;
  uint16_t port = 7946;

  void add_to(CLI::App* cmd);
  // The --nodes list plus, with --discover, every node of this cluster heard; throws when
  // --discover finds none and no --nodes were given.
  std::vector<std::string> endpoints(const std::string& nodes_flag) const;
};

struct NodeOptions {
  std::string nodes, layers, wire = "f32";
  int32_t max_batch = 0;  // sessions per forward pass in each stage; 0: the stage default
  int64_t prefill_chunk = kDefaultPrefillChunk;  // --prefill-chunk
  int64_t speculate = 0;  // --speculate: draft tokens per step (prompt lookup, or the --draft model)
  std::string draft;      // --draft: a small model of the same vocabulary that drafts, in this process
  std::string standby;     // host:port,... daemons that may take over a failed stage
  double repair_wait_s = 60;  // a request waits this long for a repair under way
  double stall_timeout_s = 5;  // a stage without progress this long is stuck (DeployOptions::stage_stall_timeout)
  int64_t ctx = 0;        // --ctx: positions per session; 0: the model's (no longer over nodes)
  std::string send_chunk = "1M";  // weights transfer: chunk size
  std::string send_rate;          // weights transfer: cap per node in bytes/s ("" : none)
  std::string shard_dir;          // where this process builds shards before sending them

  DiscoverOptions discovery;

  void add_to(CLI::App* cmd);
  bool used() const { return !nodes.empty() || discovery.discover; }
  // Throws when a flag that needs nodes (--draft) was given to a run in this process.
  void check_single_process() const;
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

// `--ctx N` for a model run in this process: the checkpoint seen with N positions; longer
// than the model declares only with a warning (rotary models) or not at all (GPT-2).
std::shared_ptr<const Checkpoint> apply_context(std::shared_ptr<const Checkpoint> ckpt, int64_t ctx);

// Deploys `model` (a path the nodes resolve, and readable here for the tokenizer and
// shape) on the nodes; logs the loading progress and where each stage went.
Pipeline deploy_on_nodes(caf::actor_system& sys, const NodeOptions& o, const std::string& model, const Checkpoint& ckpt,
                         const SamplingOptions& sampling);

}  // namespace troupe::cli
