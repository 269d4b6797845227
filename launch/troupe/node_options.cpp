#include "launch/troupe/node_options.h"

#include <spdlog/fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "actors/protocol/actor_system.h"
#include "actors/protocol/cluster_key.h"
#include "models/runtime/byte_size.h"
#include "framework/deploy/deploy_planning.h"
#include "framework/cluster/discovery.h"
#include "framework/deploy/pipeline_plan.h"
#include "models/format/context_override.h"
#include "launch/troupe/cli_checks.h"

namespace troupe::cli {

// Draft tokens per step with --draft when --speculate is not given: a small draft is usually
// right for a few tokens in a row, and a pass verifying 4 costs little more than one.
constexpr int64_t kDefaultDraftTokens = 4;

void DiscoverOptions::add_to(CLI::App* cmd) {
  cmd->add_flag("--discover", discover,
                "use every caf-node of this cluster (same cluster key) that announces itself on the LAN");
  cmd->add_option("--discover-for", seconds, "seconds to listen for announcements")->capture_default_str()
    ->check(CLI::Range(0.1, 60.0));
  cmd->add_option("--discovery-port", port, "UDP port the nodes announce to")->capture_default_str();
}

std::vector<std::string> DiscoverOptions::endpoints(const std::string& nodes_flag) const {
  std::vector<std::string> out = nodes_flag.empty() ? std::vector<std::string>{} : split_node_list(nodes_flag);
  if (!discover) return out;
  const std::string key = find_cluster_key(cluster_key_flag());
  for (const auto& n : discover_nodes(key, std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)), port))
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  if (out.empty())
    throw std::runtime_error("--discover: no caf-node of this cluster (" +
                             (key.empty() ? std::string("no cluster key") : "cluster key " + key) +
                             ") announced itself on UDP port " + std::to_string(port) + " within " +
                             std::to_string(seconds) + " s; start caf-node on the other laptops with the same key, "
                             "or name them with --nodes where broadcasts do not pass");
  for (const auto& n : out) spdlog::info("node {}", n);
  return out;
}

void NodeOptions::add_to(CLI::App* cmd) {
  discovery.add_to(cmd);
  cmd->add_option("--nodes", nodes, "caf-node daemons host:port,... (one stage each, in order; default: this process)");
  cmd->add_option("--layers", layers, "inclusive layer range per node, e.g. 0-1,2-3,4-4 (default: planned from the nodes)");
  cmd->add_option("--wire", wire, "activation type between nodes: f32, f16 or bf16")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& s) {
            try {
              wire_dtype_from_string(s);
              return std::string();
            } catch (const std::exception& e) {
              return std::string(e.what());
            }
          },
          "f32|f16|bf16"));
  cmd->add_option("--max-batch", max_batch,
                  "sessions a stage runs in one forward pass (default 16; 1: no batching)")
    ->check(troupe::cli::between(1, 1024));
  cmd->add_option("--prefill-chunk", prefill_chunk,
                  "prompt tokens per chunk: a long prompt flows through the nodes chunk by chunk, overlapping "
                  "(0: the whole prompt in one pass)")
    ->capture_default_str()
    ->check(troupe::cli::non_negative());
  cmd->add_option("--speculate", speculate,
                  "draft up to N tokens by prompt lookup and verify them in one pass (0: off); same tokens as without")
    ->capture_default_str()
    ->check(troupe::cli::between(0, 64));
  cmd->add_option("--draft", draft,
                  "draft with this small model of the same vocabulary (GGUF file or Hugging Face directory), run "
                  "greedily in this process, instead of by prompt lookup; --speculate N tokens per step (default 4 "
                  "with --draft). Same tokens as without")
    ->check(CLI::ExistingPath);
  cmd->add_option("--standby", standby,
                  "caf-node daemons host:port,... that may take over a failed stage (else the surviving nodes do)");
  cmd->add_option("--repair-wait", repair_wait_s,
                  "seconds a request waits for a failed stage to be repaired before it fails")
    ->capture_default_str()
    ->check(troupe::cli::between(0, 3600));
  cmd->add_option("--stall-timeout", stall_timeout_s,
                  "seconds a stage's forward pass may go without computing a layer before the stage is taken as "
                  "stuck and moved (0: not watched; a long prompt keeps computing layers, so it is not stuck)")
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
  cmd->add_option("--send-chunk", send_chunk,
                  "weights sent to nodes with a --cache travel in chunks of this size, 4 in flight per node")
    ->capture_default_str();
  cmd->add_option("--send-rate", send_rate, "cap on the weights sent to each node, bytes per second (e.g. 20M)");
  cmd->add_option("--shard-dir", shard_dir,
                  "where shards are built before they are sent (default ~/.cache/troupe/outgoing; each is removed "
                  "once its node holds it)");
}

