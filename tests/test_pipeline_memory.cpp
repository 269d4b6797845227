// A node holds only its share of a model: a generated LLaMA-shaped model of over 1 GB
// split over three caf-node processes, each node's peak RSS against the single process's.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/test_support.h"
#include "tests/test_support_nodes.h"

namespace troupe {
namespace {

TEST(PipelineMemory, EachOfThreeNodesHoldsAboutAThirdOfAGigabyteModel) {
  test::TempDir dir;
  const std::string model = dir.file("tinyllama-q8_0.gguf");
  // TinyLlama-1.1B's shape in Q8_0: 1.17 GB on disk, and in memory (weights stay quantized).
  auto r = test::run_command({test::bin_path("troupe"), "synth", "--shape", "tinyllama", "--type", "q8_0", "--out", model}, 600);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double model_gb = test::file_size(model) / 1e9;
  ASSERT_GT(model_gb, 1.0);

  // The whole model in one process.
  r = test::run_command({test::bin_path("troupe"), "bench", "-m", model, "--prompt-tokens", "8", "-n", "4", "--threads", "2",
                         "--json", dir.file("single.json")}, 600);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream single_json(dir.file("single.json"));
  const auto single = nlohmann::json::parse(single_json);
  const double single_rss = single["nodes"][0]["peak_rss_bytes"].get<double>();

  // Three nodes, layers 0-7 (+embedding), 8-14, 15-21 (+head).
  const auto nodes = test::start_nodes(dir.path(), 1, "node", 3);
  const std::string list = test::node_list(nodes);
  r = test::run_command({test::bin_path("troupe"), "generate", "--nodes", list, "--layers", "0-7,8-14,15-21", "-m", model,
                         "-p", "Hello", "-n", "4", "--temp", "0"}, 600);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("model %.2f GB; single process peak RSS %.0f MB\n", model_gb, single_rss / 1e6);
  double total = 0;
  for (auto& n : nodes) {
    const double rss = static_cast<double>(test::peak_rss_of(n->pid()));
    std::printf("node %s peak RSS %.0f MB\n", n->endpoint().c_str(), rss / 1e6);
    // A third of the weights, plus the runtime (LibTorch, CAF) every process carries.
    EXPECT_LT(rss, single_rss * 0.55) << n->endpoint();
    total += rss;
  }
  EXPECT_GT(total, single_rss * 0.8);  // together they do hold the model
}

}  // namespace
}  // namespace troupe
