// Sampling: greedy is argmax, a fixed seed repeats exactly, top-k/top-p/temperature and
// the repetition penalty act as documented.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "models/runtime/sampler.h"

namespace troupe {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.5f, -1.0f, 2.9f, 0.0f};

SamplingOptions opts(float temp, int top_k = 0, float top_p = 1.0f, uint64_t seed = 7) {
  SamplingOptions o;
  o.temperature = temp;
  o.top_k = top_k;
  o.top_p = top_p;
  o.seed = seed;
  return o;
}

std::map<int32_t, int> histogram(const SamplingOptions& o, int draws) {
  std::map<int32_t, int> h;
  for (int s = 0; s < draws; ++s) ++h[sample_token(o, kLogits.data(), kLogits.size(), {}, s)];
  return h;
}

TEST(Sampler, GreedyPicksTheLargestLogitAndTheLowestIdOnTies) {
  EXPECT_EQ(sample_token(opts(0), kLogits.data(), kLogits.size(), {}, 0), 1);
  const std::vector<float> tie = {0.5f, 2.0f, 2.0f};
  EXPECT_EQ(argmax(tie.data(), 3), 1);
}

TEST(Sampler, SameSeedAndStepGiveTheSameTokenDifferentSeedsDiffer) {
  const auto a = histogram(opts(1.0f, 0, 1.0f, 42), 200), b = histogram(opts(1.0f, 0, 1.0f, 42), 200);
  EXPECT_EQ(a, b);
  std::vector<int32_t> s1, s2;
  for (int s = 0; s < 50; ++s) {
    s1.push_back(sample_token(opts(1.0f, 0, 1.0f, 1), kLogits.data(), kLogits.size(), {}, s));
    s2.push_back(sample_token(opts(1.0f, 0, 1.0f, 2), kLogits.data(), kLogits.size(), {}, s));
  }
  EXPECT_NE(s1, s2);
}

TEST(Sampler, TopKOneIsGreedyAndTopKLimitsTheCandidates) {
  for (const auto& [token, n] : histogram(opts(1.0f, 1), 100)) EXPECT_EQ(token, 1);
  for (const auto& [token, n] : histogram(opts(5.0f, 3), 500)) EXPECT_TRUE(token == 1 || token == 4 || token == 2) << token;
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities at T=1: token 1 ~0.37, 4 ~0.33, 2 ~0.22 ... top_p 0.5 keeps {1, 4}.
  const auto h = histogram(opts(1.0f, 0, 0.5f), 1000);
  for (const auto& [token, n] : h) EXPECT_TRUE(token == 1 || token == 4) << token;
  EXPECT_EQ(h.size(), 2u);
}

TEST(Sampler, TemperatureMatchesSoftmaxFrequencies) {
  const auto h = histogram(opts(1.0f), 20000);
  double z = 0;
  for (float l : kLogits) z += std::exp(l);
  for (int32_t t = 0; t < 6; ++t) {
    const double expected = std::exp(kLogits[t]) / z;
    const double seen = (h.count(t) ? h.at(t) : 0) / 20000.0;
    EXPECT_NEAR(seen, expected, 0.015) << "token " << t;
  }
}

TEST(Sampler, RepetitionPenaltySteersAwayFromRecentTokens) {
  SamplingOptions o = opts(0);
  o.repeat_penalty = 1.5f;
  // 3.0 / 1.5 = 2.0 < 2.9: the recent token 1 loses to token 4.
  EXPECT_EQ(sample_token(o, kLogits.data(), kLogits.size(), {1}, 0), 4);
  o.repeat_window = 1;  // token 1 is outside a window of one
  EXPECT_EQ(sample_token(o, kLogits.data(), kLogits.size(), {1, 5}, 0), 1);
}

}  // namespace
}  // namespace troupe
