// planned_stages(model).on({nodes}): the DSL leaves the split to the planner, and deploy()
// resolves it from what real caf-node daemons on 127.0.0.1 report, before anything loads.
// The planned pipeline gives bitwise the single-process numbers, follows the nodes'
// --memory-limit, and refuses a model that cannot fit with the planner's numbers.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "models/runtime/byte_size.h"
#include "framework/cluster/cluster.h"
#include "framework/deploy/deploy.h"
#include "framework/deploy/deploy_planning.h"
#include "framework/dsl/dsl.h"
#include "models/format/checkpoint.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"
#include "tests/test_support_pipeline.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;
using test::actor_system;
using test::bitwise_same;
using test::NodeProcess;
using test::Output;
using test::single_process;
using test::through;

const std::string kModel = "stories260K/stories260K.gguf";  // 5 layers

test::NodeProcesses start_nodes(const std::vector<std::vector<std::string>>& extra_args) {
  return test::start_nodes(test::models_dir(), test::kPipelineThreads, "node", extra_args);
}

DeployOptions test_options() {  // every wait bounded
  DeployOptions o = test::bounded_deploy_options();
  o.local_threads = DeployOptions{}.local_threads;  // the default, as these tests have always had (no local stages)
  return o;
}

dsl::PipelineDesc planned_over(const std::vector<std::string>& nodes) {
  using namespace dsl;
  return tokenizer(kModel) >> planned_stages(kModel).on(nodes) >> sampler(greedy());
}

// -- memory limits from the model's own numbers ------------------------------------------------

// A --memory-limit that holds the runtime overhead, the embedding or the head, and exactly one
// layer with its KV cache (not two: checked by the caller), as the planner counts.
uint64_t limit_for_one_layer(const ModelFootprint& f) {
  uint64_t layer = 0;
  for (uint64_t b : f.layer_bytes) layer = std::max(layer, b);
  layer += f.kv_bytes_per_position * static_cast<uint64_t>(f.n_ctx);
  return kDefaultOverheadBytes + f.shared_bytes + std::max(f.embedding_bytes, f.head_bytes) + layer + 4096;
}

ModelFootprint stories_footprint() { return footprint_of(*open_checkpoint(test::model_path(kModel))); }

bool room_for_one_layer_only(const ModelFootprint& f) {
  const uint64_t smallest_layer = *std::min_element(f.layer_bytes.begin(), f.layer_bytes.end()) +
                                  f.kv_bytes_per_position * static_cast<uint64_t>(f.n_ctx);
  return std::max(f.embedding_bytes, f.head_bytes) + 4096 < smallest_layer;
}

// -- the description ---------------------------------------------------------------------------

