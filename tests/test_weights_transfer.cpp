// Weights travel to the nodes (framework/deploy/shard_transfer.h, actors/shard_cache.h):
// real caf-node daemons with empty model directories and a shard cache each, and the troupe
// client as the only holder of the model file.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <fstream>
#include <regex>
#include <thread>

#include "actors/protocol/content_hash.h"
#include "framework/placement/placement.h"
#include "framework/deploy/deploy.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"
#include "tests/test_support_pipeline.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;

const char* kModel = "stories260K/stories260K.gguf";
const char* kPrompt = "Once upon a time";

std::vector<std::string> generate_argv(const std::string& nodes, const std::string& layers,
                                       const std::string& shard_dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {test::bin_path("troupe"), "generate", "--model", test::model_path(kModel),
                                   "--prompt", kPrompt, "-n", "40", "--temp", "0", "--threads", "1",
                                   "--nodes", nodes, "--shard-dir", shard_dir};
  if (!layers.empty()) argv.insert(argv.end(), {"--layers", layers});
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

std::string single_process_text() {
  static const std::string text = [] {
    const auto r = test::run_command({test::bin_path("troupe"), "generate", "--model", test::model_path(kModel),
                                      "--prompt", kPrompt, "-n", "40", "--temp", "0", "--threads", "1"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }();
  return text;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The complete shards in a node's cache: each file's SHA-256 must be its name.
std::vector<std::string> cached_shards(const std::string& cache) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cache, ec))
    if (e.path().extension() == ".gguf") out.push_back(e.path().string());
  return out;
}

void expect_named_by_hash(const std::string& path) {
  EXPECT_EQ(sha256_of_file(path), fs::path(path).stem().string()) << path;
}

struct CachedNodes {
  test::TempDir dir;
  test::NodeProcesses nodes;
  std::vector<std::string> caches;
  explicit CachedNodes(size_t n, std::vector<std::string> caps = {}) {
    fs::create_directories(dir.file("empty-models"));
    std::vector<std::vector<std::string>> args;
    for (size_t i = 0; i < n; ++i) {
      caches.push_back(dir.file("cache" + std::to_string(i)));
      args.push_back({"--cache", caches.back()});
      if (i < caps.size() && !caps[i].empty()) args.back().insert(args.back().end(), {"--cache-cap", caps[i]});
    }
    nodes = test::start_nodes(dir.file("empty-models"), 1, "cached", args);
  }
  std::string list() const { return test::node_list(nodes); }
};

// stories260K as layers 0-2 and 3-4 on the two nodes, greedy.
dsl::PipelineDesc two_stages_on(const CachedNodes& c) {
  using namespace dsl;
  return tokenizer(kModel) >> stage(kModel, layers(0, 2)).on(c.nodes[0]->endpoint()) >>
         stage(kModel, layers(3, 4)).on(c.nodes[1]->endpoint()) >> sampler(greedy());
}

TEST(WeightsTransfer, FirstRunSendsEachNodeItsShardThenTheSecondRunSendsNothing) {
  CachedNodes c(3);
  test::TempDir out;
  const auto first = test::run_command(generate_argv(c.list(), "0-1,2-3,4-4", out.path()), 300);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, single_process_text());
  EXPECT_EQ(count(first.err, "sending the shard of"), 3u) << first.err;
  EXPECT_EQ(count(first.err, "SHA-256 checked by the node"), 3u) << first.err;
  EXPECT_GE(count(first.err, " ETA "), 3u) << first.err;  // progress per node: bytes, rate, ETA
  for (size_t i = 0; i < 3; ++i) {
    const auto shards = cached_shards(c.caches[i]);
    ASSERT_EQ(shards.size(), 1u) << c.caches[i];
    expect_named_by_hash(shards[0]);
    EXPECT_NE(c.nodes[i]->log().find("SHA-256 checked"), std::string::npos) << c.nodes[i]->log();
  }
  // The client keeps no copy once the nodes have theirs.
  EXPECT_EQ(count(fs::exists(out.path()) ? [&] {
    std::string names;
    for (const auto& e : fs::directory_iterator(out.path())) names += e.path().filename().string() + " ";
    return names;
  }() : std::string(), ".gguf"), 0u);

  const auto second = test::run_command(generate_argv(c.list(), "0-1,2-3,4-4", out.path()), 300);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, single_process_text());
  EXPECT_EQ(count(second.err, "sending the shard of"), 0u) << second.err;
  EXPECT_EQ(count(second.err, "nothing to send"), 3u) << second.err;

  // Planned (no --layers): the planner prefers a plan made of the shards the nodes hold.
  const auto planned = test::run_command(generate_argv(c.list(), "", out.path()), 300);
  ASSERT_EQ(planned.exit_code, 0) << planned.err;
  EXPECT_EQ(planned.out, single_process_text());
  EXPECT_EQ(count(planned.err, "sending the shard of"), 0u) << planned.err;
}

