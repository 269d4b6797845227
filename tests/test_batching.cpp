// A stage's batched forward pass (several sessions' rows in one pass, each at its own
// position) gives every session exactly the bits it gets when it runs alone: decode steps of
// sessions that join and leave, a prefill next to decode steps, and through a cut into stages.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "models/format/checkpoint.h"
#include "models/quant/quant_matmul.h"
#include "models/arch/stage_model.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

const std::vector<std::vector<int64_t>> kPrompts = {
    {1, 400, 50, 3}, {1, 7}, {1, 30, 31, 32, 33, 34, 35}, {1, 99, 100}, {1, 250, 251, 252, 253}};
constexpr int kSteps = 10;

at::Tensor ids(const std::vector<int64_t>& tokens) { return at::tensor(tokens, at::kLong); }

// One session alone: the prompt, then kSteps greedy tokens; every step's input and logits.
struct Alone {
  std::vector<at::Tensor> inputs, logits;
};

Alone run_alone(StageModel& model, const std::vector<int64_t>& prompt) {
  Alone out;
  auto cache = model.new_cache(256);
  at::Tensor input = ids(prompt);
  int64_t pos = 0;
  for (int s = 0; s <= kSteps; ++s) {
    const at::Tensor logits = model.forward(input, pos, *cache);
    out.inputs.push_back(input);
    out.logits.push_back(logits.clone());
    pos += input.size(0);
    input = at::argmax(logits, -1).view({1});
  }
  return out;
}

// A chain of stages run on batches: stage i's outputs are stage i+1's inputs.
struct Chain {
  std::vector<std::unique_ptr<StageModel>> stages;
  std::vector<std::vector<std::unique_ptr<KvCache>>> caches;  // [stage][session]

  std::vector<at::Tensor> step(const std::vector<size_t>& sessions, const std::vector<at::Tensor>& inputs,
                               const std::vector<int64_t>& positions) {
    std::vector<at::Tensor> x = inputs;
    for (size_t i = 0; i < stages.size(); ++i) {
      std::vector<SequenceStep> steps;
      for (size_t k = 0; k < sessions.size(); ++k)
        steps.push_back(SequenceStep{x[k], positions[k], caches[i][sessions[k]].get()});
      x = stages[i]->forward_batch(steps);
    }
    return x;
  }
};

Chain make_chain(const std::shared_ptr<const Checkpoint>& ckpt, const std::vector<StageSpec>& specs) {
  Chain chain;
  for (const auto& spec : specs) {
    chain.stages.push_back(StageModel::load(ckpt, spec));
    chain.caches.emplace_back();
    for (size_t s = 0; s < kPrompts.size(); ++s) chain.caches.back().push_back(chain.stages.back()->new_cache(256));
  }
  return chain;
}

void expect_same_bits(const at::Tensor& batched, const at::Tensor& alone, const std::string& what) {
  ASSERT_EQ(batched.sizes(), alone.sizes()) << what;
  EXPECT_TRUE(at::equal(batched.contiguous(), alone)) << what << ": max difference "
                                                      << (batched - alone).abs().max().item<float>();
}

