// Failover without standby nodes, with real caf-node daemons on 127.0.0.1: the surviving
// nodes of a pipeline take over the stages of nodes that are gone (one, two at once, one
// after another), every generation in flight ends with exactly the text of an undisturbed
// run, and a node that comes back is taken back into the pipeline (`troupe status` shows it).
#include <caf/all.hpp>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

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
using test::eventually;
using test::NodeProcess;

const std::string kModel = "stories260K/hf";  // 5 layers, context 512
constexpr int kTokens = 300;

// Layers 0-1, 2-3, 4 on the three nodes.
dsl::PipelineDesc three_stages(const test::NodeProcesses& nodes) {
  dsl::PipelineDesc desc;
  desc.tokenizer = dsl::tokenizer(kModel);
  const std::vector<std::pair<int, int>> ranges{{0, 1}, {2, 3}, {4, 4}};
  for (size_t i = 0; i < ranges.size(); ++i)
    desc.stages.push_back(
      dsl::stage(kModel, dsl::layers(ranges[i].first, ranges[i].second)).on(nodes[i]->endpoint()));
  desc.sampler = dsl::sampler(dsl::greedy());
  return desc;
}

DeployOptions no_standby() {
  DeployOptions o = test::bounded_deploy_options();
  o.connect_timeout = 3s;
  o.step_timeout = 20s;
  o.spawn_timeout = 60s;
  return o;
}

// Two sessions of kTokens: one greedy, one sampled (seeded: a replayed step draws the same).
std::vector<std::vector<int32_t>> prompts() {
  return {test::load_reference("stories260K.once-upon-a-time").prompt_tokens,
          test::load_reference("stories260K.lily-and-tom").prompt_tokens};
}
SamplingOptions sampling_of(size_t session) {
  if (session == 0) return dsl::greedy();
  SamplingOptions sampled;
  sampled.seed = 11;
  return sampled;
}

struct Result {
  Generation g;
  std::string error;
  double longest_gap_ms = 0;  // the longest wait between two tokens the client saw (printed, not asserted)
};

// Runs every session at once; once each has `fault_after` tokens, calls `fault`.
std::vector<Result> run_sessions(const Pipeline& p, int fault_after, const std::function<void()>& fault) {
  const auto ps = prompts();
  std::vector<std::atomic<int>> produced(ps.size());
  for (auto& n : produced) n = 0;
  GenerateOptions go;
  go.stop_at_eos = false;
  std::vector<std::future<Result>> running;
  for (size_t i = 0; i < ps.size(); ++i)
    running.push_back(std::async(std::launch::async, [&, i] {
      Result r;
      try {
        auto last = Clock::now();
        r.g = p.generate_tokens(ps[i], kTokens, sampling_of(i), go, [&](int32_t, const std::string&) {
          const auto now = Clock::now();
          if (produced[i] > 0)
            r.longest_gap_ms = std::max(r.longest_gap_ms, std::chrono::duration<double, std::milli>(now - last).count());
          last = now;
          ++produced[i];
        });
        r.g.text = p.decode(r.g.tokens);
      } catch (const std::exception& e) {
        r.error = e.what();
      }
      return r;
    }));
  if (fault) {
    EXPECT_TRUE(eventually(
      [&] {
        for (auto& n : produced)
          if (n < fault_after) return false;
        return true;
      },
      60s));
    fault();
  }
  std::vector<Result> results;
  for (auto& f : running) {
    if (f.wait_for(120s) != std::future_status::ready) {
      ADD_FAILURE() << "a generation did not end within 120 s";
      std::abort();  // the nodes die with us
    }
    results.push_back(f.get());
  }
  return results;
}

std::vector<Generation> undisturbed(const Pipeline& p) {
  std::vector<Generation> out;
  for (const auto& r : run_sessions(p, 0, {})) {
    EXPECT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(static_cast<int>(r.g.tokens.size()), kTokens);
    out.push_back(r.g);
  }
  return out;
}

