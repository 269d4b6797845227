// Supervision and failover, with real caf-node daemons on 127.0.0.1: a stage whose node is
// killed, stopped (hung) or whose compute throws is restarted (on a standby node, or on its
// own node when that is alive), every generation in flight is replayed into it and ends with
// exactly the text of an undisturbed run; when no node can take a stage over, generations
// end with a clear error in bounded time and other pipelines are not disturbed.
#include <caf/all.hpp>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <thread>

#include "framework/deploy/deploy.h"
#include "framework/dsl/dsl.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"
#include "tests/test_support_pipeline.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::actor_system;
using test::NodeProcess;

const std::string kModel = "stories260K/hf";  // 5 layers, context 512
constexpr int kTokens = 200;

// `n` caf-node daemons, started together.
test::NodeProcesses start_nodes(size_t n, const std::string& prefix) {
  return test::start_nodes(test::models_dir(), test::kPipelineThreads, prefix, n);
}

// Layers 0-1, 2-3, 4 on the given nodes (two stages: 0-2, 3-4).
dsl::PipelineDesc pipeline_on(const std::vector<std::string>& endpoints) {
  dsl::PipelineDesc desc;
  desc.tokenizer = dsl::tokenizer(kModel);
  const std::vector<std::pair<int, int>> ranges =
    endpoints.size() == 3 ? std::vector<std::pair<int, int>>{{0, 1}, {2, 3}, {4, 4}}
                          : std::vector<std::pair<int, int>>{{0, 2}, {3, 4}};
  for (size_t i = 0; i < ranges.size(); ++i)
    desc.stages.push_back(dsl::stage(kModel, dsl::layers(ranges[i].first, ranges[i].second)).on(endpoints[i]));
  desc.sampler = dsl::sampler(dsl::greedy());
  return desc;
}

DeployOptions options_with(std::vector<std::string> standby = {}) {
  DeployOptions o = test::bounded_deploy_options();
  o.connect_timeout = 3s;
  o.step_timeout = 20s;
  o.spawn_timeout = DeployOptions{}.spawn_timeout;  // the default (5 min), as these tests have always had
  o.standby_nodes = std::move(standby);
  return o;
}

std::vector<std::vector<int32_t>> prompts() {
  return {test::load_reference("stories260K.once-upon-a-time").prompt_tokens,
          test::load_reference("stories260K.lily-and-tom").prompt_tokens};
}

// Session 0 greedy; session 1 sampled (the sampler is stateless: seed, step and recent tokens
// ride in every request, so a replayed step draws what it drew the first time).
SamplingOptions sampling_of(size_t session) {
  if (session == 0) return dsl::greedy();
  SamplingOptions sampled;  // temperature 0.8, top-k 40, top-p 0.95
  sampled.seed = 7;
  return sampled;
}

struct Result {
  Generation g;
  std::string error;  // the PipelineError, if it failed
};

// Generates kTokens for every prompt at once; once every session has `fault_after` tokens,
// calls `fault` and notes when. Every wait is bounded.
struct FaultyRun {
  std::vector<Result> results;
  Clock::time_point fault_at;
  bool faulted = false;
};

FaultyRun run_sessions(const Pipeline& p, int fault_after, const std::function<void()>& fault) {
  const auto ps = prompts();
  std::vector<std::atomic<int>> produced(ps.size());
  for (auto& n : produced) n = 0;
  GenerateOptions go;
  go.want_logits = true;
  go.stop_at_eos = false;
  std::vector<std::future<Result>> running;
  for (size_t i = 0; i < ps.size(); ++i)
    running.push_back(std::async(std::launch::async, [&, i] {
      Result r;
      try {
        r.g = p.generate_tokens(ps[i], kTokens, sampling_of(i), go, [&](int32_t, const std::string&) { ++produced[i]; });
        r.g.text = p.decode(r.g.tokens);
      } catch (const std::exception& e) {
        r.error = e.what();
      }
      return r;
    }));
  FaultyRun run;
  if (fault) {
    auto all_there = [&] {
      for (auto& n : produced)
        if (n < fault_after) return false;
      return true;
    };
    EXPECT_TRUE(test::eventually(all_there, 30s));
    run.fault_at = Clock::now();
    fault();
    run.faulted = true;
  }
  for (auto& f : running) {
    if (f.wait_for(120s) != std::future_status::ready) {
      ADD_FAILURE() << "a generation did not end within 120 s";
      std::abort();  // a hung generation would otherwise hang the test; the nodes die with us
    }
    run.results.push_back(f.get());
  }
  return run;
}

