// The placement planner: contiguous layer ranges over the nodes that fit each node's memory
// (weights as stored + KV cache + overhead) and make the slowest stage as fast as possible.
// Synthetic model footprints with round numbers keep the expected plans obvious; the last
// tests read the footprint of the real models.
#include <gtest/gtest.h>

#include <functional>
#include <numeric>
#include <random>

#include "framework/placement/placement.h"
#include "models/format/checkpoint.h"
#include "models/convert/model_split.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

// A model of `n_layer` identical layers of `layer_mib` MiB and 1 GFLOP per token each; the
// embedding and head have the given sizes; the head costs no FLOPs unless asked.
ModelFootprint uniform_model(int64_t n_layer, uint64_t layer_mib, uint64_t embedding_mib = 0, uint64_t head_mib = 0) {
  ModelFootprint m;
  m.model = "test-model";
  m.n_layer = n_layer;
  m.n_ctx = 1024;
  m.layer_bytes.assign(static_cast<size_t>(n_layer), layer_mib * MiB);
  m.layer_flops.assign(static_cast<size_t>(n_layer), 1e9);
  m.embedding_bytes = embedding_mib * MiB;
  m.head_bytes = head_mib * MiB;
  m.kv_bytes_per_position = 0;
  return m;
}

// No overhead, no KV, no hop cost, unless a test sets them.
PlanRequest bare_request() {
  PlanRequest r;
  r.context_length = 1024;
  r.overhead_bytes = 0;
  r.hop_ms = 0;
  return r;
}

NodeCapacity node(const std::string& name, uint64_t memory, double gflops) { return {name, memory, gflops, 0}; }

std::vector<int64_t> layer_counts(const Plan& plan) {
  std::vector<int64_t> counts;
  for (const auto& s : plan.stages) counts.push_back(s.spec.n_layers());
  return counts;
}

// Every stage's range follows the previous one, the first embeds, the last holds the head.
void expect_valid_pipeline(const Plan& plan, int64_t n_layer) {
  ASSERT_FALSE(plan.stages.empty());
  int64_t next = 0;
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    const StageSpec& s = plan.stages[i].spec;
    EXPECT_EQ(s.layer_first, next);
    EXPECT_GE(s.layer_last, s.layer_first);
    EXPECT_EQ(s.has_embedding, i == 0);
    EXPECT_EQ(s.has_head, i + 1 == plan.stages.size());
    EXPECT_LE(plan.stages[i].memory_bytes, plan.stages[i].node_memory);
    next = s.layer_last + 1;
  }
  EXPECT_EQ(next, n_layer);
}

TEST(Placement, EqualNodesShareTheLayersEvenly) {
  const auto model = uniform_model(30, 100);
  const Plan plan = plan_placement({node("a", 8 * GiB, 50), node("b", 8 * GiB, 50), node("c", 8 * GiB, 50)}, model,
                                   bare_request());
  expect_valid_pipeline(plan, 30);
  EXPECT_EQ(layer_counts(plan), (std::vector<int64_t>{10, 10, 10}));
  EXPECT_NEAR(plan.bottleneck_ms, 10 * 1e9 / 50e9 * 1e3, 1e-6);  // 10 GFLOP at 50 GFLOPS = 200 ms
  EXPECT_TRUE(plan.left_out.empty());
}

TEST(Placement, HeadStageTakesALayerLessWhenTheClassifierCostsOne) {
  auto model = uniform_model(31, 100);
  model.head_flops = 1e9;  // the classifier costs as much as one layer
  const Plan plan = plan_placement({node("a", 8 * GiB, 50), node("b", 8 * GiB, 50), node("c", 8 * GiB, 50)}, model,
                                   bare_request());
  expect_valid_pipeline(plan, 31);
  EXPECT_NEAR(plan.bottleneck_ms, 11 * 1e9 / 50e9 * 1e3, 1e-6);  // 32 units of work: 11 + 11 + 10
  EXPECT_LE(plan.stages.back().spec.n_layers(), 10);              // the head is the 11th unit there
}