::testing::AssertionResult same_text(const Generation& expected, const Result& actual) {
  if (!actual.error.empty()) return ::testing::AssertionFailure() << "failed: " << actual.error;
  if (expected.tokens != actual.g.tokens)
    return ::testing::AssertionFailure() << "tokens differ:\n" << expected.text << "\n---\n" << actual.g.text;
  return ::testing::AssertionSuccess();
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void print_recoveries(const char* what, Clock::time_point fault_at, const Pipeline& p) {
  for (const auto& r : p.recoveries())
    std::printf(
      "[ failover ] %s: stage %s %s -> %s (%s); detected %.0f ms after the fault, restarted and wired in %.0f ms, "
      "%d sessions replayed %lld positions (longest replay %.0f ms)\n",
      what, r.stage.c_str(), r.from_node.c_str(), r.to_node.c_str(), r.kind.c_str(), ms(r.detected_at - fault_at),
      r.restore_ms, r.sessions_replayed, static_cast<long long>(r.tokens_replayed), r.replay_ms);
}

// The stall each client saw: the longest wait between two of its tokens.
void print_client_stall(const char* what, const std::vector<Result>& results) {
  std::printf("[ failover ] %s: longest wait between two tokens seen by a client:", what);
  for (const auto& r : results) std::printf(" %.0f ms", r.longest_gap_ms);
  std::printf("\n");
}

bool all_stages_on(const Pipeline& p, const std::string& endpoint) {
  for (const auto& s : p.stages())
    if (s.endpoint != endpoint) return false;
  return true;
}

class SurvivorsTakeOver : public ::testing::TestWithParam<size_t> {};

TEST_P(SurvivorsTakeOver, NodeKilledForGoodDuringGenerationAndTheTextIsUnchanged) {
  const size_t victim = GetParam();
  auto nodes = test::start_nodes(test::models_dir(), test::kPipelineThreads, "node", 3);
  Pipeline p = deploy(actor_system(), three_stages(nodes), no_standby());
  const auto expected = undisturbed(p);
  const std::string gone = nodes[victim]->endpoint();
  Clock::time_point fault_at;
  const auto results = run_sessions(p, 80, [&] {
    fault_at = Clock::now();
    kill(nodes[victim]->pid(), SIGKILL);
  });
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_text(expected[i], results[i])) << "session " << i;
  const auto recoveries = p.recoveries();
  ASSERT_EQ(recoveries.size(), 1u);
  EXPECT_EQ(recoveries[0].stage_index, victim);
  EXPECT_EQ(recoveries[0].kind, "down");
  EXPECT_EQ(recoveries[0].from_node, gone);
  EXPECT_NE(recoveries[0].to_node, gone);
  EXPECT_EQ(p.stages()[victim].endpoint, recoveries[0].to_node);  // a surviving node holds two stages now
  const PipelineHealth h = p.health();
  EXPECT_EQ(h.state, PipelineHealth::State::degraded);
  EXPECT_NE(h.detail.find(gone), std::string::npos) << h.detail;
  const char* what = victim == 0 ? "kill -9 of the first node"
                     : victim == 1 ? "kill -9 of the middle node"
                                   : "kill -9 of the last node";
  print_recoveries(what, fault_at, p);
  print_client_stall(what, results);
  // And it goes on serving with the same text.
  EXPECT_EQ(p.generate_tokens(prompts()[0], 40, dsl::greedy()).tokens,
            std::vector<int32_t>(expected[0].tokens.begin(), expected[0].tokens.begin() + 40));
}

INSTANTIATE_TEST_SUITE_P(Position, SurvivorsTakeOver, ::testing::Values(size_t{0}, size_t{1}, size_t{2}),
                         [](const auto& info) {
                           return std::string(info.param == 0 ? "First" : info.param == 1 ? "Middle" : "Last");
                         });

TEST(Failover, TwoNodesKilledAtOnceLeaveEveryStageOnTheSurvivor) {
  auto nodes = test::start_nodes(test::models_dir(), test::kPipelineThreads, "node", 3);
  Pipeline p = deploy(actor_system(), three_stages(nodes), no_standby());
  const auto expected = undisturbed(p);
  Clock::time_point fault_at;
  const auto results = run_sessions(p, 80, [&] {
    fault_at = Clock::now();
    kill(nodes[0]->pid(), SIGKILL);
    kill(nodes[2]->pid(), SIGKILL);
  });
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_text(expected[i], results[i])) << "session " << i;
  EXPECT_TRUE(all_stages_on(p, nodes[1]->endpoint()));
  EXPECT_EQ(p.recoveries().size(), 2u);
  print_recoveries("kill -9 of the first and the last node at once", fault_at, p);
  print_client_stall("kill -9 of the first and the last node at once", results);
}

