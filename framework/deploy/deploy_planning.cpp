// Built into troupe_actors (see actors/CMakeLists.txt), beside deploy.cpp.
#include "framework/deploy/deploy_planning.h"

#include <algorithm>

#include "actors/node_actor.h"
#include "framework/cluster/cluster.h"
#include "models/format/checkpoint.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {

namespace {

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

}  // namespace

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
  try {
    capacities = query_node_capacities(sys, planned.nodes, options.connect_timeout);
  } catch (const std::exception& e) {
    throw DeployError(e.what());
  }
  PlanRequest request;
  request.context_length = context_length(footprint, options);
  request.sessions = planned.sessions;
  PlannedPipeline out;
  try {
    out.plan = plan_placement(capacities, footprint, request);
  } catch (const std::exception& e) {  // PlacementError: needed vs available, per node
    throw DeployError(e.what());
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