::testing::AssertionResult same_output(const Generation& expected, const Result& actual) {
  if (!actual.error.empty()) return ::testing::AssertionFailure() << "failed: " << actual.error;
  if (expected.tokens != actual.g.tokens) return ::testing::AssertionFailure() << "tokens differ";
  if (expected.text != actual.g.text)
    return ::testing::AssertionFailure() << "text differs:\n" << expected.text << "\n---\n" << actual.g.text;
  if (expected.logits.size() != actual.g.logits.size()) return ::testing::AssertionFailure() << "logits count";
  for (size_t i = 0; i < expected.logits.size(); ++i)
    if (expected.logits[i] != actual.g.logits[i])
      return ::testing::AssertionFailure() << "logits of step " << i << " differ";
  return ::testing::AssertionSuccess();
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void print_recovery(const char* what, const FaultyRun& run, const Recovery& r) {
  std::printf(
    "[ recovery ] %s: stage %s %s -> %s (%s: %s)\n"
    "[ recovery ]   detected %.0f ms after the fault, stage restarted and wired %.0f ms later, "
    "%d sessions replayed %lld positions in %.0f ms (longest); total %.0f ms from the fault\n",
    what, r.stage.c_str(), r.from_node.c_str(), r.to_node.c_str(), r.kind.c_str(), r.cause.c_str(),
    ms(r.detected_at - run.fault_at), r.restore_ms, r.sessions_replayed, static_cast<long long>(r.tokens_replayed),
    r.replay_ms, ms(r.restored_at - run.fault_at) + r.replay_ms);
}

// The undisturbed run of every prompt, through `p` before anything happens to it.
std::vector<Generation> undisturbed(const Pipeline& p) {
  std::vector<Generation> out;
  for (const auto& r : run_sessions(p, 0, {}).results) {
    EXPECT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(static_cast<int>(r.g.tokens.size()), kTokens);
    out.push_back(r.g);
  }
  return out;
}

// Kills (SIGKILL) the node of stage `victim` of a three-stage pipeline during two sessions of
// 200 tokens; a standby node takes the stage over.
void killed_node_is_replaced_by_the_standby(size_t victim, const char* what) {
  auto nodes = start_nodes(4, "node");
  Pipeline p = deploy(actor_system(), pipeline_on({nodes[0]->endpoint(), nodes[1]->endpoint(), nodes[2]->endpoint()}),
                      options_with({nodes[3]->endpoint()}));
  const auto expected = undisturbed(p);
  const FaultyRun run = run_sessions(p, 60, [&] { kill(nodes[victim]->pid(), SIGKILL); });
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_output(expected[i], run.results[i])) << "session " << i;
  const auto recoveries = p.recoveries();
  ASSERT_EQ(recoveries.size(), 1u);
  const Recovery& r = recoveries[0];
  EXPECT_EQ(r.stage_index, victim);
  EXPECT_EQ(r.from_node, nodes[victim]->endpoint());
  EXPECT_EQ(r.to_node, nodes[3]->endpoint());
  EXPECT_EQ(r.kind, "down");
  EXPECT_EQ(r.sessions_replayed, 2);
  EXPECT_GT(r.tokens_replayed, 2 * 60);
  EXPECT_EQ(p.stages()[victim].endpoint, nodes[3]->endpoint());
  EXPECT_EQ(run.results[0].g.recoveries + run.results[1].g.recoveries, 2);
  print_recovery(what, run, r);
}

TEST(Supervision, KilledMiddleNodeIsReplacedByTheStandbyAndTheTextIsUnchanged) {
  killed_node_is_replaced_by_the_standby(1, "kill -9 of the middle stage's node");
}

TEST(Supervision, KilledLastNodeIsReplacedByTheStandbyAndTheTextIsUnchanged) {
  killed_node_is_replaced_by_the_standby(2, "kill -9 of the last stage's node (with the sampler)");
}

// Timing (generous bound): a stopped node is noticed by the heartbeat (250 ms rounds, 1 s
// timeout), not by a step timing out (20 s here). Measured detection times are printed.
TEST(Supervision, Timing_StoppedNodeIsDetectedAsHungByTheHeartbeatAndReplaced) {
  auto nodes = start_nodes(4, "node");
  Pipeline p = deploy(actor_system(), pipeline_on({nodes[0]->endpoint(), nodes[1]->endpoint(), nodes[2]->endpoint()}),
                      options_with({nodes[3]->endpoint()}));
  const auto expected = undisturbed(p);
  const FaultyRun run = run_sessions(p, 60, [&] { kill(nodes[1]->pid(), SIGSTOP); });
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_output(expected[i], run.results[i])) << "session " << i;
  kill(nodes[1]->pid(), SIGKILL);  // a stopped process ignores SIGTERM
  const auto recoveries = p.recoveries();
  ASSERT_EQ(recoveries.size(), 1u);
  const Recovery& r = recoveries[0];
  EXPECT_EQ(r.kind, "hung");
  EXPECT_EQ(r.stage_index, 1u);
  EXPECT_EQ(r.to_node, nodes[3]->endpoint());
  const DeployOptions o = options_with();
  EXPECT_LT(r.detected_at - run.fault_at, o.heartbeat_interval + o.heartbeat_timeout + 3s);
  print_recovery("SIGSTOP of the middle stage's node", run, r);
}

