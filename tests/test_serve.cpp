// `troupe serve` driven by a real HTTP client (curl): completions and chat, JSON and
// server-sent events, stop strings, errors, the bounded queue and client cancellation.
#include <gtest/gtest.h>

#include <functional>

#include <future>
#include <thread>
#include <nlohmann/json.hpp>

#include "tests/test_support.h"
#include "tests/test_support_nodes.h"

namespace troupe {
namespace {

using json = nlohmann::json;

// One server for the suite, serving stories260K through three caf-node processes
// (layers 0-1, 2-3, 4) with up to two generations in the pipeline at once.
class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_up([] { start(test::model_path("stories260K/stories260K.gguf"), test::models_dir(), 3, "2", "4"); });
  }
  // A suite whose server did not start fails each test (gtest would only mark them skipped,
  // which ctest counts as passing).
  static void set_up(const std::function<void()>& start_server) {
    setup_error_.clear();
    try {
      start_server();
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  void SetUp() override {
    if (!server_) FAIL() << "troupe serve did not start: " << setup_error_;
  }
  static inline std::string setup_error_;
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    nodes_.clear();
    delete dir_;
    dir_ = nullptr;
  }

  static void start(const std::string& model, const std::string& models_dir, int n_nodes, const char* in_flight,
                    const char* queue) {
    if (!dir_) dir_ = new test::TempDir();
    nodes_ = test::start_nodes(models_dir, 1, "serve-node", static_cast<size_t>(n_nodes));
    const std::string list = test::node_list(nodes_);
    server_ = new test::ChildProcess({test::bin_path("troupe"), "serve", "--model", model, "--nodes", list, "--port", "0",
                                      "--port-file", dir_->file("port"), "--max-in-flight", in_flight, "--max-queue",
                                      queue, "--threads", "1"});
    port_ = server_->wait_for_port_file(dir_->file("port"));
  }

  static std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  // POSTs `body`; returns {http status, response body}.
  static std::pair<int, std::string> post(const std::string& path, const std::string& body, double max_seconds = 60) {
    const auto r = test::http_request(url(path), body, max_seconds);
    return {r.status, r.body};
  }
  static std::string get(const std::string& path) { return test::http_request(url(path), "", 10).body; }

  // The concatenated text of an SSE stream, and whether it ended with [DONE].
  static std::pair<std::string, bool> sse_text(const std::string& stream, bool chat) {
    std::string text;
    bool done = false;
    size_t pos = 0;
    while ((pos = stream.find("data: ", pos)) != std::string::npos) {
      const size_t end = stream.find("\n\n", pos);
      const std::string data = stream.substr(pos + 6, end - pos - 6);
      pos = end;
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      const auto j = json::parse(data);
      const auto& c = j["choices"][0];
      if (chat && c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
      if (!chat) text += c["text"].get<std::string>();
    }
    return {text, done};
  }

  static test::TempDir* dir_;
  static std::vector<std::unique_ptr<test::NodeProcess>> nodes_;
  static test::ChildProcess* server_;
  static int port_;
};
test::TempDir* Serve::dir_ = nullptr;
std::vector<std::unique_ptr<test::NodeProcess>> Serve::nodes_;
test::ChildProcess* Serve::server_ = nullptr;
int Serve::port_ = 0;

const char* kGreedy20 = R"({"prompt": "Once upon a time", "max_tokens": 20, "temperature": 0})";

TEST_F(Serve, CompletionIsTheGreedyReferenceText) {
  const auto ref = test::load_reference("stories260K.once-upon-a-time");
  const auto [status, body] = post("/v1/completions", kGreedy20);
  ASSERT_EQ(status, 200) << body;
  const auto j = json::parse(body);
  const std::string text = j["choices"][0]["text"];
  EXPECT_EQ(ref.text.rfind(text, 0), 0u) << text;  // a prefix of the 60-token reference
  EXPECT_EQ(j["usage"]["completion_tokens"], 20);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
}

TEST_F(Serve, StreamingGivesTheSameTextInChunksEndingWithDone) {
  const auto [status, plain] = post("/v1/completions", kGreedy20);
  json streaming = json::parse(kGreedy20);
  streaming["stream"] = true;
  const std::string streaming_body = streaming.dump();
  const auto [s2, stream] = post("/v1/completions", streaming_body);
  ASSERT_EQ(s2, 200) << stream;
  const auto [text, done] = sse_text(stream, false);
  EXPECT_TRUE(done);
  EXPECT_EQ(text, json::parse(plain)["choices"][0]["text"].get<std::string>());
  EXPECT_GT(std::count(stream.begin(), stream.end(), '\n'), 20);  // many events, not one
}

TEST_F(Serve, ChatCompletionAnswersAsTheAssistantStreamingAndNot) {
  const std::string body =
      R"({"messages": [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Tell me about a cat."}], "max_tokens": 12, "temperature": 0})";
  const auto [status, plain] = post("/v1/chat/completions", body);
  ASSERT_EQ(status, 200) << plain;
  const auto j = json::parse(plain);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::string answer = j["choices"][0]["message"]["content"];
  EXPECT_FALSE(answer.empty());
  json streaming = json::parse(body);
  streaming["stream"] = true;
  const auto [s2, stream] = post("/v1/chat/completions", streaming.dump());
  const auto [text, done] = sse_text(stream, true);
  EXPECT_TRUE(done);
  EXPECT_EQ(text, answer);
}