TEST(WeightsTransfer, ACutTransferResumesFromTheBytesTheNodeKept) {
  CachedNodes c(1);
  test::TempDir out;
  const std::string partial_dir = c.caches[0] + "/partial";
  {
    // 4 KiB chunks at 64 KiB/s: the 1.2 MB shard takes ~18 s, and the client is killed in the middle.
    test::ChildProcess client(generate_argv(c.list(), "", out.path(), {"--send-chunk", "4K", "--send-rate", "64K"}));
    auto partial_bytes = [&] {
      size_t n = 0;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(partial_dir, ec))
        if (e.path().extension() == ".part") n = test::file_size(e.path().string());
      return n;
    };
    ASSERT_TRUE(test::eventually([&] { return partial_bytes() > 100000; }, std::chrono::seconds(120)))
      << client.log() << c.nodes[0]->log();
    ::kill(client.pid(), SIGKILL);
    client.stop();
    EXPECT_TRUE(cached_shards(c.caches[0]).empty());
  }
  const auto resumed = test::run_command(generate_argv(c.list(), "", out.path()), 300);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(resumed.err, m, std::regex("resuming at byte ([0-9]+)"))) << resumed.err;
  EXPECT_GT(std::stoull(m[1].str()), 100000u);
  EXPECT_EQ(resumed.out, single_process_text());
  const auto shards = cached_shards(c.caches[0]);
  ASSERT_EQ(shards.size(), 1u);
  expect_named_by_hash(shards[0]);
}

