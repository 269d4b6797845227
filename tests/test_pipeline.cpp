// The distributed pipeline against the single-process run, with real caf-node daemons on
// 127.0.0.1: the same tokens and bitwise the same logits however the layers are split,
// concurrent sessions that do not disturb each other, direct stage-to-stage connections,
// and clear errors (naming node, stage, path) within seconds when something is wrong.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <thread>

#include "framework/cluster/cluster.h"
#include "framework/deploy/deploy.h"
#include "framework/dsl/dsl.h"
#include "tests/test_shared_nodes.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"
#include "tests/test_support_pipeline.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;
using test::actor_system;
using test::bitwise_same;
using test::n_layer_of;
using test::NodeProcess;
using test::Output;
using test::single_process;
using test::through;
using test::SharedNodes;
using test::even_split;


// -- pipelines -------------------------------------------------------------------------------

// `n_stages` stages of about equal size, stage i on node i (or in this process when `local`).

DeployOptions test_options() {
  DeployOptions o = test::bounded_deploy_options();
  o.spawn_timeout = DeployOptions{}.spawn_timeout;  // the default (5 min), as these tests have always had
  return o;
}

std::string failure_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// A TCP socket bound to a free port on 127.0.0.1 (and listening if `listening`), its host:port
// in `endpoint`; -1 if binding or listening failed.
int loopback_socket(bool listening, std::string& endpoint) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || (listening && listen(fd, 16) != 0)) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  endpoint = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  return fd;
}

// -- the same numbers however the model is split ---------------------------------------------

struct ModelCase {
  std::string name;       // for the test name
  std::string model;      // relative to the models dir
  std::string reference;  // prompt from ../shared/models/expected/<reference>.json
  std::vector<int> splits;  // numbers of stages to try
  int n_tokens;
};

// One test per model file, trying every split on the same nodes (starting nodes is what
// costs time here, not generating).
class PipelineMatchesSingleProcess : public ::testing::TestWithParam<ModelCase> {};

TEST_P(PipelineMatchesSingleProcess, GreedyTokensAndLogitsAreBitwiseIdenticalForEverySplit) {
  const ModelCase& c = GetParam();
  const auto prompt = test::load_reference(c.reference).prompt_tokens;
  const Output expected = single_process(c.model, prompt, c.n_tokens, dsl::greedy());
  ASSERT_EQ(static_cast<int>(expected.tokens.size()), c.n_tokens);
  for (int stages : c.splits) {
    SCOPED_TRACE(std::to_string(stages) + " stages");
    Pipeline p = deploy(actor_system(), even_split(c.model, stages, SharedNodes::nodes(stages), test::has_vocab(c.model)),
                        test_options());
    ASSERT_EQ(static_cast<int>(p.stages().size()), stages);
    EXPECT_TRUE(bitwise_same(expected, through(p, prompt, c.n_tokens, dsl::greedy())));
  }
}