TEST(Placement, FasterNodeGetsProportionallyMoreLayers) {
  const auto model = uniform_model(30, 100);
  const Plan plan = plan_placement({node("slow", 8 * GiB, 50), node("fast", 8 * GiB, 100)}, model, bare_request());
  expect_valid_pipeline(plan, 30);
  ASSERT_EQ(plan.stages.size(), 2u);
  for (const auto& s : plan.stages) EXPECT_EQ(s.spec.n_layers(), s.node == "fast" ? 20 : 10) << s.node;
  EXPECT_NEAR(plan.bottleneck_ms, 200, 1e-6);
}

TEST(Placement, NodeTooSlowToHelpIsLeftOutAndThePlanIsFasterWithoutIt) {
  const auto model = uniform_model(32, 100);
  const std::vector<NodeCapacity> nodes = {node("fast1", 8 * GiB, 100), node("crawler", 8 * GiB, 5),
                                           node("fast2", 8 * GiB, 100)};
  const Plan plan = plan_placement(nodes, model, bare_request());
  expect_valid_pipeline(plan, 32);
  EXPECT_EQ(plan.nodes(), (std::vector<std::string>{"fast1", "fast2"}));
  EXPECT_NEAR(plan.bottleneck_ms, 160, 1e-6);  // 16 layers at 100 GFLOPS
  ASSERT_EQ(plan.left_out.size(), 1u);
  EXPECT_EQ(plan.left_out[0].node, "crawler");
  EXPECT_NE(plan.left_out[0].reason.find("too slow"), std::string::npos) << plan.left_out[0].reason;

  PlanRequest forced = bare_request();
  forced.use_every_node = true;
  const Plan with_crawler = plan_placement(nodes, model, forced);
  expect_valid_pipeline(with_crawler, 32);
  EXPECT_EQ(with_crawler.stages.size(), 3u);
  EXPECT_NEAR(with_crawler.bottleneck_ms, 200, 1e-6);  // its one layer at 5 GFLOPS
  EXPECT_GT(with_crawler.bottleneck_ms, plan.bottleneck_ms);
}

TEST(Placement, NodeThatCannotHoldOneLayerIsLeftOutForMemory) {
  const auto model = uniform_model(8, 500);
  const Plan plan = plan_placement({node("big", 8 * GiB, 50), node("tiny", 256 * MiB, 500)}, model, bare_request());
  EXPECT_EQ(plan.nodes(), (std::vector<std::string>{"big"}));
  ASSERT_EQ(plan.left_out.size(), 1u);
  EXPECT_NE(plan.left_out[0].reason.find("too little memory"), std::string::npos) << plan.left_out[0].reason;
}

TEST(Placement, ExtraNodeThatCannotSpeedThingsUpIsLeftOutAsNotNeeded) {
  const auto model = uniform_model(2, 100);
  const Plan plan =
    plan_placement({node("a", 8 * GiB, 50), node("b", 8 * GiB, 50), node("c", 8 * GiB, 50)}, model, bare_request());
  EXPECT_EQ(plan.stages.size(), 2u);
  ASSERT_EQ(plan.left_out.size(), 1u);
  EXPECT_NE(plan.left_out[0].reason.find("not needed"), std::string::npos) << plan.left_out[0].reason;
}

TEST(Placement, MemoryBoundBigNodeTakesMostLayers) {
  // Equal speeds, but the small nodes hold at most 5 layers of 700 MiB each (4 GiB - 300 MiB overhead).
  const auto model = uniform_model(32, 700);
  PlanRequest request = bare_request();
  request.overhead_bytes = 300 * MiB;
  const Plan plan = plan_placement(
    {node("small1", 4 * GiB, 50), node("big", 24 * GiB, 50), node("small2", 4 * GiB, 50)}, model, request);
  expect_valid_pipeline(plan, 32);
  ASSERT_EQ(plan.stages.size(), 3u);
  for (const auto& s : plan.stages) {
    if (s.node == "big") EXPECT_EQ(s.spec.n_layers(), 22);
    else EXPECT_EQ(s.spec.n_layers(), 5) << s.node;
  }
  EXPECT_NEAR(plan.bottleneck_ms, 22 * 20.0, 1e-6);
}

