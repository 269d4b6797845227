// An idle caf-node: the memory it holds once its start-up speed probes are done (no LibTorch
// until its first stage), and its speed measured again when it has hosted no work for a
// while, never while a stage works (caf-node --reprobe-idle), with the figures' age and count
// in what it reports.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include "actors/node_actor.h"
#include "framework/cluster/cluster.h"
#include "framework/deploy/deploy.h"
#include "framework/dsl/dsl.h"
#include "tests/test_shared_nodes.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"
#include "tests/test_support_pipeline.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

// A "Key:   123 kB" line of /proc/PID/smaps_rollup, in bytes (0 if missing).
uint64_t smaps_rollup_bytes(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  return 0;
}

// Whether `pid` has LibTorch's CPU library mapped.
bool maps_libtorch(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(in, line))
    if (line.find("libtorch_cpu.so") != std::string::npos) return true;
  return false;
}

// An idle daemon has not loaded LibTorch (its stage runtime is a module opened with the first
// stage; its speed probes run in a child): CAF, OpenSSL, thread stacks. Measured 11 MiB RSS
// on the development machine; with LibTorch loaded at start it was 166 MiB (60 anonymous:
// LibTorch's operator registry alone is ~43 MiB of heap made before main).
constexpr uint64_t kIdleRssBound = uint64_t(32) << 20;

TEST(IdleNode, HoldsLittleMemoryAndNoLibTorchUntilItsFirstStage) {
  test::NodeProcess node(test::models_dir(), 2, "idle");
  node.wait_ready();  // listening: the probes are done
  const uint64_t anonymous = smaps_rollup_bytes(node.pid(), "Anonymous");
  const uint64_t rss = smaps_rollup_bytes(node.pid(), "Rss");
  std::printf("idle caf-node: RSS %.1f MiB, of which anonymous %.1f MiB\n", rss / 1048576.0, anonymous / 1048576.0);
  ASSERT_GT(rss, 0u) << "no /proc/" << node.pid() << "/smaps_rollup";
  EXPECT_LT(rss, kIdleRssBound) << node.log();
  EXPECT_FALSE(maps_libtorch(node.pid()));

  // The first stage opens the runtime; its stage computes what one process computes, bit for bit.
  const std::string model = "stories260K/stories260K.gguf";
  Pipeline p = deploy(test::actor_system(), test::even_split(model, 1, {&node}, false), test::bounded_deploy_options());
  const std::vector<int32_t> prompt = {1, 403, 407};
  EXPECT_TRUE(test::bitwise_same(test::single_process(model, prompt, 8, dsl::greedy()),
                                 test::through(p, prompt, 8, dsl::greedy())))
    << node.log();
  EXPECT_TRUE(maps_libtorch(node.pid()));
}

// A node reaches the model code only through its NodeConfig::runtime: one without it is refused
// when spawned, naming what is missing, instead of failing at its first stage.
TEST(IdleNode, ANodeWithoutAStageRuntimeIsRefusedWhenSpawned) {
  NodeConfig cfg{"bare", test::models_dir(), 1};
  try {
    spawn_node_actor(test::actor_system(), cfg);
    ADD_FAILURE() << "spawned a node without a stage runtime";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("node bare: NodeConfig::runtime is not set"), std::string::npos) << e.what();
  }
}

proto::NodeInfo info_of(const test::NodeProcess& node) {
  return connect_node(test::actor_system(), parse_endpoint(node.endpoint()), 5s).info;
}

TEST(IdleNode, MeasuresItsSpeedAgainWhenIdleButNeverWhileAStageWorks) {
  test::NodeProcess node(test::models_dir(), 1, "reprobing", 0, {"--reprobe-idle", "0.3"});
  node.wait_ready();
  ASSERT_TRUE(test::eventually([&] { return info_of(node).speed_probes >= 2; }, 60s)) << node.log();

  const std::string model = "stories260K/stories260K.gguf";
  Pipeline p = deploy(test::actor_system(), test::even_split(model, 1, {&node}, false), test::bounded_deploy_options());
  std::atomic<bool> stop{false};
  std::atomic<int> runs{0};
  std::thread work([&] {
    GenerateOptions o;
    o.stop_at_eos = false;
    while (!stop) {
      p.generate_tokens({1, 403, 407}, 40, dsl::greedy(), o);
      ++runs;
    }
  });
  const bool working = test::eventually([&] { return runs > 0; }, 60s);
  const int32_t before = info_of(node).speed_probes;
  // Several times the idle time (0.3 to 0.6 s): an idle node would have measured again by now.
  std::this_thread::sleep_for(2s);
  const proto::NodeInfo during = info_of(node);
  stop = true;
  work.join();
  ASSERT_TRUE(working) << node.log();
  EXPECT_EQ(during.speed_probes, before) << "measured while a stage worked:\n" << node.log();
  EXPECT_GT(during.speed_age_s, 1.5);

  // Work over (the stage stays loaded): idle again, so measured again.
  EXPECT_TRUE(test::eventually([&] { return info_of(node).speed_probes > during.speed_probes; }, 60s)) << node.log();
  const proto::NodeInfo after = info_of(node);
  EXPECT_GT(after.gflops, 0);
  EXPECT_GT(after.mem_gbps, 0);
  EXPECT_GE(after.speed_age_s, 0);
}

}  // namespace
}  // namespace troupe