INSTANTIATE_TEST_SUITE_P(
  Models, PipelineMatchesSingleProcess,
  ::testing::Values(
    ModelCase{"stories260K_gguf", "stories260K/stories260K.gguf", "stories260K.once-upon-a-time", {1, 2, 3, 5}, 32},
    ModelCase{"stories260K_hf", "stories260K/hf", "stories260K.lily-and-tom", {1, 2, 3, 5}, 32},
    ModelCase{"gpt2_tiny_gguf", "gpt2-tiny/gpt2-tiny.gguf", "gpt2-tiny.once-upon-a-time", {1, 2, 3, 4}, 16},
    ModelCase{"gpt2_tiny_hf", "gpt2-tiny/hf", "gpt2-tiny.hello-world", {1, 2, 3, 4}, 16},
    // Block formats (Q4_K + Q6_K mixed; Q3_K, Q5_K and Q2_K mixes; legacy 32-block formats), 3 stages.
    ModelCase{"llama_k_q4_k_m", "llama-k/llama-k-q4_k_m.gguf", "llama-k-q4_k_m.once-upon-a-time", {3}, 24},
    ModelCase{"llama_k_q3_k_m", "llama-k/llama-k-q3_k_m.gguf", "llama-k-q3_k_m.once-upon-a-time", {3}, 24},
    ModelCase{"llama_k_q5_k_m", "llama-k/llama-k-q5_k_m.gguf", "llama-k-q5_k_m.the-cat-sat-on-the-mat", {3}, 24},
    ModelCase{"llama_k_q2_k", "llama-k/llama-k-q2_k.gguf", "llama-k-q2_k.once-upon-a-time", {3}, 24},
    ModelCase{"llama_k_q5_0", "llama-k/llama-k-q5_0.gguf", "llama-k-q5_0.the-cat-sat-on-the-mat", {3}, 24},
    ModelCase{"llama_k_q4_1", "llama-k/llama-k-q4_1.gguf", "llama-k-q4_1.once-upon-a-time", {3}, 24},
    ModelCase{"phi2_tiny_gguf", "phi2-tiny/phi2-tiny.gguf", "phi2-tiny.def-fib-n", {2, 3}, 16},
    ModelCase{"phi2_tiny_hf", "phi2-tiny/hf", "phi2-tiny.once-upon-a-time", {2, 3}, 16},
    ModelCase{"gptj_tiny_hf", "gptj-tiny/hf", "gptj-tiny.def-fib-n", {2, 3}, 16},
    ModelCase{"llama3_tiny_gguf", "llama3-tiny/llama3-tiny.gguf", "llama3-tiny.hello-world-123", {2}, 16},
    ModelCase{"llama3_tiny_hf", "llama3-tiny/hf", "llama3-tiny.the-capital-of-france-is", {2}, 16},
    ModelCase{"qwen2_tiny_gguf", "qwen2-tiny/qwen2-tiny.gguf", "qwen2-tiny.hello-world-123", {2}, 16},
    ModelCase{"phi3_tiny_gguf", "phi3-tiny/phi3-tiny.gguf", "phi3-tiny.hello-world", {2}, 16}),
  [](const ::testing::TestParamInfo<ModelCase>& info) { return info.param.name; });

TEST(Pipeline, StagesInTheClientProcessComeFirstAndNodesFollow) {
  const std::string model = "stories260K/stories260K.gguf";
  const auto prompt = test::load_reference("stories260K.once-upon-a-time").prompt_tokens;
  const Output expected = single_process(model, prompt, 24, dsl::greedy());
  auto nodes = SharedNodes::nodes(1);
  // stages 0 and 1 in this process, stage 2 on a node.
  dsl::PipelineDesc desc = even_split(model, 3, {});
  desc.stages[2] = desc.stages[2].on(nodes[0]->endpoint());
  Pipeline p = deploy(actor_system(), desc, test_options());
  EXPECT_EQ(p.stages()[0].endpoint, "");
  EXPECT_EQ(p.stages()[2].endpoint, nodes[0]->endpoint());
  EXPECT_TRUE(bitwise_same(expected, through(p, prompt, 24, dsl::greedy())));
}

TEST(Pipeline, AStageInTheClientProcessAfterANodeIsRefused) {
  auto nodes = SharedNodes::nodes(1);
  dsl::PipelineDesc desc = even_split("stories260K/stories260K.gguf", 2, {});
  desc.stages[0] = desc.stages[0].on(nodes[0]->endpoint());
  const std::string error = failure_of([&] { deploy(actor_system(), desc, test_options()); });
  EXPECT_NE(error.find("stage 1 runs in this process but follows stage 0 on node " + nodes[0]->endpoint()),
            std::string::npos)
    << error;
}

