#include "launch/troupe/node_options.h"

#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "framework/actor_system.h"
#include "framework/cluster.h"
#include "framework/pipeline_plan.h"
#include "framework/placement.h"

namespace troupe::cli {

void NodeOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--nodes", nodes, "caf-node daemons host:port,... (one stage each, in order; default: this process)");
  cmd->add_option("--layers", layers, "inclusive layer range per node, e.g. 0-1,2-3,4-4 (default: planned from the nodes)");
  cmd->add_option("--wire", wire, "activation type between nodes: f32, fp16, bf16")->capture_default_str();
}

ClientActorSystem::ClientActorSystem() {
  configure_actor_system(cfg_);
  sys_ = std::make_unique<caf::actor_system>(cfg_);
}

Pipeline deploy_on_nodes(caf::actor_system& sys, const NodeOptions& o, const std::string& model, const Checkpoint& ckpt,
                         const SamplingOptions& sampling) {
  PipelineRequest request;
  request.model = model;
  request.tokenizer_model = model;
  request.nodes = split_node_list(o.nodes);
  request.layers = o.layers;
  request.wire = wire_dtype_from_string(o.wire);
  request.sampling = sampling;
  if (request.layers.empty() && request.nodes.size() > 1) {
    // No split given: the planner places layers by each node's memory and measured speed
    // (and may leave out a node that would only slow the pipeline down).
    PlanRequest plan_request;
    plan_request.context_length = ckpt.config().n_ctx;
    const Plan plan = plan_placement(query_node_capacities(sys, request.nodes, std::chrono::seconds(5)),
                                     footprint_of(ckpt), plan_request);
    request.nodes = plan.nodes();
    request.layers = plan.layer_ranges();
    spdlog::info("plan: --nodes {} --layers {}", fmt::join(request.nodes, ","), request.layers);
  }
  Pipeline pipeline = deploy(sys, describe_pipeline(request, ckpt.config().n_layer));
  for (const auto& s : pipeline.stages())
    spdlog::info("stage {} on {}: {:.1f} MB of weights, loaded in {:.0f} ms", s.describe, s.endpoint, s.weight_bytes / 1e6,
                 s.load_ms);
  return pipeline;
}

}  // namespace troupe::cli