TEST(DslPlanning, PlannedDescriptionDescribesItselfAndValidatesItsNodes) {
  using namespace dsl;
  const PipelineDesc desc =
    tokenizer(kModel) >> planned_stages(kModel).on({"a:1", "b:2", "c:3"}).for_sessions(2) >> sampler(greedy());
  EXPECT_NO_THROW(desc.validate());
  EXPECT_EQ(desc.describe(), "tokenizer(" + kModel + ") >> planned_stages(" + kModel +
                               ") @ {a:1, b:2, c:3} for 2 sessions >> sampler(greedy)");
  EXPECT_TRUE(desc.stages.empty());
  ASSERT_TRUE(desc.planned.has_value());
  EXPECT_EQ(desc.planned->sessions, 2);

  auto error_of = [](const PipelineDesc& d) {
    try {
      d.validate();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(valid)");
  };
  EXPECT_EQ(error_of(tokenizer(kModel) >> planned_stages(kModel) >> sampler(greedy())),
            "planned_stages(" + kModel + ") names no nodes: give them with .on({\"host:port\", ...})");
  EXPECT_EQ(error_of(planned_stages(kModel).on({"a:1", "b:2", "a:1"}) >> sampler(greedy())),
            "planned_stages(" + kModel + "): node a:1 is named twice");
  EXPECT_EQ(error_of(planned_stages("").on({"a:1"}) >> sampler(greedy())), "planned_stages names no model");

  // Either explicit stages or one planned part.
  PipelineDesc mixed = desc;
  mixed.stages.push_back(stage(kModel, layers(0, 4)));
  EXPECT_EQ(error_of(mixed), "a pipeline is either explicit stages or one planned_stages, not both: this one has 1 "
                             "stage and planned_stages(" + kModel + ")");
  EXPECT_THROW(tokenizer(kModel) >> planned_stages(kModel).on({"a:1"}) >> stage(kModel, layers(0, 4)),
               std::invalid_argument);
  EXPECT_THROW(tokenizer(kModel) >> stage(kModel, layers(0, 1)) >> planned_stages(kModel).on({"a:1"}),
               std::invalid_argument);
  EXPECT_EQ(error_of(PipelineDesc{}), "a pipeline needs at least one stage (stage(...) or planned_stages(...))");
  EXPECT_THROW(planned_stages(kModel).for_sessions(0), std::invalid_argument);
}

// -- on real nodes ------------------------------------------------------------------------------

TEST(DslPlanning, PlannedPipelineOverThreeNodesGivesBitwiseTheSingleProcessTokensAndLogits) {
  const auto nodes = start_nodes({{}, {}, {}});
  const auto desc = planned_over(test::endpoints(nodes));
  const auto prompt = test::load_reference("stories260K.once-upon-a-time").prompt_tokens;
  const Output expected = single_process(kModel, prompt, 32, dsl::greedy());
  ASSERT_EQ(expected.tokens.size(), 32u);

  const PlannedPipeline planned = plan_pipeline(actor_system(), desc, test_options());
  ASSERT_TRUE(planned.plan.has_value());
  std::printf("%s", format_plan_table(*planned.plan).c_str());
  EXPECT_GE(planned.plan->stages.size(), 2u) << format_plan_table(*planned.plan);
  EXPECT_NO_THROW(planned.desc.validate());
  EXPECT_FALSE(planned.desc.planned.has_value());

  // deploy() plans by itself; the nodes report the same speeds, so it picks the same split.
  Pipeline p = deploy(actor_system(), desc, test_options());
  std::vector<std::string> deployed_on;
  for (const auto& s : p.stages()) deployed_on.push_back(s.endpoint);
  EXPECT_EQ(deployed_on, planned.plan->nodes());
  EXPECT_TRUE(bitwise_same(expected, through(p, prompt, 32, dsl::greedy())));
}

TEST(DslPlanning, NodesLimitedToOneLayerGetOneLayerAndTheUnlimitedNodeTheRest) {
  const ModelFootprint f = stories_footprint();
  ASSERT_EQ(f.n_layer, 5);
  ASSERT_TRUE(room_for_one_layer_only(f));
  const std::string one_layer = std::to_string(limit_for_one_layer(f));
  const auto nodes = start_nodes({{"--memory-limit", one_layer}, {}, {"--memory-limit", one_layer}});
  const std::string big = nodes[1]->endpoint();

  // An even split (2, 2, 1 layers) does not fit: the limited nodes must take one layer each.
  const PlannedPipeline planned = plan_pipeline(actor_system(), planned_over(test::endpoints(nodes)), test_options());
  ASSERT_TRUE(planned.plan.has_value());
  std::printf("%s", format_plan_table(*planned.plan).c_str());
  ASSERT_EQ(planned.desc.stages.size(), 3u) << format_plan_table(*planned.plan);
  for (const dsl::StageDesc& s : planned.desc.stages) {
    const int64_t n_layers = s.range.last - s.range.first + 1;
    EXPECT_EQ(n_layers, s.endpoint == big ? 3 : 1) << s.endpoint << " got layers " << s.range.first << "-"
                                                   << s.range.last << "\n" << format_plan_table(*planned.plan);
  }

  // And the nodes load it (each checks its limit at spawn) and it runs as one process would.
  Pipeline p = deploy(actor_system(), planned.desc, test_options());
  const auto prompt = test::load_reference("stories260K.lily-and-tom").prompt_tokens;
  EXPECT_TRUE(
    bitwise_same(single_process(kModel, prompt, 16, dsl::greedy()), through(p, prompt, 16, dsl::greedy())));
}

// A node the plan leaves out (here: no room for one layer) stands by for repairs.
TEST(DslPlanning, ANodeThePlanLeavesOutStandsByToTakeALostStageOver) {
  const std::string no_room = std::to_string(kDefaultOverheadBytes + 4096);
  const auto nodes = start_nodes({{}, {"--memory-limit", no_room}, {}});
  Pipeline p = deploy(actor_system(), planned_over(test::endpoints(nodes)), test_options());
  for (const auto& s : p.stages()) EXPECT_NE(s.endpoint, nodes[1]->endpoint());
  EXPECT_EQ(p.standby_nodes(), std::vector<std::string>{nodes[1]->endpoint()});
  p.add_standby_nodes({nodes[1]->endpoint(), "127.0.0.1:1"});  // one known, one new
  EXPECT_EQ(p.standby_nodes(), (std::vector<std::string>{nodes[1]->endpoint(), "127.0.0.1:1"}));
}

TEST(DslPlanning, ModelThatCannotFitIsRefusedWithThePlannersNumbersBeforeAnyStageIsSpawned) {
  const ModelFootprint f = stories_footprint();
  ASSERT_TRUE(room_for_one_layer_only(f));
  const uint64_t limit = limit_for_one_layer(f);
  const std::vector<std::string> limited = {"--memory-limit", std::to_string(limit)};
  const auto nodes = start_nodes({limited, limited, limited});  // 3 of the 5 layers at most

  const auto t0 = std::chrono::steady_clock::now();
  std::string error = "(no error)";
  try {
    deploy(actor_system(), planned_over(test::endpoints(nodes)), test_options());
  } catch (const DeployError& e) {
    error = e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  std::printf("%s\n", error.c_str());
  EXPECT_NE(error.find("does not fit on these 3 nodes"), std::string::npos) << error;
  for (const auto& n : nodes)
    EXPECT_NE(error.find(n->endpoint() + ": " + format_size(limit) + " available, holds at most 1 of 5 layers"),
              std::string::npos)
      << error;
  EXPECT_NE(error.find("together the nodes hold at most 3 of 5 layers"), std::string::npos) << error;

  for (const auto& n : nodes) {
    EXPECT_EQ(connect_node(actor_system(), parse_endpoint(n->endpoint()), 5s).info.stages, 0) << n->endpoint();
    EXPECT_EQ(n->log().find("spawning stage"), std::string::npos) << n->log();
  }
}

}  // namespace
}  // namespace troupe