TEST(Pipeline, TextPromptIsTokenizedOnTheClientAndTokensStreamInOrder) {
  const std::string model = "stories260K/stories260K.gguf";
  const auto ref = test::load_reference("stories260K.once-upon-a-time");
  auto nodes = SharedNodes::nodes(2);
  Pipeline p = deploy(actor_system(), even_split(model, 2, nodes), test_options());
  EXPECT_EQ(p.encode(ref.prompt), ref.prompt_tokens);
  std::vector<int32_t> streamed;
  std::string pieces;
  const Generation g = p.generate(ref.prompt, 20, [&](int32_t token, const std::string& piece) {
    streamed.push_back(token);
    pieces += piece;
  });
  EXPECT_EQ(streamed, g.tokens);
  EXPECT_EQ(g.tokens, single_process(model, ref.prompt_tokens, 20, dsl::greedy()).tokens);
  EXPECT_EQ(g.text, p.decode(g.tokens));
  EXPECT_FALSE(g.text.empty());
}

// -- sessions ---------------------------------------------------------------------------------

TEST(Pipeline, FourConcurrentSessionsEachGetExactlyWhatTheyGetAlone) {
  const std::string model = "stories260K/stories260K.gguf";
  const auto a = test::load_reference("stories260K.once-upon-a-time").prompt_tokens;
  const auto b = test::load_reference("stories260K.lily-and-tom").prompt_tokens;
  SamplingOptions sampled;  // temperature 0.8, top-k 40, top-p 0.95
  sampled.seed = 11;
  SamplingOptions penalized = sampled;
  penalized.seed = 12;
  penalized.repeat_penalty = 1.3f;
  const std::vector<std::pair<std::vector<int32_t>, SamplingOptions>> sessions = {
    {a, dsl::greedy()}, {b, dsl::greedy()}, {a, sampled}, {b, penalized}};
  const int n_tokens = 40;

  Pipeline p = deploy(actor_system(), even_split(model, 3, SharedNodes::nodes(3)), test_options());
  std::vector<Output> alone;
  for (const auto& [prompt, sampling] : sessions) alone.push_back(through(p, prompt, n_tokens, sampling));

  std::vector<std::future<Output>> together;
  for (const auto& [prompt, sampling] : sessions)
    together.push_back(std::async(std::launch::async, [&p, prompt = prompt, sampling = sampling] {
      return through(p, prompt, n_tokens, sampling);
    }));
  for (size_t i = 0; i < sessions.size(); ++i) {
    EXPECT_TRUE(bitwise_same(alone[i], together[i].get())) << "session " << i;
    EXPECT_TRUE(bitwise_same(single_process(model, sessions[i].first, n_tokens, sessions[i].second), alone[i]))
      << "session " << i << " against the single-process run";
  }
}

TEST(Pipeline, EndingASessionFreesItsKvCacheOnEveryStage) {
  const std::string model = "stories260K/stories260K.gguf";
  Pipeline p = deploy(actor_system(), even_split(model, 3, SharedNodes::nodes(3), false), test_options());
  caf::scoped_actor self{actor_system()};
  TensorMessage m;
  m.session_id = 777;
  m.tensor = tokens_to_wire({1, 403, 407});
  m.sampling.options = dsl::greedy();
  bool replied = false;
  self->request(p.stages().front().actor, 10s, proto::Activation{encode_tensor_message(m)})
    .receive([&](const proto::TokenReply& r) { replied = r.session_id == 777; }, [](caf::error&) {});
  ASSERT_TRUE(replied);
  for (const auto& s : p.stats()) {
    EXPECT_EQ(s.sessions, 1) << s.describe;
    EXPECT_GT(s.cache_bytes, 0u) << s.describe;
  }
  for (const auto& s : p.stages())
    self->request(s.actor, 10s, proto::end_session_atom::value, uint64_t{777})
      .receive([](caf::ok_atom) {}, [](caf::error& e) { ADD_FAILURE() << proto::error_text(e); });
  for (const auto& s : p.stats()) {
    EXPECT_EQ(s.sessions, 0) << s.describe;
    EXPECT_EQ(s.cache_bytes, 0u) << s.describe;
  }
}

