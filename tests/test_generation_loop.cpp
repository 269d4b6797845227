// The one generation loop (models/runtime/generation_loop.h) over a scripted model: what each
// step is sent (prefill chunks, positions, the sampler's step and window, drafts) and when it
// stops. Real models run through it in test_reference_outputs, test_chunked_prefill and
// test_speculative (LocalSession and Pipeline both use it).
#include <gtest/gtest.h>

#include "models/runtime/generation_loop.h"

namespace troupe {
namespace {

// A "model" whose next token is (last input + 1) mod 10: it repeats itself, so prompt lookup
// drafts well. With drafts it keeps those equal to what it would have drawn, then one more.
class CountingModel : public ModelStepper {
 public:
  std::vector<StepRequest> seen;

  StepResult step(const StepRequest& r) override {
    seen.push_back(r);
    const auto& last = r.parts.back();
    const size_t n_draft = r.draft.size();
    const size_t first_draft = last.size() - n_draft;
    StepResult out;
    int32_t next = (last[first_draft == 0 ? 0 : first_draft - 1] + 1) % 10;
    for (size_t k = 0; k < n_draft && r.draft[k] == next; ++k) {
      out.tokens.push_back(next);
      next = (next + 1) % 10;
    }
    out.tokens.push_back(next);
    out.logits.assign(10, 0.0f);
    out.logits[static_cast<size_t>(next)] = 1.0f;
    return out;
  }
};

std::vector<int32_t> iota_prompt(int n) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(i % 10);
  return p;
}

TEST(GenerationLoop, PrefillGoesInChunksAtTheirPositionsThenOneTokenPerStep) {
  CountingModel model;
  LoopOptions o;
  o.n_tokens = 3;
  o.max_positions = 1000;
  o.prefill_chunk = 32;
  o.sampling.repeat_penalty = 1.1f;
  o.sampling.repeat_window = 4;
  LoopResult r;
  run_generation(model, iota_prompt(70), o, r);
  ASSERT_EQ(model.seen.size(), 3u);
  const StepRequest& first = model.seen[0];
  EXPECT_EQ(first.pos, 0);
  ASSERT_EQ(first.parts.size(), 3u);
  EXPECT_EQ(first.parts[0].size(), 32u);
  EXPECT_EQ(first.parts[1].size(), 32u);
  EXPECT_EQ(first.parts[2].size(), 6u);
  EXPECT_EQ(first.step, 0u);
  EXPECT_EQ(first.recent, (std::vector<int32_t>{6, 7, 8, 9}));  // the repetition window of the prompt
  EXPECT_EQ(model.seen[1].pos, 70);
  EXPECT_EQ(model.seen[1].parts, (std::vector<std::vector<int32_t>>{{0}}));
  EXPECT_EQ(model.seen[1].step, 1u);
  EXPECT_EQ(model.seen[2].pos, 71);
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(r.step_ms.size(), 2u);
}

TEST(GenerationLoop, NoPenaltyMeansNoWindowAndNoChunkMeansOnePart) {
  CountingModel model;
  LoopOptions o;
  o.n_tokens = 1;
  o.max_positions = 1000;
  LoopResult r;
  run_generation(model, iota_prompt(70), o, r);
  ASSERT_EQ(model.seen.size(), 1u);
  EXPECT_EQ(model.seen[0].parts.size(), 1u);
  EXPECT_TRUE(model.seen[0].recent.empty());
}

TEST(GenerationLoop, StopsAfterAStopTokenWhenTheCallerSaysOrAtTheContext) {
  {
    CountingModel model;
    LoopOptions o;
    o.n_tokens = 20;
    o.max_positions = 1000;
    o.is_stop = [](int32_t t) { return t == 7; };
    LoopResult r;
    run_generation(model, {3}, o, r);
    EXPECT_EQ(r.tokens, (std::vector<int32_t>{4, 5, 6, 7}));  // the stop token included
  }
  {
    CountingModel model;
    LoopOptions o;
    o.n_tokens = 20;
    o.max_positions = 1000;
    int calls = 0;
    o.on_token = [&](int32_t, const std::vector<float>& logits) {
      EXPECT_EQ(logits.size(), 10u);
      return ++calls < 2;
    };
    LoopResult r;
    run_generation(model, {3}, o, r);
    EXPECT_EQ(r.tokens, (std::vector<int32_t>{4, 5}));
  }
  {
    CountingModel model;
    LoopOptions o;
    o.n_tokens = 20;
    o.max_positions = 6;  // a 3-token prompt: steps at positions 3, 4 and 5 fit
    LoopResult r;
    run_generation(model, {1, 2, 3}, o, r);
    EXPECT_EQ(r.tokens.size(), 4u);
  }
}

TEST(GenerationLoop, SpeculativeStepsGiveTheSameTokensInFewerSteps) {
  LoopOptions o;
  o.n_tokens = 25;
  o.max_positions = 1000;
  CountingModel plain_model;
  LoopResult plain;
  run_generation(plain_model, iota_prompt(20), o, plain);
  CountingModel fast_model;
  o.speculate = 4;
  LoopResult fast;
  run_generation(fast_model, iota_prompt(20), o, fast);
  EXPECT_EQ(fast.tokens, plain.tokens);
  EXPECT_EQ(plain_model.seen.size(), 25u);
  EXPECT_LT(fast_model.seen.size(), 10u);
  EXPECT_GT(fast.accepted, 0);
  EXPECT_LE(fast.accepted, fast.drafted);
  for (const auto& step : fast_model.seen) EXPECT_LE(step.draft.size(), 4u);
}

TEST(GenerationLoop, WhatWasGeneratedBeforeAFailingStepIsKept) {
  struct Failing : CountingModel {
    StepResult step(const StepRequest& r) override {
      if (seen.size() == 2) throw std::runtime_error("stage gone");
      return CountingModel::step(r);
    }
  } model;
  LoopOptions o;
  o.n_tokens = 5;
  o.max_positions = 1000;
  LoopResult r;
  EXPECT_THROW(run_generation(model, {0}, o, r), std::runtime_error);
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{1, 2}));
}

}  // namespace
}  // namespace troupe
