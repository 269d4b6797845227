#pragma once
// Resolving the planned part of a description (dsl::planned_stages) into explicit stages,
// before anything loads: ask each named node what it may use (memory, capped by its
// --memory-limit; measured speed), read the model's tensor table in this process, and let
// the planner (framework/placement.h) choose which node runs which layers. deploy() does
// this first; call it yourself to see the plan before deploying:
//
//   troupe::PlannedPipeline planned = troupe::plan_pipeline(sys, desc, options);
//   std::cout << troupe::format_plan_table(*planned.plan);
//   troupe::Pipeline p = troupe::deploy(sys, planned.desc, options);
//
// Built into troupe_actors with deploy.cpp (it resolves model paths as nodes do).
#include <caf/fwd.hpp>
#include <optional>

#include "framework/deploy/deploy.h"
#include "framework/dsl/dsl.h"
#include "framework/placement/placement.h"

namespace troupe {

struct PlannedPipeline {
  dsl::PipelineDesc desc;   // explicit stages only: one per node the plan uses, in pipeline order
  std::optional<Plan> plan;  // the planner's choice; none when the description gave its stages
};

// A description with explicit stages comes back as it is. For a planned one: the model is
// read at DeployOptions::local_models_dir (as the tokenizer is), the context is
// DeployOptions::max_positions (capped by the model's n_ctx; 0: n_ctx), the sessions those
// of planned_stages(...). Throws DeployError for an invalid description, a node that does
// not answer within DeployOptions::connect_timeout, a model it cannot read, or a model that
// does not fit (the planner's message: needed vs available, per node).
PlannedPipeline plan_pipeline(caf::actor_system& sys, const dsl::PipelineDesc& desc, const DeployOptions& options = {});

// What a stage shard of this model holds beyond its tensors (metadata and vocabulary, as
// copied from a GGUF source), for PlanRequest::shard_overhead_bytes.
uint64_t shard_overhead_bytes(const std::string& model_path);

}  // namespace troupe