TEST(Pipeline, GenerateEndsItsSessionWhenDone) {
  Pipeline p = deploy(actor_system(), even_split("stories260K/stories260K.gguf", 2, SharedNodes::nodes(2)), test_options());
  p.generate("Once upon a time", 8);
  for (const auto& s : p.stats()) EXPECT_EQ(s.sessions, 0) << s.describe;
}

// -- the network -------------------------------------------------------------------------------

TEST(Pipeline, StagesOnDifferentNodesTalkDirectlyNotThroughTheClient) {
  auto nodes = SharedNodes::nodes(3);
  Pipeline p = deploy(actor_system(), even_split("stories260K/stories260K.gguf", 3, nodes), test_options());
  p.generate("Once upon a time", 4);
  // CAF connects a node to a third node it learned of in the background (automatic
  // connections); give it a moment before looking at the sockets.
  EXPECT_TRUE(test::eventually(
    [&] {
      return test::directly_connected(nodes[0]->pid(), nodes[0]->port(), nodes[1]->pid(), nodes[1]->port()) &&
             test::directly_connected(nodes[1]->pid(), nodes[1]->port(), nodes[2]->pid(), nodes[2]->port());
    },
    5s))
    << "no direct TCP connection node0-node1 and node1-node2";
  // And the activations flowed over them: each hop's bytes were sent by the stage itself.
  const auto stats = p.stats();
  EXPECT_GT(stats[0].bytes_out, 0u);
  EXPECT_EQ(stats[1].bytes_in, stats[0].bytes_out);
  EXPECT_EQ(stats[2].bytes_in, stats[1].bytes_out);
}

TEST(Pipeline, UnreachableNodeIsNamedWithinSeconds) {
  // A port nothing listens on: bind one, then close it.
  std::string endpoint;
  const int fd = loopback_socket(false, endpoint);
  ASSERT_GE(fd, 0);
  close(fd);

  auto nodes = SharedNodes::nodes(1);
  dsl::PipelineDesc desc = even_split("stories260K/stories260K.gguf", 2, nodes);
  desc.stages[1] = desc.stages[1].on(endpoint);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string error = failure_of([&] { deploy(actor_system(), desc, test_options()); });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_NE(error.find(endpoint), std::string::npos) << error;
  EXPECT_NE(error.find("refused"), std::string::npos) << error;
}

TEST(Pipeline, NodeThatNeverAnswersIsNamedWhenTheConnectTimeoutExpires) {
  // Listens (the kernel completes TCP handshakes) but never speaks CAF's protocol.
  std::string endpoint;
  const int fd = loopback_socket(true, endpoint);
  ASSERT_GE(fd, 0);

  DeployOptions options = test_options();
  options.connect_timeout = 1500ms;
  dsl::PipelineDesc desc = even_split("stories260K/stories260K.gguf", 1, {});
  desc.stages[0] = desc.stages[0].on(endpoint);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string error = failure_of([&] { deploy(actor_system(), desc, options); });
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  close(fd);
  EXPECT_GE(elapsed, 1400ms);
  EXPECT_LT(elapsed, 4s);
  EXPECT_NE(error.find(endpoint), std::string::npos) << error;
}

// -- errors name what a user can act on ------------------------------------------------------------

TEST(Pipeline, MissingModelIsNamedWithItsNodeAndPath) {
  auto nodes = SharedNodes::nodes(2);
  dsl::PipelineDesc desc = even_split("stories260K/stories260K.gguf", 2, nodes);
  desc.stages[1].model = "stories260K/no-such-model.gguf";
  const std::string error = failure_of([&] { deploy(actor_system(), desc, test_options()); });
  EXPECT_NE(error.find("node " + nodes[1]->endpoint()), std::string::npos) << error;
  EXPECT_NE(error.find(test::models_dir() + "/stories260K/no-such-model.gguf"), std::string::npos) << error;
  // The stage that did load is stopped again.
  int32_t alive = -1;
  EXPECT_TRUE(test::eventually(
    [&] { return (alive = connect_node(actor_system(), parse_endpoint(nodes[0]->endpoint()), 5s).info.stages) == 0; },
    5s))
    << alive << " stages still on the node";
}

