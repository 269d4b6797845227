// A model cut into stages computes exactly what the whole model computes, whether the
// stages read the whole file or the per-stage shards `troupe split` writes.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "models/format/checkpoint.h"
#include "models/convert/model_split.h"
#include "models/arch/stage_model.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

// Runs prompt + a few greedy steps through a chain of stages and returns every step's logits.
std::vector<at::Tensor> run_chain(const std::vector<std::shared_ptr<const Checkpoint>>& ckpts,
                                  const std::vector<StageSpec>& specs, const std::vector<int32_t>& prompt, int steps) {
  std::vector<std::unique_ptr<StageModel>> stages;
  std::vector<std::unique_ptr<KvCache>> caches;
  for (size_t i = 0; i < specs.size(); ++i) {
    stages.push_back(StageModel::load(ckpts[i], specs[i]));
    caches.push_back(stages.back()->new_cache(256));
  }
  std::vector<at::Tensor> logits;
  at::Tensor input = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong);
  int64_t pos = 0;
  for (int s = 0; s < steps; ++s) {
    at::Tensor x = input;
    for (size_t i = 0; i < stages.size(); ++i) x = stages[i]->forward(x, pos, *caches[i]);
    pos += input.size(0);
    logits.push_back(x.clone());
    input = at::argmax(x, -1).view({1});
  }
  return logits;
}

class StageSplit : public ::testing::TestWithParam<const char*> {};

TEST_P(StageSplit, EveryEvenSplitIsBitwiseIdenticalToTheWholeModel) {
  at::set_num_threads(2);
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(test::model_path(GetParam()));
  const int64_t n_layer = ckpt->config().n_layer;
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  const auto whole = run_chain({ckpt}, {whole_model_spec(n_layer)}, prompt, 8);
  for (int64_t k = 2; k <= n_layer; ++k) {
    const auto specs = even_split(n_layer, k);
    const auto split = run_chain(std::vector<std::shared_ptr<const Checkpoint>>(specs.size(), ckpt), specs, prompt, 8);
    for (size_t s = 0; s < whole.size(); ++s) EXPECT_TRUE(at::equal(whole[s], split[s])) << k << " stages, step " << s;
  }
}

TEST_P(StageSplit, ShardFilesRunTheModelAndHoldOnlyTheirTensors) {
  at::set_num_threads(2);
  test::TempDir dir;
  const std::string model = test::model_path(GetParam());
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(model);
  const auto specs = even_split(ckpt->config().n_layer, 3);
  const auto paths = write_stage_shards(model, specs, dir.path());
  ASSERT_EQ(paths.size(), 3u);
  std::vector<std::shared_ptr<const Checkpoint>> shards;
  for (size_t i = 0; i < paths.size(); ++i) {
    shards.push_back(open_checkpoint(paths[i]));
    const ShardInfo info = shards.back()->shard_info();
    EXPECT_TRUE(info.is_shard);
    EXPECT_EQ(info.model_id, ckpt->model_id());
    EXPECT_EQ(info.layer_first, specs[i].layer_first);
    EXPECT_EQ(info.layer_last, specs[i].layer_last);
    for (const auto& name : shards.back()->tensor_names())
      EXPECT_TRUE(stage_needs_tensor(ckpt->config(), name, specs[i])) << paths[i] << " holds " << name;
  }
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  const auto whole = run_chain({ckpt}, {whole_model_spec(ckpt->config().n_layer)}, prompt, 6);
  const auto split = run_chain(shards, specs, prompt, 6);
  for (size_t s = 0; s < whole.size(); ++s) EXPECT_TRUE(at::equal(whole[s], split[s])) << "step " << s;
}

TEST_P(StageSplit, ShardRefusesAnotherLayerRange) {
  test::TempDir dir;
  const std::string model = test::model_path(GetParam());
  const auto ckpt = open_checkpoint(model);
  const auto specs = even_split(ckpt->config().n_layer, 2);
  const auto paths = write_stage_shards(model, specs, dir.path());
  std::shared_ptr<const Checkpoint> first = open_checkpoint(paths[0]);
  try {
    StageModel::load(first, specs[1]);
    FAIL() << "a shard of " << specs[0].describe() << " loaded " << specs[1].describe();
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(paths[0]), std::string::npos) << msg;
    EXPECT_NE(msg.find("this shard holds layers"), std::string::npos) << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(RealModels, StageSplit,
                         ::testing::Values("stories260K/stories260K.gguf", "stories260K/hf", "gpt2-tiny/gpt2-tiny.gguf",
                                           "gpt2-tiny/hf", "stories260K/stories260K-q4_0.gguf"),
                         [](const auto& info) { return test::param_name(info.param); });

TEST(LayerRanges, ParsesInclusiveRangesAndRejectsGapsOverlapsAndOverruns) {
  const auto specs = parse_layer_ranges("0-1,2-3,4-4", 5);
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_TRUE(specs[0].has_embedding);
  EXPECT_FALSE(specs[1].has_embedding || specs[1].has_head);
  EXPECT_TRUE(specs[2].has_head);
  EXPECT_EQ(specs[2].layer_first, 4);
  EXPECT_THROW(parse_layer_ranges("0-1,3-4", 5), std::invalid_argument);  // gap
  EXPECT_THROW(parse_layer_ranges("0-2,2-4", 5), std::invalid_argument);  // overlap
  EXPECT_THROW(parse_layer_ranges("0-5", 5), std::invalid_argument);      // past the last layer
  EXPECT_THROW(parse_layer_ranges("0-3", 5), std::invalid_argument);      // not covering
  EXPECT_THROW(parse_layer_ranges("a-b", 5), std::invalid_argument);
  EXPECT_THROW(even_split(4, 5), std::invalid_argument);
  const auto even = even_split(5, 3);
  EXPECT_EQ(even[0].n_layers() + even[1].n_layers() + even[2].n_layers(), 5);
}

}  // namespace
}  // namespace troupe
