// The single-process model against reference outputs made by llama.cpp (an independent
// implementation): greedy tokens identical, top-5 logits within 1e-3, logsumexp close.
// Prompt tokens come from the reference itself, so this tests the model alone.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

#include "models/runtime/local_session.h"
#include "models/arch/stage_model.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

struct Case {
  const char* model;      // relative to ../shared/models
  const char* reference;  // expected/<reference>.json
};

class ReferenceOutputs : public ::testing::TestWithParam<Case> {};

// Logits must agree to 2e-3 relative to their size (2e-3 absolute below 1). llama.cpp's
// own fp32 path rounds differently: on stories260K it differs from a float64 evaluation
// of the same weights by 1.5e-3 at the first step and up to 1.5e-2 (on a logit of 9.1)
// late in a 60-token run, while our fp32 logits agree with float64 to ~2e-6. The tokens
// must match exactly.
double logit_tolerance(double reference) { return 2e-3 * std::max(1.0, std::abs(reference)); }

TEST_P(ReferenceOutputs, GreedyTokensAndLogitsMatchLlamaCpp) {
  at::set_num_threads(2);
  const auto ref = test::load_reference(GetParam().reference);
  LocalSession session(open_checkpoint(test::model_path(GetParam().model)));
  SamplingOptions greedy;
  greedy.temperature = 0;
  size_t step = 0;
  double max_diff = 0;
  session.generate(ref.prompt_tokens, static_cast<int64_t>(ref.steps.size()), greedy, /*eos=*/-1,
                   [&](int32_t token, const std::vector<float>& logits) {
                     const auto& expected = ref.steps.at(step);
                     EXPECT_EQ(token, expected.token) << "step " << step;
                     for (const auto& [id, logit] : expected.top5) {
                       EXPECT_NEAR(logits.at(id), logit, logit_tolerance(logit)) << "step " << step << " token " << id;
                       max_diff = std::max(max_diff, std::abs(double(logits.at(id)) - logit));
                     }
                     EXPECT_NEAR(test::logsumexp(logits), expected.logsumexp, logit_tolerance(expected.logsumexp)) << "step " << step;
                     ++step;
                     return true;
                   });
  EXPECT_EQ(step, ref.steps.size());
  std::printf("max |logit - reference| over top-5 of %zu steps: %.2e\n", step, max_diff);
}

INSTANTIATE_TEST_SUITE_P(
    RealModels, ReferenceOutputs,
    ::testing::Values(Case{"stories260K/stories260K.gguf", "stories260K.once-upon-a-time"},
                      Case{"stories260K/stories260K.gguf", "stories260K.lily-and-tom"},
                      Case{"stories260K/hf", "stories260K.once-upon-a-time"},
                      Case{"stories260K/hf", "stories260K.lily-and-tom"},
                      Case{"gpt2-tiny/gpt2-tiny.gguf", "gpt2-tiny.once-upon-a-time"},
                      Case{"gpt2-tiny/gpt2-tiny.gguf", "gpt2-tiny.hello-world"},
                      Case{"gpt2-tiny/hf", "gpt2-tiny.once-upon-a-time"},
                      Case{"gpt2-tiny/hf", "gpt2-tiny.hello-world"}),
    [](const auto& info) { return test::param_name(std::string(info.param.model) + "_" + info.param.reference); });

// The GGUF and Hugging Face copies hold the same weights in different layouts
// (rotary rows halved vs interleaved, GPT-2 Conv1D transposed).
struct FormatPair {
  const char* gguf;
  const char* hf;
  const char* reference;
};
class SameModelTwoFormats : public ::testing::TestWithParam<FormatPair> {};

at::Tensor prompt_logits(const std::string& path, const std::vector<int32_t>& prompt) {
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(path);
  auto model = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
  auto cache = model->new_cache(ckpt->config().n_ctx);
  const std::vector<int64_t> ids(prompt.begin(), prompt.end());
  return model->forward(at::tensor(ids, at::kLong), 0, *cache, /*all_logits=*/true);
}