TEST(Placement, ModelThatFitsNowhereThrowsNamingEveryNodeWithNeededAndAvailable) {
  auto model = uniform_model(32, 200, 100, 100);
  model.kv_bytes_per_position = 16 * 1024;  // 16 MiB per layer at 1024 positions
  const std::vector<NodeCapacity> nodes = {node("alpha:7001", 2 * GiB, 50), node("beta:7002", 1 * GiB, 50),
                                           node("gamma:7003", 1536 * MiB, 50)};
  try {
    plan_placement(nodes, model, PlanRequest{1024, 1, 300 * MiB, 2.0, false});
    FAIL() << "expected a PlacementError";
  } catch (const PlacementError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("does not fit"), std::string::npos) << msg;
    EXPECT_NE(msg.find("6.45 GiB of weights"), std::string::npos) << msg;  // 32 x 200 + 100 + 100 MiB
    EXPECT_NE(msg.find("512 MiB of KV cache"), std::string::npos) << msg;
    EXPECT_NE(msg.find("alpha:7001: 2.00 GiB available, holds at most 8 of 32 layers"), std::string::npos) << msg;
    EXPECT_NE(msg.find("beta:7002: 1.00 GiB available, holds at most 3 of 32 layers"), std::string::npos) << msg;
    EXPECT_NE(msg.find("gamma:7003: 1.50 GiB available"), std::string::npos) << msg;
    EXPECT_NE(msg.find("an even share (11 layers) needs 2.61 GiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("together the nodes hold at most 16 of 32 layers"), std::string::npos) << msg;
  }
}

TEST(Placement, EmbeddingCountsOnTheFirstStageAndHeadOnTheLast) {
  // Each node holds exactly 10 units of 100 MiB; embedding and head are one unit each.
  const auto fits = uniform_model(18, 100, 100, 100);
  const std::vector<NodeCapacity> nodes = {node("a", 1000 * MiB, 50), node("b", 1000 * MiB, 50)};
  const Plan plan = plan_placement(nodes, fits, bare_request());
  ASSERT_EQ(plan.stages.size(), 2u);
  EXPECT_EQ(layer_counts(plan), (std::vector<int64_t>{9, 9}));
  EXPECT_EQ(plan.stages[0].weight_bytes, 10 * 100 * MiB);  // 9 layers + embedding
  EXPECT_EQ(plan.stages[1].weight_bytes, 10 * 100 * MiB);  // 9 layers + head

  // One more layer makes 21 units for 20 units of memory: no split can hold it.
  EXPECT_THROW(plan_placement(nodes, uniform_model(19, 100, 100, 100), bare_request()), PlacementError);
  // Without embedding and head the same 19 layers fit.
  EXPECT_NO_THROW(plan_placement(nodes, uniform_model(19, 100), bare_request()));
}

TEST(Placement, LargeEmbeddingShiftsLayersAwayFromTheFirstNode) {
  // Memory-tight: a holds 10 units, b holds 14; the embedding takes 4 units on whichever node goes first.
  const auto model = uniform_model(20, 100, 400, 0);
  const Plan plan = plan_placement({node("a", 1000 * MiB, 50), node("b", 1400 * MiB, 50)}, model, bare_request());
  expect_valid_pipeline(plan, 20);
  EXPECT_EQ(plan.nodes(), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(layer_counts(plan), (std::vector<int64_t>{10, 10}));
}

TEST(Placement, TiedHeadOnASingleStageIsHeldOnce) {
  auto model = uniform_model(4, 100, 50, 50);
  model.tied_bytes = 50 * MiB;  // the head is the embedding table
  const Plan plan = plan_placement({node("solo", 8 * GiB, 50)}, model, bare_request());
  ASSERT_EQ(plan.stages.size(), 1u);
  EXPECT_EQ(plan.stages[0].weight_bytes, model.total_weight_bytes());
  EXPECT_EQ(plan.stages[0].weight_bytes, 450 * MiB);
}

TEST(Placement, KvCacheGrowsWithSessionsAndContextLength) {
  auto model = uniform_model(10, 100);
  model.kv_bytes_per_position = 8 * 1024;  // 8 KiB per position per layer
  const std::vector<NodeCapacity> one = {node("solo", 4 * GiB, 50)};
  auto kv_with = [&](int64_t ctx, int32_t sessions) {
    PlanRequest r = bare_request();
    r.context_length = ctx;
    r.sessions = sessions;
    return plan_placement(one, model, r).stages[0].kv_bytes;
  };
  EXPECT_EQ(kv_with(1024, 1), 10 * 1024 * 8 * 1024ull);  // 80 MiB
  EXPECT_EQ(kv_with(1024, 4), 4 * kv_with(1024, 1));
  EXPECT_EQ(kv_with(4096, 1), 4 * kv_with(1024, 1));
  // 1000 MiB of weights: 2 GiB holds 1 session of 8192 positions (640 MiB of KV), not 2 (1280 MiB + weights > 2 GiB).
  PlanRequest r = bare_request();
  r.context_length = 8192;
  EXPECT_NO_THROW(plan_placement({node("solo", 2 * GiB, 50)}, model, r));
  r.sessions = 2;
  EXPECT_THROW(plan_placement({node("solo", 2 * GiB, 50)}, model, r), PlacementError);
}

TEST(Placement, MemoryBandwidthBoundsTheStageTimeWhenKnown) {
  const auto model = uniform_model(10, 100);  // 1000 MiB of weights, 10 GFLOP per token
  NodeCapacity n = node("laptop", 8 * GiB, 1000);  // 10 ms of compute
  n.mem_gbps = 10;                                  // 104.9 ms to read the weights once
  const Plan plan = plan_placement({n}, model, bare_request());
  EXPECT_NEAR(plan.bottleneck_ms, 1000.0 * MiB / 10e9 * 1e3, 1e-6);
}

TEST(Placement, HopsAddToTheLatencyOfOneToken) {
  const auto model = uniform_model(30, 100);
  PlanRequest r = bare_request();
  r.hop_ms = 5;
  const Plan plan = plan_placement({node("a", 8 * GiB, 50), node("b", 8 * GiB, 50), node("c", 8 * GiB, 50)}, model, r);
  ASSERT_EQ(plan.stages.size(), 3u);
  EXPECT_NEAR(plan.latency_ms, 3 * 200 + 2 * 5, 1e-6);
}

// Every ordered subset of nodes and every split into contiguous ranges, evaluated one by one.
struct BruteForce {
  double bottleneck = std::numeric_limits<double>::infinity();
  double latency = std::numeric_limits<double>::infinity();  // the lowest among the best bottlenecks
  double per_token = std::numeric_limits<double>::infinity();  // the lowest max(bottleneck, latency / sessions)
};

BruteForce brute_force(const std::vector<NodeCapacity>& nodes, const ModelFootprint& model, const PlanRequest& r) {
  BruteForce best;
  const int64_t L = model.n_layer;
  std::vector<size_t> order;
  std::vector<bool> used(nodes.size(), false);
  std::vector<StageSpec> specs;
  // Every way to cut the layers into order.size() contiguous ranges, in that node order.
  std::function<void(int64_t)> split = [&](int64_t first) {
    if (specs.size() == order.size()) {
      if (first != L) return;
      std::vector<NodeCapacity> chosen;
      for (size_t i : order) chosen.push_back(nodes[i]);
      std::vector<StageSpec> s = specs;
      s.front().has_embedding = true;
      s.back().has_head = true;
      try {
        const Plan p = evaluate_placement(chosen, s, model, r);
        if (p.bottleneck_ms < best.bottleneck - 1e-9) best.bottleneck = p.bottleneck_ms, best.latency = p.latency_ms;
        else if (p.bottleneck_ms <= best.bottleneck + 1e-9) best.latency = std::min(best.latency, p.latency_ms);
        best.per_token = std::min(best.per_token, p.per_token_ms());
      } catch (const PlacementError&) {
      }
      return;
    }
    for (int64_t last = first; last < L; ++last) {
      specs.push_back({first, last, false, false});
      split(last + 1);
      specs.pop_back();
    }
  };
  // Every ordered subset of the nodes.
  std::function<void()> choose = [&] {
    if (!order.empty()) split(0);
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (used[i]) continue;
      used[i] = true;
      order.push_back(i);
      choose();
      order.pop_back();
      used[i] = false;
    }
  };
  choose();
  return best;
}

TEST(Placement, PerTokenObjectiveWithOneSessionKeepsLayersOnTheFastestNodeThatHoldsThem) {
  // Pipelining cannot speed up one session: each token waits for the previous one, so a
  // second stage only adds its hop. With 4 sessions in flight the even split wins.
  const auto model = uniform_model(30, 100);
  const std::vector<NodeCapacity> nodes = {node("a", 8 * GiB, 50), node("b", 8 * GiB, 60), node("c", 8 * GiB, 50)};
  PlanRequest r = bare_request();
  r.hop_ms = 2;
  r.objective = PlanObjective::per_token;
  const Plan one = plan_placement(nodes, model, r);
  EXPECT_EQ(one.nodes(), (std::vector<std::string>{"b"}));
  EXPECT_NEAR(one.per_token_ms(), 500, 1e-6);  // 30 GFLOP at 60 GFLOPS
  ASSERT_EQ(one.left_out.size(), 2u);
  EXPECT_NE(one.left_out[0].reason.find("not needed"), std::string::npos) << one.left_out[0].reason;

  r.sessions = 4;
  const Plan four = plan_placement(nodes, model, r);
  EXPECT_EQ(four.stages.size(), 3u);
  EXPECT_NEAR(four.per_token_ms(), 200, 1e-6);  // a stage of 10 layers at 50 or 12 at 60 GFLOPS
}

TEST(Placement, PlanIsAsGoodAsTryingEveryOrderAndSplit) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> layer_mib(50, 150), mem_mib(100, 450), gflops(5, 100), bw(0, 3);
  int feasible = 0;
  for (int trial = 0; trial < 200; ++trial) {
    ModelFootprint m = uniform_model(7, 0, 0, 0);
    for (auto& b : m.layer_bytes) b = static_cast<uint64_t>(layer_mib(rng)) * MiB;
    for (auto& f : m.layer_flops) f = gflops(rng) * 1e8;
    m.embedding_bytes = static_cast<uint64_t>(layer_mib(rng)) * MiB;
    m.head_bytes = static_cast<uint64_t>(layer_mib(rng)) * MiB;
    m.head_flops = 5e8;
    std::vector<NodeCapacity> nodes;
    for (int n = 0; n < 4; ++n) {
      NodeCapacity c = node(std::string(1, static_cast<char>('a' + n)), static_cast<uint64_t>(mem_mib(rng)) * MiB,
                            gflops(rng));
      c.mem_gbps = bw(rng) * 5.0;
      nodes.push_back(c);
    }
    PlanRequest r = bare_request();
    r.hop_ms = 3;
    r.sessions = 1 + trial % 3;
    const BruteForce expected = brute_force(nodes, m, r);
    if (expected.bottleneck == std::numeric_limits<double>::infinity()) {
      EXPECT_THROW(plan_placement(nodes, m, r), PlacementError) << "trial " << trial;
      continue;
    }
    ++feasible;
    const Plan plan = plan_placement(nodes, m, r);
    expect_valid_pipeline(plan, m.n_layer);
    EXPECT_NEAR(plan.bottleneck_ms, expected.bottleneck, 1e-6) << "trial " << trial;
    EXPECT_NEAR(plan.latency_ms, expected.latency, 1e-6) << "trial " << trial;

    r.objective = PlanObjective::per_token;
    const Plan per_token = plan_placement(nodes, m, r);
    expect_valid_pipeline(per_token, m.n_layer);
    EXPECT_NEAR(per_token.per_token_ms(), expected.per_token, 1e-6) << "trial " << trial << ", per token";
  }
  EXPECT_GT(feasible, 50);  // the random tables cover both outcomes
  EXPECT_LT(feasible, 150);
}