class BatchedForward : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    at::set_num_threads(2);
    ckpt_ = open_checkpoint(test::model_path(GetParam()));
    whole_ = StageModel::load(ckpt_, whole_model_spec(ckpt_->config().n_layer));
    for (const auto& p : kPrompts) alone_.push_back(run_alone(*whole_, p));
  }

  std::vector<StageSpec> two_stages() const {
    const int64_t n = ckpt_->config().n_layer;
    return {StageSpec{0, n / 2 - 1, true, false}, StageSpec{n / 2, n - 1, false, true}};
  }

  // Prefills each session alone, then decodes in batches: session s joins at step s and the
  // last one leaves two steps early, so batches change size and mix positions.
  void decode_in_batches(Chain& chain) {
    std::vector<int64_t> pos(kPrompts.size(), 0);
    for (size_t s = 0; s < kPrompts.size(); ++s) {
      const auto out = chain.step({s}, {alone_[s].inputs[0]}, {0});
      expect_same_bits(out[0], alone_[s].logits[0], "prefill of session " + std::to_string(s));
      pos[s] = static_cast<int64_t>(kPrompts[s].size());
    }
    std::vector<int> done(kPrompts.size(), 0);  // decode steps each session has made
    for (int round = 0; round < kSteps + static_cast<int>(kPrompts.size()); ++round) {
      std::vector<size_t> sessions;
      std::vector<at::Tensor> inputs;
      std::vector<int64_t> positions;
      for (size_t s = 0; s < kPrompts.size(); ++s) {
        const int limit = s + 1 == kPrompts.size() ? kSteps - 2 : kSteps;
        if (round < static_cast<int>(s) || done[s] >= limit) continue;
        sessions.push_back(s);
        inputs.push_back(alone_[s].inputs[static_cast<size_t>(done[s]) + 1]);
        positions.push_back(pos[s]);
      }
      if (sessions.empty()) break;
      const auto out = chain.step(sessions, inputs, positions);
      for (size_t k = 0; k < sessions.size(); ++k) {
        const size_t s = sessions[k];
        ++done[s];
        ++pos[s];
        expect_same_bits(out[k], alone_[s].logits[static_cast<size_t>(done[s])],
                         "session " + std::to_string(s) + " step " + std::to_string(done[s]) + " in a batch of " +
                             std::to_string(sessions.size()));
      }
    }
  }

  std::shared_ptr<const Checkpoint> ckpt_;
  std::unique_ptr<StageModel> whole_;
  std::vector<Alone> alone_;
};

TEST_P(BatchedForward, DecodeStepsInChangingBatchesMatchEachSessionAlone) {
  Chain chain = make_chain(ckpt_, {whole_model_spec(ckpt_->config().n_layer)});
  decode_in_batches(chain);
}

TEST_P(BatchedForward, BatchesThroughTwoStagesMatchTheWholeModelAlone) {
  Chain chain = make_chain(ckpt_, two_stages());
  decode_in_batches(chain);
}

TEST_P(BatchedForward, PrefillsAndDecodeStepsInOnePassMatchEachSessionAlone) {
  Chain chain = make_chain(ckpt_, two_stages());
  // Sessions 0 and 1 prefill together; then session 2 prefills while 0 and 1 decode.
  auto out = chain.step({0, 1}, {alone_[0].inputs[0], alone_[1].inputs[0]}, {0, 0});
  expect_same_bits(out[0], alone_[0].logits[0], "prefill 0");
  expect_same_bits(out[1], alone_[1].logits[0], "prefill 1");
  out = chain.step({0, 2, 1}, {alone_[0].inputs[1], alone_[2].inputs[0], alone_[1].inputs[1]},
                   {static_cast<int64_t>(kPrompts[0].size()), 0, static_cast<int64_t>(kPrompts[1].size())});
  expect_same_bits(out[0], alone_[0].logits[1], "decode 0 beside a prefill");
  expect_same_bits(out[1], alone_[2].logits[0], "prefill 2 beside decodes");
  expect_same_bits(out[2], alone_[1].logits[1], "decode 1 beside a prefill");
}

INSTANTIATE_TEST_SUITE_P(Models, BatchedForward,
                         ::testing::Values("stories260K/stories260K.gguf", "stories260K/stories260K-q8_0.gguf",
                                           "stories260K/stories260K-q4_0.gguf", "stories260K/hf",
                                           "gpt2-tiny/gpt2-tiny.gguf", "gpt2-tiny/gpt2-tiny-q8_0.gguf",
                                           "phi2-tiny/phi2-tiny.gguf", "gptj-tiny/hf", "llama3-tiny/llama3-tiny.gguf",
                                           "qwen2-tiny/qwen2-tiny.gguf", "phi3-tiny/phi3-tiny.gguf"),
                         [](const auto& info) { return test::param_name(info.param); });

TEST(BatchedForwardInput, RejectsAnEmptyBatch) {
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(test::model_path("stories260K/stories260K.gguf"));
  auto model = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
  EXPECT_THROW(model->forward_batch({}), std::invalid_argument);
}

}  // namespace
}  // namespace troupe