TEST_P(SameModelTwoFormats, GgufAndHuggingFaceGiveTheSameLogits) {
  at::set_num_threads(2);
  const auto ref = test::load_reference(GetParam().reference);
  const at::Tensor a = prompt_logits(test::model_path(GetParam().gguf), ref.prompt_tokens);
  const at::Tensor b = prompt_logits(test::model_path(GetParam().hf), ref.prompt_tokens);
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_LT((a - b).abs().max().item<float>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(RealModels, SameModelTwoFormats,
                         ::testing::Values(FormatPair{"stories260K/stories260K.gguf", "stories260K/hf",
                                                      "stories260K.lily-and-tom"},
                                           FormatPair{"gpt2-tiny/gpt2-tiny.gguf", "gpt2-tiny/hf",
                                                      "gpt2-tiny.hello-world"},
                                           FormatPair{"phi2-tiny/phi2-tiny.gguf", "phi2-tiny/hf", "phi2-tiny.def-fib-n"},
                                           FormatPair{"llama3-tiny/llama3-tiny.gguf", "llama3-tiny/hf",
                                                      "llama3-tiny.the-capital-of-france-is"}));

// The architectures with random-weight fixtures (Phi-2, GPT-J, Llama-3, Qwen2, Phi-3),
// compared as ../shared/models/README.md says: teacher forcing (the prompt and the
// reference's tokens in one pass), every step's top-5 logits and logsumexp within 1e-3 of
// the step's logit range, and the greedy choice equal up to the first reference near-tie.
class TeacherForcedReference : public ::testing::TestWithParam<Case> {};

TEST_P(TeacherForcedReference, EveryStepsTopLogitsAndLogsumexpMatchTheReference) {
  at::set_num_threads(2);
  const auto ref = test::load_reference(GetParam().reference);
  std::vector<int32_t> forced = ref.prompt_tokens;
  for (const auto& step : ref.steps) forced.push_back(step.token);
  forced.pop_back();  // the last chosen token is never an input
  const at::Tensor all = prompt_logits(test::model_path(GetParam().model), forced);
  const int64_t first = static_cast<int64_t>(ref.prompt_tokens.size()) - 1;  // row predicting step 0
  bool tied_before = false;  // a reference near-tie at or before this step: greedy may differ from here on
  double max_diff = 0;
  for (size_t i = 0; i < ref.steps.size(); ++i) {
    const auto& expected = ref.steps[i];
    const at::Tensor row = all[first + static_cast<int64_t>(i)].contiguous();
    const std::vector<float> logits(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
    const double range = row.max().item<double>() - row.min().item<double>();
    const double tolerance = 1e-3 * range;
    for (const auto& [id, logit] : expected.top5) {
      EXPECT_NEAR(logits.at(id), logit, tolerance) << "step " << i << " token " << id;
      max_diff = std::max(max_diff, std::abs(double(logits.at(id)) - logit) / range);
    }
    EXPECT_NEAR(test::logsumexp(logits), expected.logsumexp, tolerance) << "step " << i;
    tied_before = tied_before || expected.top5.at(0).second - expected.top5.at(1).second < 0.02;
    if (!tied_before) EXPECT_EQ(row.argmax().item<int64_t>(), expected.token) << "greedy choice at step " << i;
  }
  std::printf("max |logit - reference| / logit range over top-5 of %zu steps: %.2e\n", ref.steps.size(), max_diff);
}

INSTANTIATE_TEST_SUITE_P(
    RandomWeightFixtures, TeacherForcedReference,
    ::testing::Values(Case{"phi2-tiny/phi2-tiny.gguf", "phi2-tiny.def-fib-n"},
                      Case{"phi2-tiny/phi2-tiny.gguf", "phi2-tiny.once-upon-a-time"},
                      Case{"phi2-tiny/hf", "phi2-tiny.def-fib-n"},
                      Case{"phi2-tiny/hf", "phi2-tiny.once-upon-a-time"},
                      Case{"gptj-tiny/hf", "gptj-tiny.def-fib-n"},
                      Case{"gptj-tiny/hf", "gptj-tiny.once-upon-a-time"},
                      Case{"llama3-tiny/llama3-tiny.gguf", "llama3-tiny.hello-world-123"},
                      Case{"llama3-tiny/llama3-tiny.gguf", "llama3-tiny.the-capital-of-france-is"},
                      Case{"llama3-tiny/hf", "llama3-tiny.hello-world-123"},
                      Case{"llama3-tiny/hf", "llama3-tiny.the-capital-of-france-is"},
                      Case{"qwen2-tiny/qwen2-tiny.gguf", "qwen2-tiny.hello-world-123"},
                      Case{"qwen2-tiny/qwen2-tiny.gguf", "qwen2-tiny.the-capital-of-france-is"},
                      Case{"phi3-tiny/phi3-tiny.gguf", "phi3-tiny.hello-world"},
                      Case{"phi3-tiny/phi3-tiny.gguf", "phi3-tiny.the-capital-of-france-is"}),
    [](const auto& info) { return test::param_name(std::string(info.param.model) + "_" + info.param.reference); });

}  // namespace
}  // namespace troupe