TEST(Placement, GivenSplitThatDoesNotFitNamesTheNodeWithNeededAndAvailable) {
  const auto model = uniform_model(10, 100);
  try {
    evaluate_placement({node("a", 8 * GiB, 50), node("b:7002", 400 * MiB, 50)}, even_split(10, 2), model,
                       bare_request());
    FAIL() << "expected a PlacementError";
  } catch (const PlacementError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("b:7002 (layers 5-9 +head): needs 500 MiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("has 400 MiB"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("\n  a "), std::string::npos) << msg;
  }
}

TEST(Placement, TableListsEveryStageWithItsSizesAndTime) {
  auto model = uniform_model(4, 100, 10, 10);
  model.kv_bytes_per_position = 1024;
  const Plan plan = plan_placement({node("left", 8 * GiB, 50), node("right", 8 * GiB, 50)}, model, bare_request());
  const std::string table = format_plan_table(plan);
  EXPECT_NE(table.find("node   layers          weights MiB     KV MiB    needs/has MiB  est ms/token"),
            std::string::npos)
    << table;
  EXPECT_NE(table.find("left   0-1 +embedding        210.0        2.0         212/8192          40.0"),
            std::string::npos)
    << table;
  EXPECT_NE(table.find("right  2-3 +head             210.0        2.0         212/8192          40.0"),
            std::string::npos)
    << table;
  EXPECT_NE(table.find("--layers 0-1,2-3"), std::string::npos) << table;
}

// The footprint of a real model file accounts for every tensor exactly once.
class RealModelFootprint : public ::testing::TestWithParam<const char*> {};

TEST_P(RealModelFootprint, LayersEmbeddingAndHeadAddUpToEveryTensorOnce) {
  const auto ckpt = open_checkpoint(test::model_path(GetParam()));
  const ModelFootprint f = footprint_of(*ckpt);
  uint64_t all = 0;
  for (const auto& name : ckpt->tensor_names()) all += ckpt->tensor_nbytes(name);
  EXPECT_EQ(f.total_weight_bytes(), all);
  const uint64_t layers = std::accumulate(f.layer_bytes.begin(), f.layer_bytes.end(), uint64_t{0});
  EXPECT_EQ(layers + f.embedding_bytes + f.head_bytes + f.shared_bytes - f.tied_bytes, all);

  const ModelConfig& c = ckpt->config();
  ASSERT_EQ(f.n_layer, c.n_layer);
  for (const uint64_t b : f.layer_bytes) EXPECT_EQ(b, f.layer_bytes[0]);  // every block has the same tensors
  EXPECT_GT(f.layer_bytes[0], 0u);
  EXPECT_GT(f.embedding_bytes, 0u);
  EXPECT_GT(f.head_bytes, 0u);
  EXPECT_EQ(f.tied_bytes, c.tied_head ? ckpt->tensor_nbytes("token_embd.weight") : 0u);
  EXPECT_EQ(f.kv_bytes_per_position, static_cast<uint64_t>(2 * c.n_head_kv * c.head_dim() * 4));
}

INSTANTIATE_TEST_SUITE_P(Models, RealModelFootprint,
                         ::testing::Values("stories260K/stories260K-q4_0.gguf", "stories260K/stories260K.gguf",
                                           "stories260K/hf", "gpt2-tiny/gpt2-tiny.gguf", "gpt2-tiny/hf"),
                         [](const auto& info) { return test::param_name(info.param); });

TEST(Placement, RealQ4ModelLayersCountTheirQuantizedBytes) {
  const auto q4 = footprint_of(*open_checkpoint(test::model_path("stories260K/stories260K-q4_0.gguf")));
  const auto f32 = footprint_of(*open_checkpoint(test::model_path("stories260K/stories260K.gguf")));
  EXPECT_LT(q4.layer_bytes[0], f32.layer_bytes[0] / 3);  // Q4_0 is 4.5 bits per weight where rows allow
  EXPECT_EQ(q4.layer_flops, f32.layer_flops);
}

TEST(Placement, StageShardIsRefusedForPlanning) {
  test::TempDir dir;
  const auto paths = write_stage_shards(test::model_path("stories260K/stories260K.gguf"), even_split(5, 2), dir.path());
  EXPECT_THROW(footprint_of(*open_checkpoint(paths.at(0))), std::invalid_argument);
}

}  // namespace
}  // namespace troupe
