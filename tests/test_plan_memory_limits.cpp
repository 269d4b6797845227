// Placement end to end: a generated model bigger than any one node's --memory-limit runs
// across three nodes with unequal limits, placed by the planner from what the nodes
// report, and no node's peak RSS passes its limit. One node alone refuses the model with
// the numbers.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_support.h"
#include "tests/test_support_nodes.h"

namespace troupe {
namespace {


TEST(PlanMemoryLimits, ModelBiggerThanEveryNodeLimitRunsAcrossThreeUnequalNodesWithinTheirLimits) {
  test::TempDir dir;
  const std::string model = dir.file("tinyllama-q4_0.gguf");
  auto r = test::run_command({test::bin_path("troupe"), "synth", "--shape", "tinyllama", "--type", "q4_0", "--out", model}, 600);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t model_bytes = test::file_size(model);  // 620 MB

  const std::vector<size_t> limits_mib = {580, 540, 500};
  std::vector<std::vector<std::string>> limit_args;
  for (size_t limit : limits_mib) {
    ASSERT_GT(model_bytes, limit << 20);
    limit_args.push_back({"--memory-limit", std::to_string(limit) + "M"});
  }
  const auto nodes = test::start_nodes(dir.path(), 1, "limited", limit_args);
  const std::string list = test::node_list(nodes);

  r = test::run_command({test::bin_path("troupe"), "plan", "-m", model, "--nodes", list}, 120);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (auto& n : nodes) EXPECT_NE(r.out.find(n->endpoint()), std::string::npos) << r.out;

  // No --layers: the planner splits by what each node reports.
  r = test::run_command({test::bin_path("troupe"), "generate", "-m", model, "--nodes", list, "-p", "Hello", "-n", "6",
                         "--temp", "0"}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("plan: --nodes"), std::string::npos) << r.err;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const size_t rss = test::peak_rss_of(nodes[i]->pid());
    std::printf("node %s: limit %zu MiB, peak RSS %.0f MiB\n", nodes[i]->endpoint().c_str(), limits_mib[i], rss / 1048576.0);
    EXPECT_LT(rss, limits_mib[i] << 20) << nodes[i]->endpoint();
  }

  // The smallest node alone is refused, with what the stage needs and what the limit leaves.
  r = test::run_command({test::bin_path("troupe"), "generate", "-m", model, "--nodes", nodes[2]->endpoint(), "-p",
                         "Hello", "-n", "2"}, 120);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--memory-limit 500 MiB leaves"), std::string::npos) << r.err;
}

TEST(PlanMemoryLimits, NodeReportsItsLimitSpeedAndMemory) {
  test::NodeProcess node(test::models_dir(), 1, "reporting", 0, {"--memory-limit", "3G"});
  node.wait_ready();
  const auto r = test::run_command({test::bin_path("troupe"), "plan", "-m", test::model_path("stories260K/stories260K.gguf"),
                                    "--nodes", node.endpoint()}, 60);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("/3072"), std::string::npos) << r.out;  // needs/has MiB: capped by the 3 GiB limit

  // `troupe status` shows it, and names a node that is not there.
  const auto status = test::run_command({test::bin_path("troupe"), "status", "--nodes", node.endpoint() + ",127.0.0.1:1"}, 60);
  EXPECT_EQ(status.exit_code, 1);
  auto line_of = [&](const std::string& endpoint) {
    const size_t at = status.out.find("\n" + endpoint + " ");
    return at == std::string::npos ? std::string() : status.out.substr(at + 1, status.out.find('\n', at + 1) - at - 1);
  };
  EXPECT_NE(line_of(node.endpoint()).find(" reachable "), std::string::npos) << status.out;
  EXPECT_NE(line_of(node.endpoint()).find("3.00 GiB"), std::string::npos) << status.out;
  EXPECT_NE(line_of("127.0.0.1:1").find("UNREACHABLE"), std::string::npos) << status.out;
}

}  // namespace
}  // namespace troupe