void NodeOptions::check_single_process() const {
  if (!draft.empty())
    throw std::invalid_argument("--draft needs --nodes: the drafts are verified by the pipeline of caf-node daemons");
}

std::string& cluster_key_flag() {
  static std::string flag;
  return flag;
}

std::shared_ptr<const Checkpoint> apply_context(std::shared_ptr<const Checkpoint> ckpt, int64_t ctx) {
  const int64_t declared = ckpt->config().n_ctx;
  if (ctx > declared)
    spdlog::warn("--ctx {} is longer than the {} positions {} declares: text past position {} may be worse", ctx,
                 declared, ckpt->path(), declared);
  return with_context(std::move(ckpt), ctx);
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
  request.nodes = o.discovery.endpoints(o.nodes);
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
  if (!o.draft.empty()) {
    options.draft_model = std::filesystem::absolute(o.draft).string();
    if (options.speculate == 0) options.speculate = kDefaultDraftTokens;
  }
  if (!o.standby.empty()) options.standby_nodes = split_node_list(o.standby);
  options.repair_wait = std::chrono::milliseconds(static_cast<int64_t>(o.repair_wait_s * 1000));
  options.stage_stall_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.stall_timeout_s * 1000));
  if (o.ctx > ckpt.config().n_ctx)
    throw std::invalid_argument("--ctx " + std::to_string(o.ctx) + " is longer than the " +
                                std::to_string(ckpt.config().n_ctx) + " positions " + model +
                                " declares; over nodes (which read the model's own) only a shorter one is possible");
  options.max_positions = o.ctx;
  options.on_load_progress = [](const std::string& node, const std::string& stage, uint64_t done, uint64_t total) {
    spdlog::info("loading {} on {}: {} of {} ({:.0f}%)", stage, node.empty() ? "this process" : node,
                 format_size(done), format_size(total), total ? 100.0 * done / total : 100.0);
  };
  options.transfer.chunk_bytes = static_cast<size_t>(parse_size(o.send_chunk));
  if (!o.send_rate.empty()) options.transfer.max_bytes_per_s = parse_size(o.send_rate);
  options.transfer.build_dir = o.shard_dir;
  options.transfer.on_progress = [](const TransferProgress& p) {
    if (p.done) return;  // deploy logs the end
    spdlog::info("sending {} to {}: {} of {} ({:.0f}%), {:.1f} MB/s, ETA {:.0f} s", p.stage, p.node,
                 format_size(p.bytes_done), format_size(p.bytes_total),
                 p.bytes_total ? 100.0 * p.bytes_done / p.bytes_total : 100.0, p.bytes_per_s / 1e6, p.eta_s);
  };
  const PlannedPipeline planned = plan_pipeline(sys, desc, options);
  if (planned.plan) {
    spdlog::info("plan: --nodes {} --layers {}", fmt::join(planned.plan->nodes(), ","), planned.plan->layer_ranges());
    for (const auto& l : planned.plan->left_out) spdlog::warn("the planner left out {}: {}", l.node, l.reason);
  }
  Pipeline pipeline = deploy(sys, planned.desc, options);
  for (const auto& s : pipeline.stages())
    spdlog::info("stage {} on {}: {:.1f} MB of weights, loaded in {:.0f} ms", s.describe, s.endpoint, s.weight_bytes / 1e6,
                 s.load_ms);
  return pipeline;
}

}  // namespace troupe::cli
