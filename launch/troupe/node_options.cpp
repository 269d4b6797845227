#include "launch/troupe/node_options.h"

#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "actors/protocol/actor_system.h"
#include "actors/protocol/cluster_key.h"
#include "models/runtime/byte_size.h"
#include "framework/deploy/deploy_planning.h"
#include "framework/deploy/pipeline_plan.h"

namespace troupe::cli {

void NodeOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--nodes", nodes, "caf-node daemons host:port,... (one stage each, in order; default: this process)");
  cmd->add_option("--layers", layers, "inclusive layer range per node, e.g. 0-1,2-3,4-4 (default: planned from the nodes)");
  cmd->add_option("--wire", wire, "activation type between nodes: f32, fp16, bf16")->capture_default_str();
  cmd->add_option("--max-batch", max_batch,
                  "sessions a stage runs in one forward pass (default 16; 1: no batching)")
    ->check(CLI::Range(1, 1024));
  cmd->add_option("--prefill-chunk", prefill_chunk,
                  "prompt tokens per chunk: a long prompt flows through the nodes chunk by chunk, overlapping "
                  "(0: the whole prompt in one pass)")
    ->capture_default_str()
    ->check(CLI::NonNegativeNumber);
  cmd->add_option("--speculate", speculate,
                  "draft up to N tokens by prompt lookup and verify them in one pass (0: off); same tokens as without")
    ->capture_default_str()
    ->check(CLI::Range(0, 64));
  cmd->add_option("--standby", standby,
                  "caf-node daemons host:port,... that may take over a failed stage (else the surviving nodes do)");
  cmd->add_option("--repair-wait", repair_wait_s,
                  "seconds a request waits for a failed stage to be repaired before it fails")
    ->capture_default_str()
    ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--stall-timeout", stall_timeout_s,
                  "seconds a stage may go without finishing a forward pass before it is taken as stuck and moved "
                  "(0: not watched; raise it when one forward pass, e.g. a long prompt on a slow node, takes longer)")
    ->capture_default_str()
    ->check(CLI::Validator(
      [](std::string& value) -> std::string {
        // Below a second, a slow link or a busy laptop would be taken for a stuck stage.
        double s = -1;
        try {
          s = std::stod(value);
        } catch (const std::exception&) {
        }
        if (s == 0 || (s >= 1 && s <= 3600)) return {};
        return "must be 0 (not watched) or from 1 to 3600 seconds, got " + value;
      },
      "0 or 1-3600"));
}

std::string& cluster_key_flag() {
  static std::string flag;
  return flag;
}

ClientActorSystem::ClientActorSystem() {
  const std::string key = find_cluster_key(cluster_key_flag());
  if (!key.empty()) {
    const ClusterKeyInfo info = check_cluster_key(key);
    spdlog::debug("cluster key {} ({}): TLS to every node", key, info.subject);
  }
  configure_actor_system(cfg_, 2, key);
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
  // No split given: the planner places layers by each node's memory and measured speed
  // (and may leave out a node that would only slow the pipeline down), as deploy() does
  // for any planned description.
  const dsl::PipelineDesc desc =
    request.layers.empty() && request.nodes.size() > 1
      ? dsl::tokenizer(model) >> dsl::planned_stages(model).on(request.nodes).wire(request.wire) >> dsl::sampler(sampling)
      : describe_pipeline(request, ckpt.config().n_layer);
  DeployOptions options;
  options.max_batch = o.max_batch;
  options.prefill_chunk = o.prefill_chunk;
  options.speculate = o.speculate;
  if (!o.standby.empty()) options.standby_nodes = split_node_list(o.standby);
  options.repair_wait = std::chrono::milliseconds(static_cast<int64_t>(o.repair_wait_s * 1000));
  options.stage_stall_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.stall_timeout_s * 1000));
  options.on_load_progress = [](const std::string& node, const std::string& stage, uint64_t done, uint64_t total) {
    spdlog::info("loading {} on {}: {} of {} ({:.0f}%)", stage, node.empty() ? "this process" : node,
                 format_size(done), format_size(total), total ? 100.0 * done / total : 100.0);
  };
  const PlannedPipeline planned = plan_pipeline(sys, desc, options);
  if (planned.plan)
    spdlog::info("plan: --nodes {} --layers {}", fmt::join(planned.plan->nodes(), ","), planned.plan->layer_ranges());
  Pipeline pipeline = deploy(sys, planned.desc, options);
  for (const auto& s : pipeline.stages())
    spdlog::info("stage {} on {}: {:.1f} MB of weights, loaded in {:.0f} ms", s.describe, s.endpoint, s.weight_bytes / 1e6,
                 s.load_ms);
  return pipeline;
}

}  // namespace troupe::cli