TEST(Failover, NodesLostOneAfterAnotherEvenDuringARepair) {
  auto nodes = test::start_nodes(test::models_dir(), test::kPipelineThreads, "node", 3);
  Pipeline p = deploy(actor_system(), three_stages(nodes), no_standby());
  const auto expected = undisturbed(p);
  Clock::time_point fault_at;
  const auto results = run_sessions(p, 60, [&] {
    fault_at = Clock::now();
    kill(nodes[2]->pid(), SIGKILL);
    // The second one as soon as the first repair has begun (a node lost during a repair,
    // or right after it).
    EXPECT_TRUE(eventually([&] { return p.health().state != PipelineHealth::State::ok; }, 30s));
    kill(nodes[1]->pid(), SIGKILL);
  });
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_text(expected[i], results[i])) << "session " << i;
  EXPECT_TRUE(eventually([&] { return all_stages_on(p, nodes[0]->endpoint()); }, 30s));
  EXPECT_GE(p.recoveries().size(), 2u);
  print_recoveries("kill -9 of the last node, then of the middle one", fault_at, p);
  print_client_stall("kill -9 of the last node, then of the middle one", results);
  EXPECT_TRUE(same_text(expected[0], Result{p.generate_tokens(prompts()[0], kTokens, dsl::greedy()), ""}));
}

TEST(Failover, NodeRestartedTenSecondsLaterIsTakenBackIntoThePipeline) {
  auto nodes = test::start_nodes(test::models_dir(), test::kPipelineThreads, "node", 3);
  DeployOptions options = no_standby();
  options.heal_interval = 500ms;
  Pipeline p = deploy(actor_system(), three_stages(nodes), options);
  const auto expected = undisturbed(p);
  const uint16_t port = nodes[1]->port();
  const std::string endpoint = nodes[1]->endpoint();
  Clock::time_point killed_at;
  const auto results = run_sessions(p, 80, [&] {
    killed_at = Clock::now();
    kill(nodes[1]->pid(), SIGKILL);
  });
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_text(expected[i], results[i])) << "session " << i;
  ASSERT_NE(p.stages()[1].endpoint, endpoint);
  print_recoveries("kill -9 of the middle node, restarted 10 s later", killed_at, p);
  print_client_stall("kill -9 of the middle node, restarted 10 s later", results);
  nodes[1]->stop();  // reaps it
  std::this_thread::sleep_until(killed_at + 10s);
  NodeProcess restarted(test::models_dir(), test::kPipelineThreads, "restarted", port);
  restarted.wait_ready();
  const auto back_from = Clock::now();
  ASSERT_TRUE(eventually([&] { return p.health().state == PipelineHealth::State::ok; }, 30s)) << p.health().detail;
  EXPECT_EQ(p.stages()[1].endpoint, endpoint);
  const auto recoveries = p.recoveries();
  ASSERT_EQ(recoveries.size(), 2u);
  EXPECT_EQ(recoveries[1].kind, "returned");
  EXPECT_EQ(recoveries[1].to_node, endpoint);
  std::printf("[ failover ] node back 10 s after kill -9: its stage moved back %.0f ms after it listened\n",
              ms(recoveries[1].restored_at - back_from));
  // `troupe status` shows the stage on the restarted node, and the pipeline gives the same text.
  const auto status = test::run_command({test::bin_path("troupe"), "status", "--nodes", endpoint}, 30);
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("layers 2-3"), std::string::npos) << status.out;
  EXPECT_TRUE(same_text(expected[0], Result{p.generate_tokens(prompts()[0], kTokens, dsl::greedy()), ""}));
}

TEST(Failover, StageStuckOnALiveNodeIsFoundFromItsOwnProgressAndReplaced) {
  auto nodes = test::start_nodes(test::models_dir(), test::kPipelineThreads, "node", 3);
  DeployOptions options = no_standby();
  options.stage_stall_timeout = 3s;
  Pipeline p = deploy(actor_system(), three_stages(nodes), options);
  const auto expected = undisturbed(p);
  // The middle stage has handled 2 x 300 steps; at its 100th from now its compute thread
  // freezes for 60 s while its node keeps answering pings.
  p.inject_stall(1, 2 * kTokens + 100, 60000);
  const auto results = run_sessions(p, 0, {});
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_text(expected[i], results[i])) << "session " << i;
  const auto recoveries = p.recoveries();
  ASSERT_GE(recoveries.size(), 1u);
  EXPECT_EQ(recoveries[0].kind, "hung");
  EXPECT_EQ(recoveries[0].stage_index, 1u);
  EXPECT_NE(recoveries[0].cause.find("made no progress"), std::string::npos) << recoveries[0].cause;
  EXPECT_NE(recoveries[0].to_node, nodes[1]->endpoint());
  print_recoveries("compute thread of the middle stage frozen (node alive)", recoveries[0].detected_at - 3s, p);
  print_client_stall("compute thread of the middle stage frozen (node alive)", results);
}