TEST(Supervision, ExceptionInsideAStageRestartsItOnItsNodeAndTheTextIsUnchanged) {
  auto nodes = start_nodes(3, "node");
  Pipeline p = deploy(actor_system(), pipeline_on({nodes[0]->endpoint(), nodes[1]->endpoint(), nodes[2]->endpoint()}),
                      options_with());
  const auto expected = undisturbed(p);
  // The middle stage has handled 2 x 200 steps; it throws at its 120th step from now on.
  p.inject_fault(1, 2 * kTokens + 120);
  const FaultyRun run = run_sessions(p, 0, {});
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_output(expected[i], run.results[i])) << "session " << i;
  const auto recoveries = p.recoveries();
  ASSERT_EQ(recoveries.size(), 1u);
  const Recovery& r = recoveries[0];
  EXPECT_EQ(r.kind, "exception");
  EXPECT_EQ(r.stage_index, 1u);  // from the StageFailure the stage's error carries
  EXPECT_NE(r.cause.find("injected fault"), std::string::npos) << r.cause;
  EXPECT_EQ(r.from_node, nodes[1]->endpoint());
  EXPECT_EQ(r.to_node, nodes[1]->endpoint());  // its node is alive: restarted there
  EXPECT_GE(r.sessions_replayed, 1);
  FaultyRun timing = run;
  timing.fault_at = r.detected_at;  // the fault is the exception itself
  print_recovery("exception inside the middle stage", timing, r);
}

// Timing (generous bounds): the failure ends the generations after replacement_wait, not
// after step_timeout (20 s) or repair_wait; later calls fail without waiting for either.
TEST(Supervision, Timing_LossOfTheOnlyNodeForAStageEndsItsGenerationsWithAClearErrorAndOtherPipelinesGoOn) {
  auto nodes = start_nodes(4, "node");
  DeployOptions no_take_over = options_with();
  no_take_over.survivors_take_over = false;  // the surviving node may not take the stage (test_failover does that)
  Pipeline broken = deploy(actor_system(), pipeline_on({nodes[0]->endpoint(), nodes[1]->endpoint()}), no_take_over);
  Pipeline other = deploy(actor_system(), pipeline_on({nodes[2]->endpoint(), nodes[3]->endpoint()}), options_with());
  const auto expected = undisturbed(other);
  auto others = std::async(std::launch::async, [&] { return run_sessions(other, 0, {}); });
  const FaultyRun run = run_sessions(broken, 40, [&] { kill(nodes[1]->pid(), SIGKILL); });
  const auto ended = Clock::now();
  // Detection is immediate for a dead process; then the supervisor looks for a node for
  // replacement_wait (1.5 s) before giving up.
  EXPECT_LT(ended - run.fault_at, no_take_over.replacement_wait + 8s);
  for (const auto& r : run.results) {
    EXPECT_NE(r.error.find("generation failed"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("stage layers 3-4 +head on node " + nodes[1]->endpoint() + " went down"), std::string::npos)
      << r.error;
    EXPECT_NE(r.error.find("no node could take it over"), std::string::npos) << r.error;
  }
  std::printf("[ error    ] %s (%.0f ms after the kill)\n", run.results[0].error.c_str(), ms(ended - run.fault_at));
  // Later calls fail at once with the same error.
  const auto t0 = Clock::now();
  EXPECT_THROW(broken.generate("Once upon a time", 4), PipelineError);
  EXPECT_LT(Clock::now() - t0, 5s);
  // The other pipeline was not disturbed, during the failure or after it.
  const FaultyRun during = others.get();
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_output(expected[i], during.results[i]));
  EXPECT_EQ(other.generate("Once upon a time", 8).tokens.size(), 8u);
  EXPECT_TRUE(other.recoveries().empty());
}