TEST_F(Serve, StopStringEndsTheCompletionBeforeIt) {
  const auto [status, body] = post("/v1/completions",
                                   R"({"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0, "stop": ["Lily"]})");
  ASSERT_EQ(status, 200) << body;
  const auto j = json::parse(body);
  EXPECT_EQ(j["choices"][0]["text"], ", there was a little girl named ");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
}

TEST_F(Serve, FixedSeedRepeatsSampledText) {
  const char* body = R"({"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0.9, "seed": 5})";
  EXPECT_EQ(json::parse(post("/v1/completions", body).second)["choices"][0]["text"],
            json::parse(post("/v1/completions", body).second)["choices"][0]["text"]);
}

TEST_F(Serve, MalformedRequestsGet400WithAJsonErrorNamingTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "not valid JSON"},
      {R"({"prompt": 42})", "'prompt' must be a string"},
      {R"({"prompt": "hi", "max_tokens": "ten"})", "'max_tokens' must be a number"},
      {R"({"prompt": "hi", "temperature": 7})", "'temperature' must be between"},
      {R"({"prompt": "hi", "stream": "yes"})", "'stream' must be a boolean"},
  };
  for (const auto& [body, message] : cases) {
    const auto [status, response] = post("/v1/completions", body);
    EXPECT_EQ(status, 400) << body;
    const auto j = json::parse(response);
    EXPECT_NE(j["error"]["message"].get<std::string>().find(message), std::string::npos) << response;
  }
  const auto [status, response] = post("/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})");
  EXPECT_EQ(status, 400);
  EXPECT_NE(response.find("'wizard' is not system, user or assistant"), std::string::npos) << response;
}

TEST_F(Serve, PromptLongerThanTheContextGets400) {
  std::string prompt;
  for (int i = 0; i < 100; ++i) prompt += "the cat sat on the mat. ";
  const auto [status, response] = post("/v1/completions", json{{"prompt", prompt}}.dump());
  EXPECT_EQ(status, 400);
  EXPECT_NE(response.find("does not fit the context of 128 tokens"), std::string::npos) << response;
}

TEST_F(Serve, ModelsHealthAndMetricsAnswer) {
  EXPECT_EQ(json::parse(get("/v1/models"))["data"][0]["object"], "model");
  EXPECT_EQ(json::parse(get("/health"))["status"], "ok");
  const std::string metrics = get("/metrics");
  for (const char* name : {"troupe_tokens_per_second", "troupe_sessions_in_flight", "troupe_completion_tokens_total"})
    EXPECT_NE(metrics.find(name), std::string::npos) << name;
}