TEST(Pipeline, LayersThatDoNotCoverTheModelAreRefused) {
  auto nodes = SharedNodes::nodes(1);
  using namespace dsl;
  const std::string model = "stories260K/stories260K.gguf";
  const std::string error = failure_of([&] {
    deploy(actor_system(), stage(model, layers(0, 1)) >> stage(model, layers(2, 3)).on(nodes[0]->endpoint()),
           test_options());
  });
  EXPECT_NE(error.find("the model has 5 layers"), std::string::npos) << error;
  const std::string gap = failure_of([&] {
    deploy(actor_system(), stage(model, layers(0, 1)) >> stage(model, layers(3, 4)), test_options());
  });
  EXPECT_NE(gap.find("starts at layer 3, expected layer 2"), std::string::npos) << gap;
}

TEST(Pipeline, ComputeErrorComesBackNamingStageAndNodeAndTheNodeKeepsServing) {
  auto nodes = SharedNodes::nodes(2);
  Pipeline p = deploy(actor_system(), even_split("stories260K/stories260K.gguf", 2, nodes), test_options());
  // Hidden states of the wrong width, sent straight to the second stage.
  TensorMessage m;
  m.session_id = 5;
  m.tensor.dtype = WireDType::f32;
  m.tensor.shape = {1, 3};
  m.tensor.data.assign(12, '\0');
  caf::scoped_actor self{actor_system()};
  std::string error;
  self->request(p.stages()[1].actor, 10s, proto::Activation{encode_tensor_message(m)})
    .receive([](const proto::TokenReply&) {}, [&](caf::error& e) { error = proto::error_text(e); });
  EXPECT_NE(error.find("stage layers 2-4 +head"), std::string::npos) << error;
  EXPECT_NE(error.find("on node " + nodes[1]->endpoint()), std::string::npos) << error;
  EXPECT_NE(error.find("expected hidden states [T, 64]"), std::string::npos) << error;
  // A damaged message too.
  error.clear();
  self->request(p.stages()[0].actor, 10s, proto::Activation{"garbage"})
    .receive([](const proto::TokenReply&) {}, [&](caf::error& e) { error = proto::error_text(e); });
  EXPECT_NE(error.find("wire message"), std::string::npos) << error;
  // Both stages still serve.
  EXPECT_EQ(p.generate("Once upon a time", 4).tokens.size(), 4u);
}

TEST(Pipeline, AFailureInStageKCarriesStageKsLayersAndNodeAsDataAcrossTheNetwork) {
  auto nodes = SharedNodes::nodes(3);
  Pipeline p = deploy(actor_system(), even_split("stories260K/stories260K.gguf", 3, nodes), test_options());
  caf::scoped_actor self{actor_system()};
  for (size_t k = 0; k < 3; ++k) {
    // Stage k throws inside compute at its next pass; the request enters at stage 0, so the
    // failure of stage k comes back from its node, delegated along the chain.
    p.inject_fault(k, 0);
    TensorMessage m;
    m.session_id = 900 + k;
    m.tensor = tokens_to_wire({1, 403, 511});
    caf::error error;
    self->request(p.stages()[0].actor, 10s, proto::Activation{encode_tensor_message(m)})
      .receive([](const proto::TokenReply&) {}, [&](caf::error& e) { error = std::move(e); });
    ASSERT_TRUE(error) << "stage " << k << " did not fail";
    const auto failure = proto::stage_failure_of(error);
    ASSERT_TRUE(failure.has_value()) << "stage " << k << ": no StageFailure in " << proto::error_text(error);
    EXPECT_EQ(failure->spec.describe(), p.stages()[k].describe) << "stage " << k;
    EXPECT_EQ(failure->node, nodes[k]->endpoint()) << "stage " << k;
    EXPECT_NE(failure->what.find("injected fault"), std::string::npos) << failure->what;
  }
  EXPECT_EQ(p.generate("Once upon a time", 4).tokens.size(), 4u);  // every stage still serves
}