TEST(Failover, ALongForwardPassThatKeepsComputingLayersIsNotTakenForAStuckStage) {
  // A pass three times as long as the stall timeout (a long prompt on a slow laptop), counting a
  // layer every 100 ms: the stage stays where it is and the text is unchanged.
  auto nodes = test::start_nodes(test::models_dir(), test::kPipelineThreads, "node", 3);
  DeployOptions options = no_standby();
  options.stage_stall_timeout = 1s;
  Pipeline p = deploy(actor_system(), three_stages(nodes), options);
  const auto expected = undisturbed(p);
  p.inject_slow_pass(1, 2 * kTokens + 100, 3000);
  const auto results = run_sessions(p, 0, {});
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_text(expected[i], results[i])) << "session " << i;
  EXPECT_TRUE(p.recoveries().empty()) << p.recoveries()[0].cause;
  print_client_stall("one forward pass of the middle stage 3 s long, computing layers", results);
}

TEST(Failover, WhenNoNodeIsLeftTheErrorNamesEachNodeAndWhy) {
  auto nodes = test::start_nodes(test::models_dir(), test::kPipelineThreads, "node", 3);
  Pipeline p = deploy(actor_system(), three_stages(nodes), no_standby());
  const auto expected = undisturbed(p);
  // Every node gone: nothing can hold the model.
  const auto results = run_sessions(p, 40, [&] {
    for (auto& n : nodes) kill(n->pid(), SIGKILL);
  });
  for (const auto& r : results) {
    EXPECT_NE(r.error.find("no node could take it over"), std::string::npos) << r.error;
    for (auto& n : nodes) EXPECT_NE(r.error.find("node " + n->endpoint() + ":"), std::string::npos) << r.error;
  }
  EXPECT_EQ(p.health().state, PipelineHealth::State::unavailable);
  std::printf("[ failover ] %s\n", results[0].error.c_str());
}

// -- through `troupe serve` ----------------------------------------------------------------------

