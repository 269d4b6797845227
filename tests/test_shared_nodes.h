#pragma once
// caf-node daemons started on first use and shared by the tests of one test executable
// (ctest runs each test in its own process, so each starts only the nodes it needs), and a
// model cut into stages of about equal size over them. Include it from one test file only:
// it registers a GoogleTest environment, which stops the nodes at the end.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "framework/dsl/dsl.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"
#include "tests/test_support_pipeline.h"

namespace troupe::test {

class SharedNodes : public ::testing::Environment {
 public:
  void TearDown() override { nodes_.clear(); }

  // The first `n` nodes, started now if need be.
  static std::vector<NodeProcess*> nodes(size_t n) {
    auto& all = instance->nodes_;
    while (all.size() < n)
      all.push_back(std::make_unique<NodeProcess>(models_dir(), kPipelineThreads, "node" + std::to_string(all.size())));
    std::vector<NodeProcess*> out;
    for (size_t i = 0; i < n; ++i) {
      all[i]->wait_ready();
      out.push_back(all[i].get());
    }
    return out;
  }

  static SharedNodes* instance;

 private:
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
};

inline SharedNodes* SharedNodes::instance =
  static_cast<SharedNodes*>(::testing::AddGlobalTestEnvironment(new SharedNodes));

// `model` in `n_stages` stages of about equal size, stage i on nodes[i] (in this process for
// the stages beyond the nodes given), sampled greedily.
inline dsl::PipelineDesc even_split(const std::string& model, int n_stages, const std::vector<NodeProcess*>& nodes,
                                    bool with_tokenizer = true) {
  const int64_t n_layer = n_layer_of(model);
  dsl::PipelineDesc desc;
  if (with_tokenizer) desc.tokenizer = dsl::tokenizer(model);
  int64_t first = 0;
  for (int i = 0; i < n_stages; ++i) {
    const int64_t last = first + (n_layer - first) / (n_stages - i) - 1;
    dsl::StageDesc s = dsl::stage(model, dsl::layers(first, last));
    if (i < static_cast<int>(nodes.size())) s = s.on(nodes[i]->endpoint());
    desc.stages.push_back(s);
    first = last + 1;
  }
  desc.sampler = dsl::sampler(dsl::greedy());
  return desc;
}

}  // namespace troupe::test