// A second server on a slower model (GPT-2-small width, 2 layers, ~10 ms a token) over
// two nodes, one generation at a time and one waiting, so that a generation lasts long
// enough to be queued behind or cut off.
class ServeSlowModel : public Serve {
 protected:
  static void SetUpTestSuite() {
    set_up([] {
      dir_ = new test::TempDir();
      const auto synth = test::run_command({test::bin_path("troupe"), "synth", "--shape", "gpt2", "--layers", "2",
                                            "--type", "f16", "--vocab-from", test::model_path("gpt2-tiny/gpt2-tiny.gguf"),
                                            "--out", dir_->file("slow.gguf")});
      if (synth.exit_code != 0) throw std::runtime_error("troupe synth failed: " + synth.err);
      start(dir_->file("slow.gguf"), dir_->path(), 2, "1", "1");
    });
  }
};

TEST_F(ServeSlowModel, RequestsPastTheQueueGet429WhileOthersRun) {
  // One runs and one waits (600 tokens each, seconds long); once both are in, every further
  // request is refused at once with a JSON error, and the two still finish.
  std::vector<std::future<std::pair<int, std::string>>> admitted;
  for (int i = 0; i < 2; ++i)
    admitted.push_back(std::async(std::launch::async, [] {
      return post("/v1/completions", R"({"prompt": "Hello", "max_tokens": 600, "temperature": 0})");
    }));
  std::string metrics;
  ASSERT_TRUE(test::eventually(
    [&] {
      metrics = get("/metrics");
      return metrics.find("troupe_sessions_in_flight 1") != std::string::npos &&
             metrics.find("troupe_sessions_queued 1") != std::string::npos;
    },
    std::chrono::seconds(30)))
    << metrics;
  for (int i = 0; i < 3; ++i) {
    const auto [status, body] = post("/v1/completions", R"({"prompt": "Hello", "max_tokens": 60, "temperature": 0})");
    ASSERT_EQ(status, 429) << body;
    EXPECT_NE(json::parse(body)["error"]["message"].get<std::string>().find("server busy"), std::string::npos) << body;
  }
  for (auto& c : admitted) EXPECT_EQ(c.get().first, 200);
}

// The value of a Prometheus sample line "name value".
int64_t metric(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find("\n" + name + " ");
  if (at == std::string::npos) throw std::runtime_error("no metric " + name + " in:\n" + metrics);
  return std::stoll(metrics.substr(at + name.size() + 2));
}

TEST_F(ServeSlowModel, ClientThatDisconnectsCancelsItsGeneration) {
  const int64_t tokens_before = metric(get("/metrics"), "troupe_completion_tokens_total");
  // A 600-token stream (several seconds) cut off by the client after half a second.
  post("/v1/completions", R"({"prompt": "Hello", "max_tokens": 600, "temperature": 0.8, "stream": true})", 0.5);
  std::string metrics;
  EXPECT_TRUE(test::eventually(
    [&] { return (metrics = get("/metrics")).find("troupe_requests_cancelled_total 1") != std::string::npos; },
    std::chrono::seconds(5)))
    << metrics;
  EXPECT_NE(metrics.find("troupe_sessions_in_flight 0"), std::string::npos) << metrics;
  // Its KV caches are gone from every stage.
  EXPECT_NE(metrics.find("troupe_stage_sessions{stage=\"0\""), std::string::npos) << metrics;
  for (size_t at = metrics.find("\ntroupe_stage_sessions{"); at != std::string::npos;
       at = metrics.find("\ntroupe_stage_sessions{", at + 1))
    EXPECT_EQ(metrics.substr(metrics.find("} ", at) + 2, 1), "0") << metrics.substr(at, 120);
  // Far fewer tokens than asked for were generated.
  EXPECT_LT(metric(metrics, "troupe_completion_tokens_total") - tokens_before, 300);
}

}  // namespace
}  // namespace troupe
