// `troupe plan`: which node should run which layers, before anything is loaded.
#include <iostream>


#include "launch/troupe/cli_checks.h"
#include "models/runtime/byte_size.h"
#include "framework/cluster/cluster.h"
#include "framework/deploy/pipeline_plan.h"
#include "framework/cluster/cluster_file.h"
#include "framework/placement/placement.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "framework/deploy/deploy_planning.h"
#include "launch/troupe/node_options.h"
#include "models/format/checkpoint.h"
#include "models/arch/open_checkpoint.h"

namespace troupe::cli {
namespace {

struct PlanOptions {
  std::string model, nodes, cluster, assume, layers, overhead = "300M", objective = "slowest-stage";
  DiscoverOptions discovery;
  int64_t ctx = 0;
  int32_t sessions = 1;
  double hop_ms = 2.0;
  bool use_every_node = false;
};

// "laptop=8G@60,old=4G@20@8": NAME=MEMORY@GFLOPS[@GB/s] per node, in the order given.
std::vector<NodeCapacity> parse_assumed_nodes(const std::string& text) {
  std::vector<NodeCapacity> nodes;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto bad = [&](const std::string& why) {
      return std::invalid_argument("--assume '" + item + "': " + why +
                                   " (expected NAME=MEMORY@GFLOPS or NAME=MEMORY@GFLOPS@GB/s, e.g. laptop=8G@60)");
    };
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw bad("no NAME=");
    NodeCapacity node;
    node.name = item.substr(0, eq);
    std::vector<std::string> fields;
    std::stringstream rest(item.substr(eq + 1));
    for (std::string f; std::getline(rest, f, '@');) fields.push_back(f);
    if (fields.size() < 2 || fields.size() > 3) throw bad("give memory and gflops");
    try {
      node.memory_bytes = parse_size(fields[0]);
    } catch (const std::invalid_argument& e) {
      throw bad(e.what());
    }
    auto number = [&](const std::string& f, const char* what) {
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(f, &used);
      } catch (const std::exception&) {
      }
      if (used != f.size() || !(v > 0)) throw bad("'" + f + "' is not a positive number of " + what);
      return v;
    };
    node.gflops = number(fields[1], "GFLOPS");
    if (fields.size() == 3) node.mem_gbps = number(fields[2], "GB/s");
    nodes.push_back(node);
  }
  if (nodes.empty()) throw std::invalid_argument("--assume: no nodes given");
  return nodes;
}

void run_plan(const PlanOptions& o) {
  std::vector<NodeCapacity> nodes;
  std::string model = o.model;
  if (!o.assume.empty()) {
    nodes = parse_assumed_nodes(o.assume);
  } else if (!o.cluster.empty()) {
    const ClusterFile cluster = read_cluster_file(o.cluster);
    if (model.empty()) model = cluster.model;
    nodes = capacities_from_file(cluster);
  } else {
    ClientActorSystem sys;
    nodes = query_node_capacities(sys.get(), o.discovery.endpoints(o.nodes), std::chrono::seconds(5));
  }
  if (model.empty()) throw std::invalid_argument("give --model (the cluster file names none)");

  PlanRequest request;
  request.context_length = o.ctx;
  request.sessions = o.sessions;
  request.overhead_bytes = parse_size(o.overhead);
  request.hop_ms = o.hop_ms;
  request.use_every_node = o.use_every_node;
  request.objective = o.objective == "per-token" ? PlanObjective::per_token : PlanObjective::slowest_stage;
  request.shard_overhead_bytes = shard_overhead_bytes(model);

  const auto ckpt = open_checkpoint(model);  // reads the tensor table; loads no weights
  const ModelFootprint footprint = footprint_of(*ckpt);
  const Plan plan = o.layers.empty()
                        ? plan_placement(nodes, footprint, request)
                        : evaluate_placement(nodes, parse_layer_ranges(o.layers, footprint.n_layer), footprint, request);
  std::cout << format_plan_table(plan);
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  auto* cmd = app.add_subcommand("plan", "choose which node runs which layers, from their memory and speed");
  cmd->add_option("--model,-m", o->model, "GGUF file or Hugging Face directory (default: the cluster file's)");
  auto* nodes = cmd->add_option("--nodes", o->nodes, "caf-node daemons to ask, host:port,... (in preference order)");
  auto* cluster = cmd->add_option("--cluster", o->cluster, "cluster file: nodes, their limits, the model");
  auto* assume = cmd->add_option("--assume", o->assume,
                                 "plan offline for nodes described as NAME=MEMORY@GFLOPS[@GB/s],... e.g. a=8G@60,b=4G@30");
  nodes->excludes(cluster)->excludes(assume);
  o->discovery.add_to(cmd);
  cluster->excludes(assume);
  cmd->add_option("--ctx", o->ctx, "positions per session (default: the model's context length)")
    ->check(troupe::cli::positive());
  cmd->add_option("--sessions", o->sessions, "concurrent sessions, each with its own KV cache")
    ->capture_default_str()
    ->check(troupe::cli::positive());
  cmd->add_option("--overhead", o->overhead, "runtime memory per node besides weights and KV cache")
    ->capture_default_str();
  cmd->add_option("--hop-ms", o->hop_ms, "network cost of one hop between stages, ms")
    ->capture_default_str()
    ->check(troupe::cli::non_negative());
  cmd->add_option("--layers", o->layers, "evaluate these layer ranges (one per node, in order) instead of planning");
  cmd->add_option("--objective", o->objective,
                  "slowest-stage: fastest with the pipeline full; per-token: fastest for --sessions decoding at once")
    ->capture_default_str()
    ->check(CLI::IsMember({"slowest-stage", "per-token"}));
  cmd->add_flag("--use-every-node", o->use_every_node, "give every node at least one layer, even if slower");
  cmd->callback([o, nodes, cluster, assume] {
    run_reporting_errors([&] {
      if (!nodes->count() && !cluster->count() && !assume->count() && !o->discovery.discover)
        throw std::invalid_argument("give --nodes, --cluster, --assume or --discover");
      run_plan(*o);
    });
  });
}

}  // namespace troupe::cli
