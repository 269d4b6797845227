// Stages batch the pending steps of concurrent sessions into one forward pass, on real
// caf-node daemons on 127.0.0.1: every session still gets bitwise what it gets alone in one
// process; loading reports progress up to each stage's weight bytes; a node reports, per
// stage it hosts, its sessions, recent tokens/s and the hop's round trip (`troupe status`).
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "framework/cluster/cluster.h"
#include "framework/deploy/deploy.h"
#include "framework/dsl/dsl.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"
#include "tests/test_support_pipeline.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;
using test::actor_system;
using test::NodeProcess;
using test::Output;

test::NodeProcesses start_nodes() { return test::start_nodes(test::models_dir(), test::kPipelineThreads, "node", 3); }

// Layers 0-1 / 2-3 / 4 of a 5-layer stories260K file on the three nodes.
dsl::PipelineDesc three_stages(const std::string& model, const std::vector<std::unique_ptr<NodeProcess>>& nodes) {
  return dsl::tokenizer(model) >> dsl::stage(model, dsl::layers(0, 1)).on(nodes[0]->endpoint()) >>
         dsl::stage(model, dsl::layers(2, 3)).on(nodes[1]->endpoint()) >>
         dsl::stage(model, dsl::layers(4, 4)).on(nodes[2]->endpoint()) >> dsl::sampler(dsl::greedy());
}

struct SessionCase {
  std::vector<int32_t> prompt;
  SamplingOptions sampling;
};

std::vector<SessionCase> six_sessions() {
  const auto a = test::load_reference("stories260K.once-upon-a-time").prompt_tokens;
  const auto b = test::load_reference("stories260K.lily-and-tom").prompt_tokens;
  SamplingOptions sampled;  // temperature 0.8, top-k 40, top-p 0.95
  sampled.seed = 21;
  SamplingOptions penalized = sampled;
  penalized.seed = 22;
  penalized.repeat_penalty = 1.3f;
  SamplingOptions hot = sampled;
  hot.seed = 23;
  hot.temperature = 1.2f;
  return {{a, dsl::greedy()}, {b, dsl::greedy()}, {a, sampled}, {b, penalized}, {a, hot}, {b, sampled}};
}

// Runs every session at once through `p`.
std::vector<Output> concurrently(const Pipeline& p, const std::vector<SessionCase>& sessions, int n_tokens) {
  std::vector<std::future<Output>> runs;
  for (const auto& s : sessions)
    runs.push_back(std::async(std::launch::async, [&p, s, n_tokens] { return test::through(p, s.prompt, n_tokens, s.sampling); }));
  std::vector<Output> out;
  for (auto& r : runs) out.push_back(r.get());
  return out;
}

class BatchedPipeline : public ::testing::TestWithParam<const char*> {};

TEST_P(BatchedPipeline, ConcurrentSessionsShareForwardPassesAndEachGetsBitwiseItsSingleProcessOutput) {
  const std::string model = GetParam();
  const auto nodes = start_nodes();
  Pipeline p = deploy(actor_system(), three_stages(model, nodes), test::bounded_deploy_options());
  const auto sessions = six_sessions();
  const int n_tokens = 40;
  const auto together = concurrently(p, sessions, n_tokens);
  for (size_t i = 0; i < sessions.size(); ++i)
    EXPECT_TRUE(test::bitwise_same(test::single_process(model, sessions[i].prompt, n_tokens, sessions[i].sampling),
                                   together[i]))
      << "session " << i;
  // Six sessions in flight through three stages: some must have waited for a busy stage and
  // gone through it together.
  for (const auto& s : p.stats()) {
    std::printf("%s: %llu steps in %llu forward passes\n", s.describe.c_str(), static_cast<unsigned long long>(s.steps),
                static_cast<unsigned long long>(s.batches));
    EXPECT_EQ(s.steps, sessions.size() * n_tokens) << s.describe;
    EXPECT_LT(s.batches, s.steps) << s.describe << ": no two sessions ever shared a forward pass";
  }
}

INSTANTIATE_TEST_SUITE_P(Models, BatchedPipeline,
                         ::testing::Values("stories260K/stories260K.gguf", "stories260K/stories260K-q4_0.gguf"),
                         [](const auto& info) { return test::param_name(info.param); });

TEST(BatchedPipelineOptions, MaxBatchOneRunsEverySessionInItsOwnPass) {
  const std::string model = "stories260K/stories260K-q8_0.gguf";
  const auto nodes = start_nodes();
  DeployOptions options = test::bounded_deploy_options();
  options.max_batch = 1;
  Pipeline p = deploy(actor_system(), three_stages(model, nodes), options);
  const auto sessions = six_sessions();
  const auto together = concurrently(p, sessions, 20);
  for (size_t i = 0; i < sessions.size(); ++i)
    EXPECT_TRUE(test::bitwise_same(test::single_process(model, sessions[i].prompt, 20, sessions[i].sampling), together[i]));
  for (const auto& s : p.stats()) EXPECT_EQ(s.batches, s.steps) << s.describe;
}

