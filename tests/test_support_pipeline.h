#pragma once
// Shared by the tests that deploy pipelines (test_pipeline*, test_supervision,
// test_dsl_planning): the actor system of the test process, bounded deploy options, and the
// single-process reference run that a pipeline's output must match bit for bit.
// Header-only: only these tests link CAF and the actors.
#include <ATen/Parallel.h>
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "actors/protocol/actor_system.h"
#include "framework/deploy/deploy.h"
#include "models/format/checkpoint.h"
#include "models/runtime/local_session.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe::test {

constexpr int kPipelineThreads = 1;  // LibTorch threads, the same in the nodes and in the reference run

// One actor system per test process (ctest runs each test in its own process).
class ActorSystemEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    at::set_num_threads(kPipelineThreads);
    cfg_ = std::make_unique<caf::actor_system_config>();
    configure_actor_system(*cfg_);
    sys_ = std::make_unique<caf::actor_system>(*cfg_);
  }
  void TearDown() override {
    sys_.reset();
    cfg_.reset();
  }
  caf::actor_system& sys() { return *sys_; }

 private:
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
};

inline ActorSystemEnvironment* const actor_system_environment =
  static_cast<ActorSystemEnvironment*>(::testing::AddGlobalTestEnvironment(new ActorSystemEnvironment));

inline caf::actor_system& actor_system() { return actor_system_environment->sys(); }

// Every wait bounded; in-process stages resolve models in the shared models dir.
inline DeployOptions bounded_deploy_options() {
  using namespace std::chrono_literals;
  DeployOptions o;
  o.local_models_dir = models_dir();
  o.local_threads = kPipelineThreads;
  o.connect_timeout = 5s;
  o.spawn_timeout = 30s;
  o.step_timeout = 30s;
  return o;
}

// -- the reference: the whole model in this process --------------------------------------------

struct Output {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;
};

inline int64_t n_layer_of(const std::string& model) { return open_checkpoint(model_path(model))->config().n_layer; }
inline bool has_vocab(const std::string& model) { return open_checkpoint(model_path(model))->has_vocab(); }
// -1 (generate to the end) for a model without a tokenizer troupe reads (e.g. tokenizer.json only).
inline int32_t eos_of(const std::string& model) {
  const auto ckpt = open_checkpoint(model_path(model));
  return ckpt->has_vocab() ? ckpt->vocab().eos_id : -1;
}

inline Output single_process(const std::string& model, const std::vector<int32_t>& prompt, int64_t n_tokens,
                             const SamplingOptions& sampling) {
  LocalSession session(open_checkpoint(model_path(model)));
  Output run;
  run.tokens = session.generate(prompt, n_tokens, sampling, eos_of(model), [&](int32_t, const std::vector<float>& l) {
    run.logits.push_back(l);
    return true;
  });
  return run;
}

inline Output through(const Pipeline& p, const std::vector<int32_t>& prompt, int64_t n_tokens,
                      const SamplingOptions& sampling) {
  GenerateOptions options;
  options.want_logits = true;
  Generation g = p.generate_tokens(prompt, n_tokens, sampling, options);
  return {g.tokens, g.logits};
}

inline ::testing::AssertionResult bitwise_same(const Output& expected, const Output& actual) {
  if (expected.tokens != actual.tokens) {
    std::string e, a;
    for (auto t : expected.tokens) e += std::to_string(t) + " ";
    for (auto t : actual.tokens) a += std::to_string(t) + " ";
    return ::testing::AssertionFailure() << "tokens differ:\n  expected " << e << "\n  actual   " << a;
  }
  if (expected.logits.size() != actual.logits.size())
    return ::testing::AssertionFailure() << expected.logits.size() << " logits rows expected, got "
                                         << actual.logits.size();
  for (size_t i = 0; i < expected.logits.size(); ++i) {
    const auto& x = expected.logits[i];
    const auto& y = actual.logits[i];
    if (x.size() != y.size() || std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "logits of step " << i << " differ (sizes " << x.size() << ", "
                                           << y.size() << ")";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace troupe::test