TEST(Pipeline, DestroyingThePipelineStopsItsStagesOnTheNodes) {
  auto nodes = SharedNodes::nodes(2);
  { Pipeline p = deploy(actor_system(), even_split("stories260K/stories260K.gguf", 2, nodes), test_options()); }
  int32_t alive = -1;
  EXPECT_TRUE(test::eventually(
    [&] {
      alive = 0;
      for (auto* n : nodes) alive += connect_node(actor_system(), parse_endpoint(n->endpoint()), 5s).info.stages;
      return alive == 0;
    },
    5s))
    << alive << " stages still on the nodes";
}

TEST(Pipeline, HalfPrecisionOnTheWireHalvesTheActivationBytes) {
  auto nodes = SharedNodes::nodes(2);
  const std::string model = "stories260K/stories260K.gguf";
  const int64_t n_embd = 64;
  std::map<WireDType, uint64_t> bytes;
  int64_t positions = 0;
  for (WireDType dtype : {WireDType::f32, WireDType::f16, WireDType::bf16}) {
    DeployOptions options = test_options();
    options.wire_dtype = dtype;
    Pipeline p = deploy(actor_system(), even_split(model, 2, nodes), options);
    const Generation g = p.generate("Once upon a time", 9);
    ASSERT_EQ(g.tokens.size(), 9u);
    positions = static_cast<int64_t>(g.prompt_tokens.size()) + 8;  // the prompt, then 8 single tokens
    bytes[dtype] = p.stats()[0].bytes_out;
  }
  // Every hidden state crossed with 2 bytes per element instead of 4; the rest is the same.
  EXPECT_EQ(bytes[WireDType::f32] - bytes[WireDType::f16], static_cast<uint64_t>(positions * n_embd * 2));
  EXPECT_EQ(bytes[WireDType::bf16], bytes[WireDType::f16]);
}

TEST(Pipeline, NodeTellsItsMemoryCoresAndModels) {
  auto nodes = SharedNodes::nodes(1);
  const proto::NodeInfo info = connect_node(actor_system(), parse_endpoint(nodes[0]->endpoint()), 5s).info;
  EXPECT_EQ(info.node, nodes[0]->endpoint());
  EXPECT_GT(info.mem_total, 0u);
  EXPECT_GT(info.mem_available, 0u);
  EXPECT_LE(info.mem_available, info.mem_total);
  EXPECT_GT(info.cores, 0);
  EXPECT_EQ(info.threads, test::kPipelineThreads);
  const auto has = [&](const std::string& m) {
    return std::find(info.models.begin(), info.models.end(), m) != info.models.end();
  };
  EXPECT_TRUE(has("stories260K/stories260K.gguf"));
  EXPECT_TRUE(has("gpt2-tiny/hf"));
}

TEST(Pipeline, NodeStopsCleanlyOnSigtermWhileServingStages) {
  NodeProcess node(test::models_dir(), test::kPipelineThreads, "sigterm");
  node.wait_ready();
  Pipeline p = deploy(actor_system(), even_split("stories260K/stories260K.gguf", 1, {&node}), test_options());
  p.generate("Once upon a time", 2);
  const int status = node.stop(5s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << ", log:\n" << node.log();
  // Generating now fails at once (not after the step timeout) naming the stage and node.
  const auto t0 = std::chrono::steady_clock::now();
  const std::string error = failure_of([&] { p.generate("Once upon a time", 2); });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, test_options().step_timeout / 3);  // generous: a loaded machine
  EXPECT_NE(error.find("generation failed"), std::string::npos) << error;
  EXPECT_NE(error.find("on node " + node.endpoint()), std::string::npos) << error;
  EXPECT_NE(error.find("went down"), std::string::npos) << error;
}

}  // namespace
}  // namespace troupe
