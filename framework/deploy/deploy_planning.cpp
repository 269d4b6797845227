// Built into troupe_actors (see actors/CMakeLists.txt), beside deploy.cpp.
#include "framework/deploy/deploy_planning.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>
#include <spdlog/spdlog.h>

#include "actors/node_actor.h"
#include "framework/cluster/cluster.h"
#include "models/format/checkpoint.h"
#include "models/arch/open_checkpoint.h"
#include "models/format/gguf_file.h"

namespace troupe {

namespace {

// A plan made of the shards the nodes hold is taken when its slowest stage is at most this
// much slower than the best plan's, plus one network hop (differences smaller than a hop
// are noise in the measured speeds, and a different plan would send every shard again).
constexpr double kCachedPlanSlack = 1.25;

// What the model asks of a node, from its file here; no weights are read.
ModelFootprint footprint_here(const dsl::PlannedStagesDesc& planned, const DeployOptions& options) {
  const std::string path = resolve_model_path(options.local_models_dir, planned.model);
  try {
    return footprint_of(*open_checkpoint(path));
  } catch (const std::exception& e) {
    throw DeployError("planned_stages(" + planned.model + "): the planner reads the model in this process (" + path +
                      ", under DeployOptions::local_models_dir '" + options.local_models_dir + "'): " + e.what());
  }
}

// The positions each session's KV cache holds, as the stages will size it.
int64_t context_length(const ModelFootprint& model, const DeployOptions& options) {
  if (options.max_positions <= 0) return model.n_ctx;
  return model.n_ctx > 0 ? std::min(options.max_positions, model.n_ctx) : options.max_positions;
}

// The nodes' cached shards of this model (as this client's shard index knows their hashes)
// that chain into a whole pipeline, each node used once: the plan of an earlier run, which
// needs no transfer. Empty when there is none.
std::vector<std::pair<size_t, StageSpec>> cached_cover(const std::vector<proto::NodeInfo>& infos,
                                                       const std::vector<proto::CachedShard>& known, int64_t n_layer) {
  std::vector<std::vector<StageSpec>> held(infos.size());
  for (size_t n = 0; n < infos.size(); ++n)
    for (const auto& c : infos[n].cached)
      for (const auto& k : known)
        if (k.sha256 == c.sha256) held[n].push_back(k.spec);
  std::vector<std::pair<size_t, StageSpec>> chain, best;
  std::set<size_t> used;
  std::function<void(int64_t)> extend = [&](int64_t next) {
    if (!best.empty()) return;
    if (next == n_layer) {
      if (!chain.empty() && chain.back().second.has_head) best = chain;
      return;
    }
    for (size_t n = 0; n < held.size(); ++n) {
      if (used.count(n)) continue;
      for (const auto& spec : held[n]) {
        if (spec.layer_first != next || spec.has_embedding != (next == 0) || spec.has_head != (spec.layer_last == n_layer - 1))
          continue;
        chain.emplace_back(n, spec);
        used.insert(n);
        extend(spec.layer_last + 1);
        used.erase(n);
        chain.pop_back();
      }
    }
  };
  extend(0);
  return best;
}

}  // namespace

// A shard's bytes beyond its tensors: the source GGUF's header (metadata, vocabulary, tensor
// table), which a shard copies; a generous guess for a Hugging Face directory.
uint64_t shard_overhead_bytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) {
    try {
      const GgufFile f(path);
      uint64_t tensors = 0;
      for (const auto& t : f.tensors()) tensors += t.nbytes;
      const uint64_t size = std::filesystem::file_size(path, ec);
      if (size > tensors) return size - tensors + (uint64_t(64) << 10);
    } catch (const std::exception&) {
    }
  }
  return uint64_t(8) << 20;
}

PlannedPipeline plan_pipeline(caf::actor_system& sys, const dsl::PipelineDesc& desc, const DeployOptions& options) {
  if (!desc.planned) return {desc, std::nullopt};
  try {
    desc.validate();
  } catch (const std::invalid_argument& e) {
    throw DeployError(std::string("invalid pipeline: ") + e.what());
  }
  const dsl::PlannedStagesDesc& planned = *desc.planned;
  const ModelFootprint footprint = footprint_here(planned, options);

  std::vector<NodeCapacity> capacities;
  std::vector<proto::NodeInfo> infos;
  try {
    for (const auto& e : planned.nodes) {
      infos.push_back(connect_node(sys, parse_endpoint(e), options.connect_timeout).info);
      capacities.push_back(capacity_of(infos.back()));
      capacities.back().name = e;  // as the user named it: the plan's node list feeds --nodes again
      // Weights are sent to a node with a cache: its stage's shard must fit the cache's cap.
      if (!options.send_weights) capacities.back().disk_bytes = 0;
    }
  } catch (const std::exception& e) {
    throw DeployError(e.what());
  }
  const std::string model_path = resolve_model_path(options.local_models_dir, planned.model);
  PlanRequest request;
  request.context_length = context_length(footprint, options);
  request.sessions = planned.sessions;
  request.shard_overhead_bytes = shard_overhead_bytes(model_path);
  PlannedPipeline out;
  try {
    out.plan = plan_placement(capacities, footprint, request);
  } catch (const std::exception& e) {  // PlacementError: needed vs available, per node
    throw DeployError(e.what());
  }
  // Prefer the shards the nodes already hold (an earlier run's plan) when that plan fits and
  // is nearly as fast: nothing then travels. Measured speeds vary between runs; without this,
  // a plan a little different from the last would send every shard again.
  if (options.send_weights) {
    const std::string build_dir =
      options.transfer.build_dir.empty() ? default_shard_build_dir() : options.transfer.build_dir;
    const auto cover = cached_cover(infos, ShardIndex(build_dir).of_model(model_path), footprint.n_layer);
    if (!cover.empty()) {
      std::vector<NodeCapacity> nodes;
      std::vector<StageSpec> specs;
      for (const auto& [n, spec] : cover) nodes.push_back(capacities[n]), specs.push_back(spec);
      try {
        Plan cached = evaluate_placement(nodes, specs, footprint, request);
        if (cached.bottleneck_ms <= out.plan->bottleneck_ms * kCachedPlanSlack + request.hop_ms) {
          for (auto& st : cached.stages) st.node_index = cover[&st - cached.stages.data()].first;
          spdlog::info("plan: the nodes already hold the shards of {}: using them (nothing to send)",
                       cached.layer_ranges());
          cached.left_out.clear();
          for (size_t n = 0; n < capacities.size(); ++n)
            if (std::none_of(cover.begin(), cover.end(), [n](const auto& c) { return c.first == n; }))
              cached.left_out.push_back({capacities[n].name, "not needed: the other nodes hold the model's shards already"});
          out.plan = std::move(cached);
        }
      } catch (const std::exception&) {  // no longer fits (less memory now): plan afresh
      }
    }
  }

  out.desc.tokenizer = desc.tokenizer;
  out.desc.sampler = desc.sampler;
  for (const PlannedStage& s : out.plan->stages) {
    dsl::StageDesc stage = dsl::stage(planned.model, dsl::layers(s.spec.layer_first, s.spec.layer_last)).on(s.node);
    stage.wire_dtype = planned.wire_dtype;
    stage.threads = planned.threads;
    out.desc.stages.push_back(std::move(stage));
  }
  return out;
}

}  // namespace troupe