// `troupe serve` over three fresh caf-node daemons (layers 0-1, 2-3, 4), no standby.
class ServeFailover : public ::testing::Test {
 protected:
  void SetUp() override {
    nodes_ = test::start_nodes(test::models_dir(), 1, "serve-node", 3);
    server_ = std::make_unique<test::ChildProcess>(std::vector<std::string>{
      test::bin_path("troupe"), "serve", "--model", test::model_path("stories260K/stories260K.gguf"), "--nodes",
      test::node_list(nodes_), "--layers", "0-1,2-3,4-4", "--port", "0", "--port-file", dir_.file("port"),
      "--max-in-flight", "4", "--max-queue", "4", "--threads", "1", "--repair-wait", "60"});
    port_ = server_->wait_for_port_file(dir_.file("port"), 120000);
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  // The greedy completion of `prompt`, or "HTTP <status>: <body>".
  std::string complete(const std::string& prompt, int max_tokens = kTokens) const {
    const nlohmann::json body{{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
    const auto r = test::http_request(url("/v1/completions"), body.dump(), 120);
    if (r.status != 200) return "HTTP " + std::to_string(r.status) + ": " + r.body;
    return nlohmann::json::parse(r.body)["choices"][0]["text"].get<std::string>();
  }

  std::pair<int, nlohmann::json> health() const {
    const auto r = test::http_request(url("/health"), "", 10);
    if (r.status == 0) return {0, {}};
    return {r.status, nlohmann::json::parse(r.body, nullptr, false)};
  }

  // The value of the first /metrics line that starts with `prefix` (-1 if none).
  double metric(const std::string& prefix) const {
    const std::string m = test::http_request(url("/metrics"), "", 10).body;
    const size_t at = m.find("\n" + prefix);
    if (at == std::string::npos) return -1;
    const size_t space = m.find(' ', m.find('}', at));
    return std::atof(m.c_str() + space + 1);
  }
  double stage0_steps() const { return metric("troupe_stage_steps_total{stage=\"0\""); }

  // Runs the prompts at once; `fault` is called once stage 0 has handled `after` more steps.
  std::vector<std::string> run(const std::vector<std::string>& prompts, double after,
                               const std::function<void()>& fault) {
    const double base = stage0_steps();
    std::vector<std::future<std::string>> running;
    for (const auto& prompt : prompts)
      running.push_back(std::async(std::launch::async, [this, prompt] { return complete(prompt); }));
    if (fault) {
      EXPECT_TRUE(eventually([&] { return stage0_steps() >= base + after; }, 60s));
      fault();
    }
    std::vector<std::string> out;
    for (auto& f : running) out.push_back(f.get());
    return out;
  }

  test::TempDir dir_;
  test::NodeProcesses nodes_;
  std::unique_ptr<test::ChildProcess> server_;
  int port_ = 0;
};

const std::vector<std::string> kPrompts{"Once upon a time", "Lily and Tom"};

TEST_F(ServeFailover, NodeKilledForGoodDuringTwoRequestsBothEndWithTheUndisturbedText) {
  const std::vector<std::string> expected{complete(kPrompts[0]), complete(kPrompts[1])};
  const auto got = run(kPrompts, 150, [&] { kill(nodes_[1]->pid(), SIGKILL); });
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i]) << "request " << i;
  const auto [status, h] = health();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(h.value("status", ""), "degraded");
  EXPECT_NE(h.value("detail", "").find(nodes_[1]->endpoint()), std::string::npos) << h.dump();
  EXPECT_EQ(metric("troupe_recoveries_total{kind=\"down\"}"), 1);
  EXPECT_EQ(complete(kPrompts[0]), expected[0]);
}

TEST_F(ServeFailover, NodeStoppedFiveSecondsWithRequestsInFlightAndArrivingAllCompleteAndItIsUsedAgain) {
  const std::vector<std::string> expected{complete(kPrompts[0]), complete(kPrompts[1])};
  std::vector<std::future<std::string>> arriving;
  const auto got = run(kPrompts, 150, [&] {
    kill(nodes_[1]->pid(), SIGSTOP);
    // Two more requests while the node sleeps.
    for (const auto& prompt : kPrompts)
      arriving.push_back(std::async(std::launch::async, [this, prompt] { return complete(prompt); }));
    std::this_thread::sleep_for(5s);
    kill(nodes_[1]->pid(), SIGCONT);
  });
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i]) << "request in flight " << i;
  for (size_t i = 0; i < arriving.size(); ++i) EXPECT_EQ(arriving[i].get(), expected[i]) << "request arriving " << i;
  // Once quiet, the stage moves back to the node that woke up, and /health says ok.
  EXPECT_TRUE(eventually([&] { return health().second.value("status", "") == "ok"; }, 30s)) << health().second.dump();
  EXPECT_GE(metric("troupe_recoveries_total{kind=\"hung\"}"), 1);
  EXPECT_GE(metric("troupe_recoveries_total{kind=\"returned\"}"), 1);
  EXPECT_EQ(complete(kPrompts[1]), expected[1]);
  const auto status = test::run_command({test::bin_path("troupe"), "status", "--nodes", nodes_[1]->endpoint()}, 30);
  EXPECT_NE(status.out.find("layers 2-3"), std::string::npos) << status.out;
}

TEST_F(ServeFailover, WithEveryNodeGoneHealthSays503AndServingResumesOnceTheyAreBack) {
  const std::string expected = complete(kPrompts[0], 40);
  std::vector<uint16_t> ports;
  for (auto& n : nodes_) {
    ports.push_back(n->port());
    kill(n->pid(), SIGKILL);
    n->stop();  // reaps it
  }
  EXPECT_TRUE(eventually([&] { return health().first == 503; }, 60s)) << health().second.dump();
  EXPECT_EQ(health().second.value("status", ""), "unavailable");
  EXPECT_EQ(complete(kPrompts[0], 40).rfind("HTTP 5", 0), 0u);  // fails now, with a 5xx
  // The daemons come back on their ports: the repair is tried again and the pipeline serves.
  nodes_.clear();
  for (size_t i = 0; i < ports.size(); ++i)
    nodes_.push_back(std::make_unique<NodeProcess>(test::models_dir(), 1, "back" + std::to_string(i), ports[i]));
  for (auto& n : nodes_) n->wait_ready();
  EXPECT_TRUE(eventually([&] { return health().second.value("status", "") == "ok"; }, 120s)) << health().second.dump();
  EXPECT_EQ(complete(kPrompts[0], 40), expected);
}

}  // namespace
}  // namespace troupe