// A standby that dies (SIGKILL) or hangs (SIGSTOP: a laptop put to sleep) while loading the
// stage it takes over does not hold the repair up for spawn_timeout (5 min here: CAF never
// answers a request in flight to a node that died or hangs): the surviving node takes the
// stage at once (a hung one: after kLoadingNodeHangTimeout), and the text is unchanged.
void standby_fails_while_loading(int signal) {
  const std::string model = "stories260K/stories260K.gguf";
  auto nodes = start_nodes(2, "node");
  test::TempDir standby_models;
  std::filesystem::create_directories(standby_models.file("stories260K"));
  // Opening a FIFO blocks until someone writes: the standby "loads" the stage for ever.
  ASSERT_EQ(mkfifo(standby_models.file(model).c_str(), 0600), 0);
  NodeProcess standby(standby_models.path(), test::kPipelineThreads, "standby", 0, {"--memory-limit", "0"});
  standby.wait_ready();
  dsl::PipelineDesc desc;
  desc.tokenizer = dsl::tokenizer(model);
  desc.stages.push_back(dsl::stage(model, dsl::layers(0, 2)).on(nodes[0]->endpoint()));
  desc.stages.push_back(dsl::stage(model, dsl::layers(3, 4)).on(nodes[1]->endpoint()));
  desc.sampler = dsl::sampler(dsl::greedy());
  Pipeline p = deploy(actor_system(), desc, options_with({standby.endpoint()}));
  const std::string expected = p.generate("Once upon a time", 40).text;
  kill(nodes[0]->pid(), SIGKILL);
  ASSERT_TRUE(test::eventually([&] { return standby.log().find("spawning stage") != std::string::npos; }, 30s))
    << standby.log();
  const auto standby_failed = Clock::now();
  kill(standby.pid(), signal);
  ASSERT_TRUE(test::eventually([&] { return p.recoveries().size() == 1; }, 60s));
  EXPECT_LT(Clock::now() - standby_failed, 30s);
  const Recovery r = p.recoveries()[0];
  EXPECT_EQ(r.from_node, nodes[0]->endpoint());
  EXPECT_EQ(r.to_node, nodes[1]->endpoint());
  std::printf("[ recovery ] standby %s while loading; stage on %s %.0f ms after that\n",
              signal == SIGKILL ? "killed" : "stopped", r.to_node.c_str(), ms(r.restored_at - standby_failed));
  EXPECT_EQ(p.generate("Once upon a time", 40).text, expected);
  kill(standby.pid(), SIGKILL);
}

TEST(Supervision, StandbyThatDiesWhileLoadingTheStageIsPassedOverAtOnce) { standby_fails_while_loading(SIGKILL); }

TEST(Supervision, StandbyThatHangsWhileLoadingTheStageIsPassedOverWithinSeconds) {
  standby_fails_while_loading(SIGSTOP);
}

TEST(Supervision, NodeRestartedOnTheSamePortIsUsedAgain) {
  auto nodes = start_nodes(2, "node");
  DeployOptions options = options_with();
  options.replacement_wait = 60s;  // time for the daemon to come back (it loads LibTorch: slow on a loaded machine)
  options.survivors_take_over = false;  // else node 0 takes the stage at once (test_failover)
  Pipeline p = deploy(actor_system(), pipeline_on({nodes[0]->endpoint(), nodes[1]->endpoint()}), options);
  const auto expected = undisturbed(p);
  const uint16_t port = nodes[1]->port();
  const std::string endpoint = nodes[1]->endpoint();
  std::unique_ptr<NodeProcess> restarted;
  const FaultyRun run = run_sessions(p, 60, [&] {
    kill(nodes[1]->pid(), SIGKILL);
    nodes[1]->stop();  // reaps it
    restarted = std::make_unique<NodeProcess>(test::models_dir(), test::kPipelineThreads, "restarted", port);
  });
  ASSERT_NE(restarted, nullptr);
  restarted->wait_ready();
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_output(expected[i], run.results[i])) << "session " << i;
  const auto recoveries = p.recoveries();
  ASSERT_EQ(recoveries.size(), 1u);
  EXPECT_EQ(recoveries[0].to_node, endpoint);
  EXPECT_EQ(p.stages()[1].endpoint, endpoint);
  print_recovery("kill -9, then caf-node restarted on the same port", run, recoveries[0]);
  // And it keeps serving, for this pipeline and for a new one deployed on it.
  EXPECT_EQ(p.generate("Once upon a time", 8).tokens.size(), 8u);
  Pipeline again = deploy(actor_system(), pipeline_on({nodes[0]->endpoint(), endpoint}), options_with());
  EXPECT_EQ(again.generate("Once upon a time", 8).tokens, p.generate("Once upon a time", 8).tokens);
}

}  // namespace
}  // namespace troupe