TEST(WeightsTransfer, ACorruptedCachedShardIsDetectedAndReplaced) {
  CachedNodes c(1);
  test::TempDir out;
  const auto first = test::run_command(generate_argv(c.list(), "", out.path()), 300);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto shards = cached_shards(c.caches[0]);
  ASSERT_EQ(shards.size(), 1u);
  {  // one flipped byte in the middle of the weights
    std::fstream f(shards[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(600000);
    char b = 0;
    f.read(&b, 1);
    b = static_cast<char>(b ^ 0x5a);
    f.seekp(600000);
    f.write(&b, 1);
  }
  const auto second = test::run_command(generate_argv(c.list(), "", out.path()), 300);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(c.nodes[0]->log().find("is corrupted"), std::string::npos) << c.nodes[0]->log();
  EXPECT_EQ(count(second.err, "sending the shard of"), 1u) << second.err;
  EXPECT_EQ(second.out, single_process_text());
  shards = cached_shards(c.caches[0]);
  ASSERT_EQ(shards.size(), 1u);
  expect_named_by_hash(shards[0]);
}

TEST(WeightsTransfer, ANodeWhoseCacheCapCannotHoldALayerIsPlannedAroundWithTheReason) {
  CachedNodes c(2, {"64K", ""});
  test::TempDir out;
  const auto plan = test::run_command({test::bin_path("troupe"), "plan", "--model", test::model_path(kModel),
                                       "--nodes", c.list()});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_NE((plan.out + plan.err).find("too little disk"), std::string::npos) << plan.out << plan.err;
  const auto run = test::run_command(generate_argv(c.list(), "", out.path()), 300);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, single_process_text());
  EXPECT_TRUE(cached_shards(c.caches[0]).empty());
  EXPECT_EQ(cached_shards(c.caches[1]).size(), 1u);
}

TEST(WeightsTransfer, TheDslReportsProgressPerNodeAndThePipelineGivesTheSingleProcessBits) {
  CachedNodes c(2);
  test::TempDir out;
  const auto desc = two_stages_on(c);
  DeployOptions options = test::bounded_deploy_options();
  options.transfer.build_dir = out.path();
  options.transfer.chunk_bytes = 64 << 10;
  std::mutex mutex;
  std::map<std::string, std::vector<TransferProgress>> seen;
  options.transfer.on_progress = [&](const TransferProgress& p) {
    std::lock_guard<std::mutex> lock(mutex);
    seen[p.node].push_back(p);
  };
  Pipeline p = deploy(test::actor_system(), desc, options);
  ASSERT_EQ(p.shard_transfers().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const ShardOutcome& o = p.shard_transfers()[i];
    EXPECT_TRUE(o.built);
    EXPECT_EQ(o.bytes_sent, o.size);
    EXPECT_TRUE(is_sha256_hex(o.sha256));
    std::lock_guard<std::mutex> lock(mutex);
    const auto& reports = seen[c.nodes[i]->endpoint()];
    ASSERT_FALSE(reports.empty());
    EXPECT_TRUE(reports.back().done);
    EXPECT_EQ(reports.back().bytes_done, o.size);
    EXPECT_EQ(reports.back().sha256, o.sha256);
    for (size_t k = 1; k < reports.size(); ++k) EXPECT_GE(reports[k].bytes_done, reports[k - 1].bytes_done);
  }
  const auto prompt = p.encode(kPrompt);
  SamplingOptions greedy_sampling;
  greedy_sampling.temperature = 0;
  EXPECT_TRUE(test::bitwise_same(test::single_process(kModel, prompt, 24, greedy_sampling),
                                 test::through(p, prompt, 24, greedy_sampling)));
  p.shutdown();
}

// A stage whose node dies is taken over by the surviving node, which holds no model file
// (empty models dir, a cache): the supervisor sends it that stage's shard first, and the
// pipeline goes on with the single process's bits.
TEST(WeightsTransfer, ASurvivorTakingOverAStageGetsItsShardFirst) {
  CachedNodes c(2);
  test::TempDir out;
  const auto desc = two_stages_on(c);
  DeployOptions options = test::bounded_deploy_options();
  options.transfer.build_dir = out.path();
  Pipeline p = deploy(test::actor_system(), desc, options);
  ASSERT_EQ(cached_shards(c.caches[0]).size(), 1u);
  kill(c.nodes[1]->pid(), SIGKILL);
  ASSERT_TRUE(test::eventually([&] { return !p.recoveries().empty(); }, std::chrono::seconds(120))) << p.health().detail;
  EXPECT_EQ(p.recoveries()[0].to_node, c.nodes[0]->endpoint());
  const auto shards = cached_shards(c.caches[0]);
  EXPECT_EQ(shards.size(), 2u);  // its own and the one of the stage it took over
  for (const auto& shard : shards) expect_named_by_hash(shard);
  const auto prompt = p.encode(kPrompt);
  EXPECT_TRUE(test::bitwise_same(test::single_process(kModel, prompt, 24, dsl::greedy()), test::through(p, prompt, 24, dsl::greedy())));
  p.shutdown();
}

TEST(WeightsTransfer, ThePlannerGivesANodeNoMoreLayersThanItsCacheCapHolds) {
  ModelFootprint m;
  m.model = "uniform";
  m.n_layer = 8;
  m.n_ctx = 64;
  m.layer_bytes.assign(8, 100u << 20);
  m.layer_flops.assign(8, 1e9);
  std::vector<NodeCapacity> nodes = {{"a", 64ull << 30, 100, 10, 250ull << 20}, {"b", 64ull << 30, 100, 10, 0}};
  PlanRequest r;
  r.overhead_bytes = 0;
  r.hop_ms = 0;
  r.use_every_node = true;
  const Plan plan = plan_placement(nodes, m, r);
  for (const auto& s : plan.stages) {
    if (s.node != "a") continue;
    EXPECT_LE(s.spec.n_layers(), 2) << format_plan_table(plan);
  }
  EXPECT_THROW(evaluate_placement(nodes, {StageSpec{0, 3, true, false}, StageSpec{4, 7, false, true}}, m, r),
               PlacementError);
}

}  // namespace
}  // namespace troupe