TEST(LoadProgress, EveryStageReportsProgressUpToItsWeightBytes) {
  const auto nodes = start_nodes();
  std::mutex mutex;
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> reports;  // "node stage" -> (done, total)
  DeployOptions options = test::bounded_deploy_options();
  options.on_load_progress = [&](const std::string& node, const std::string& stage, uint64_t done, uint64_t total) {
    std::lock_guard<std::mutex> lock(mutex);
    reports[node + " " + stage].emplace_back(done, total);
  };
  Pipeline p = deploy(actor_system(), three_stages("stories260K/stories260K.gguf", nodes), options);
  for (const auto& s : p.stages()) {
    const std::string key = s.endpoint + " " + s.describe;
    std::vector<std::pair<uint64_t, uint64_t>> seen;
    test::eventually(  // the last report may trail the reply
      [&] {
        std::lock_guard<std::mutex> lock(mutex);
        seen = reports[key];
        return !seen.empty() && seen.back().first == seen.back().second;
      },
      5s);
    ASSERT_GE(seen.size(), 2u) << key << ": expected a first and a last report";
    EXPECT_EQ(seen.front().first, 0u) << key;
    EXPECT_EQ(seen.back().first, s.weight_bytes) << key;
    for (size_t i = 1; i < seen.size(); ++i) {
      EXPECT_GE(seen[i].first, seen[i - 1].first) << key << ": progress went backwards";
      EXPECT_EQ(seen[i].second, s.weight_bytes) << key;
    }
  }
}

// A session left open (its KV cache stays on every stage) after one step.
void open_session(const Pipeline& p, uint64_t id) {
  caf::scoped_actor self{actor_system()};
  TensorMessage m;
  m.session_id = id;
  m.tensor = tokens_to_wire({1, 403, 407});
  m.sampling.options = dsl::greedy();
  self->request(p.stages().front().actor, 10s, proto::Activation{encode_tensor_message(m)})
    .receive([](const proto::TokenReply&) {}, [](caf::error& e) { FAIL() << proto::error_text(e); });
}

TEST(NodeStatus, EachNodeReportsItsStagesSessionsRecentRateAndHopRoundTrip) {
  const auto nodes = start_nodes();
  Pipeline p = deploy(actor_system(), three_stages("stories260K/stories260K.gguf", nodes), test::bounded_deploy_options());
  p.generate("Once upon a time", 30);
  open_session(p, 4242);
  for (size_t i = 0; i < nodes.size(); ++i) {
    proto::NodeInfo info;
    const bool has_next_stage = i + 1 < nodes.size();
    test::eventually(  // the first hop ping is sent at wiring
      [&] {
        info = connect_node(actor_system(), parse_endpoint(nodes[i]->endpoint()), 5s).info;
        return !(has_next_stage && !info.stage_stats.empty() && info.stage_stats[0].next_rtt_ms < 0);
      },
      5s);
    ASSERT_EQ(info.stages, 1);
    ASSERT_EQ(info.stage_stats.size(), 1u) << nodes[i]->endpoint();
    const proto::StageStats& s = info.stage_stats[0];
    EXPECT_EQ(s.describe, p.stages()[i].describe);
    EXPECT_EQ(s.sessions, 1) << "the open session";
    EXPECT_EQ(s.steps, 31u);
    // The rate counts the activations of the last 10 s: all 31 when the steps ran within them,
    // fewer on a loaded machine (no wall-clock claim here), never more.
    EXPECT_GT(s.recent_tokens_per_s, 0.0);
    EXPECT_LE(s.recent_tokens_per_s, 31 / 10.0 + 1e-9);
    if (has_next_stage) {
      EXPECT_GE(s.next_rtt_ms, 0) << s.describe << ": the hop to the next stage was not measured";
      EXPECT_LT(s.next_rtt_ms, 1000) << s.describe;
    } else {
      EXPECT_LT(s.next_rtt_ms, 0) << "the last stage has no next stage";
    }
  }

  std::vector<std::string> argv = {test::bin_path("troupe"), "status", "--nodes"};
  argv.push_back(test::node_list(nodes));
  const auto status = test::run_command(argv, 60);
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  for (const auto& s : p.stages()) EXPECT_NE(status.out.find(s.describe), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("1 sessions"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("tokens/s (last 10 s)"), std::string::npos) << status.out;
}

// Daemons stopped (SIGTERM) while six sessions are generating through them, with steps queued
// in their stages: each still exits, cleanly and within seconds (CAF's wait for detached
// stages to be destroyed once hung here for ever; caf-node bounds its shutdown).
TEST(NodeShutdown, NodesStopOnSigtermWhileSessionsAreQueuedInTheirStages) {
  const auto nodes = start_nodes();
  const test::TempDir dir;
  test::ChildProcess server({test::bin_path("troupe"), "serve", "--model", test::model_path("gpt2-tiny/gpt2-tiny.gguf"),
                             "--nodes", test::node_list(nodes),
                             "--layers", "0-1,2-2,3-3", "--port", "0", "--port-file", dir.file("port"), "--max-in-flight", "8", "--threads", "1"});
  const int port = server.wait_for_port_file(dir.file("port"), 30000);
  std::vector<std::future<test::HttpReply>> requests;
  for (int i = 0; i < 6; ++i)
    requests.push_back(std::async(std::launch::async, [port, i] {
      return test::http_request("http://127.0.0.1:" + std::to_string(port) + "/v1/completions",
                                "{\"prompt\": \"Request " + std::to_string(i) + "\", \"max_tokens\": 200}", 30);
    }));
  uint64_t steps = 0;
  test::eventually(
    [&] {
      const auto info = connect_node(actor_system(), parse_endpoint(nodes[1]->endpoint()), 5s).info;
      if (!info.stage_stats.empty()) steps = info.stage_stats[0].steps;
      return steps >= 12;
    },
    20s);
  ASSERT_GE(steps, 12u) << "the sessions did not start; the server's log:\n" << server.log() << "\nnode 1's log:\n"
                        << nodes[1]->log();
  for (const auto& n : nodes) ASSERT_EQ(kill(n->pid(), SIGTERM), 0);
  for (const auto& n : nodes) {
    const int status = n->stop(10s);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << n->endpoint() << " did not exit on SIGTERM within 10 s (status " << status << "); its log:\n" << n->log();
  }
  for (auto& r : requests) r.get();  // they end with an error once the nodes are gone
}

}  // namespace
}  // namespace troupe
