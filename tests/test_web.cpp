// What people expect of a local LLM server (issue 18), against real `troupe serve` processes:
// the OpenAI API's finer fields (curl and the official SDK), CORS, model names, a taken port,
// and the chat and cluster page at / driven in headless Chromium.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_support.h"
#include "tests/test_support_nodes.h"

namespace troupe {
namespace {

using json = nlohmann::json;

const std::string kWebDir = std::string(TROUPE_SOURCE_DIR) + "/tests/web";

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Node.js as found on PATH (NodeSource and nvm put it outside /usr/bin), or "".
std::string node_binary() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = dirs.substr(start, end - start) + "/node";
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// Why the node-driven checks cannot run here ("" when they can).
std::string node_missing(const char* package) {
  if (node_binary().empty()) return "node is not on PATH (scripts/install-deps.sh installs it)";
  if (!exists(kWebDir + "/node_modules/" + package))
    return std::string("npm package ") + package + " is not installed in tests/web (scripts/install-deps.sh runs npm ci there)";
  return "";
}

// One `troupe serve` (stories260K in this process, or over nodes), with HTTP helpers.
struct Server {
  test::TempDir dir;
  std::unique_ptr<test::ChildProcess> process;
  int port = 0;

  explicit Server(std::vector<std::string> args) {
    // Any free port: ctest runs each test in a process of its own, several at once.
    std::vector<std::string> argv = {test::bin_path("troupe"), "serve",   "--port",    "0", "--port-file",
                                     dir.file("port"),         "--threads", "1"};
    argv.insert(argv.end(), args.begin(), args.end());
    process = std::make_unique<test::ChildProcess>(argv);
    port = process->wait_for_port_file(dir.file("port"), 120000);  // slow to start on a loaded machine
  }
  std::string url(const std::string& path = "") const { return "http://127.0.0.1:" + std::to_string(port) + path; }

  // {status, headers, body} of a request; `extra` are more curl arguments.
  struct Reply {
    int status = 0;
    std::string headers, body;
  };
  Reply request(const std::string& path, const std::string& body = "", std::vector<std::string> extra = {}) const {
    extra.insert(extra.begin(), {"-D", dir.file("headers")});
    const auto r = test::http_request(url(path), body, 60, extra);
    Reply reply;
    if (r.status == 0) return reply;
    reply.status = r.status;
    reply.body = r.body;
    reply.headers = test::run_command({"/bin/cat", dir.file("headers")}).out;
    return reply;
  }
};

// The events of a server-sent-event stream, [DONE] left out.
std::vector<json> sse_events(const std::string& stream) {
  std::vector<json> events;
  size_t pos = 0;
  while ((pos = stream.find("data: ", pos)) != std::string::npos) {
    const size_t end = stream.find("\n\n", pos);
    const std::string data = stream.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data != "[DONE]") events.push_back(json::parse(data));
  }
  return events;
}

// llama.cpp's logits and ours agree to 2e-3 relative (tests/test_reference_outputs.cpp); a
// log-probability is a logit minus a log-sum-exp, each within that.
double logprob_tolerance(double logit) { return 2 * 2e-3 * std::max(1.0, std::abs(logit)); }

// The reference's prompt followed by its first `n` greedy tokens.
std::vector<int32_t> reference_sequence(const test::Reference& ref, size_t n) {
  std::vector<int32_t> tokens = ref.prompt_tokens;
  for (size_t i = 0; i < n; ++i) tokens.push_back(ref.steps[i].token);
  return tokens;
}

class WebApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      server_ = new Server({"--model", test::model_path("stories260K/stories260K.gguf"), "--name", "stories",
                            "--alias", "gpt-3.5-turbo", "--cors-origin", "http://app.example"});
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  // A server that did not start fails each test (gtest would only mark them skipped, which
  // ctest counts as passing).
  void SetUp() override {
    if (!server_) FAIL() << "troupe serve did not start: " << setup_error_;
  }
  static Server* server_;
  static inline std::string setup_error_;
};
Server* WebApi::server_ = nullptr;

TEST_F(WebApi, EchoOfTokenIdsGivesTheLogSoftmaxOfTheReferenceLogitsAtEveryPosition) {
  const auto ref = test::load_reference("stories260K.once-upon-a-time");
  const size_t n = 30;
  const auto tokens = reference_sequence(ref, n);
  const auto r = server_->request(
      "/v1/completions", json{{"prompt", tokens}, {"echo", true}, {"max_tokens", 0}, {"logprobs", 5}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = json::parse(r.body);
  const auto& lp = j["choices"][0]["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), tokens.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_EQ(j["usage"]["completion_tokens"], 0);
  EXPECT_EQ(j["usage"]["prompt_tokens"], tokens.size());
  // Position p + i (i >= 0) is the reference's step i: its token is the greedy choice, the top-1.
  const size_t p = ref.prompt_tokens.size();
  for (size_t i = 0; i < n; ++i) {
    const auto& step = ref.steps[i];
    const double expected = step.top5[0].second - step.logsumexp;
    const double tol = logprob_tolerance(step.top5[0].second);
    EXPECT_NEAR(lp["token_logprobs"][p + i].get<double>(), expected, tol) << "position " << p + i;
    std::vector<double> top;
    for (const auto& [text, v] : lp["top_logprobs"][p + i].items()) top.push_back(v.get<double>());
    std::sort(top.rbegin(), top.rend());
    ASSERT_GE(top.size(), 4u) << "position " << p + i;  // five ids; two may decode to the same text
    EXPECT_NEAR(top[0], expected, tol);
    EXPECT_NEAR(top[1], step.top5[1].second - step.logsumexp, tol) << "position " << p + i;
  }
}

TEST_F(WebApi, GeneratedTokensCarryTheirLogprobsAndTopAlternatives) {
  const auto ref = test::load_reference("stories260K.once-upon-a-time");
  const auto r = server_->request(
      "/v1/completions",
      json{{"prompt", ref.prompt_tokens}, {"max_tokens", 10}, {"temperature", 0}, {"logprobs", 3}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = json::parse(r.body);
  const auto& lp = j["choices"][0]["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), ref.steps[i].top5[0].second - ref.steps[i].logsumexp,
                logprob_tolerance(ref.steps[i].top5[0].second));
    EXPECT_EQ(lp["top_logprobs"][i].size(), 3u);
  }
}

TEST_F(WebApi, TokenIdPromptGivesTheSameTextAsTheStringPrompt) {
  const auto ref = test::load_reference("stories260K.once-upon-a-time");
  const auto as_text = server_->request("/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0})");
  const auto as_ids = server_->request(
      "/v1/completions", json{{"prompt", ref.prompt_tokens}, {"max_tokens", 12}, {"temperature", 0}}.dump());
  ASSERT_EQ(as_ids.status, 200) << as_ids.body;
  EXPECT_EQ(json::parse(as_ids.body)["choices"][0]["text"], json::parse(as_text.body)["choices"][0]["text"]);
  const auto bad = server_->request("/v1/completions", R"({"prompt": [1, 99999], "max_tokens": 1})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("token id 99999 is outside the vocabulary (0 to 511)"), std::string::npos) << bad.body;
}

TEST_F(WebApi, StreamWithIncludeUsageEndsWithAUsageChunk) {
  const auto r = server_->request(
      "/v1/chat/completions",
      R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}})");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto events = sse_events(r.body);
  ASSERT_GE(events.size(), 3u);
  const auto& last = events.back();
  EXPECT_TRUE(last["choices"].empty()) << last.dump();
  EXPECT_EQ(last["usage"]["completion_tokens"], 5);
  EXPECT_GT(last["usage"]["prompt_tokens"].get<int>(), 0);
}

TEST_F(WebApi, ModelNamesAreCheckedAndModelsListCreated) {
  const auto models = json::parse(server_->request("/v1/models").body);
  EXPECT_EQ(models["data"][0]["id"], "stories");
  EXPECT_TRUE(models["data"][0]["created"].is_number_integer());
  EXPECT_EQ(models["data"][0]["owned_by"], "troupe");
  for (const char* name : {"stories", "gpt-3.5-turbo"}) {
    const auto ok = server_->request("/v1/completions", json{{"model", name}, {"prompt", "Hi"}, {"max_tokens", 1}}.dump());
    EXPECT_EQ(ok.status, 200) << name << ": " << ok.body;
    EXPECT_EQ(json::parse(ok.body)["model"], "stories");
  }
  const auto wrong = server_->request("/v1/completions", R"({"model": "llama-70b", "prompt": "Hi", "max_tokens": 1})");
  EXPECT_EQ(wrong.status, 404);
  EXPECT_NE(wrong.body.find("'llama-70b' is not served here; this server serves 'stories'"), std::string::npos) << wrong.body;
}

TEST_F(WebApi, ToolCallHistoryIsRefusedSayingToolsAreUnsupported) {
  const auto r = server_->request("/v1/chat/completions", R"({"messages": [
      {"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "sunny"}], "max_tokens": 1})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("messages[1] is a tool call or tool result: tools (function calling) are not supported"),
            std::string::npos)
      << r.body;
  const auto n2 = server_->request("/v1/completions", R"({"prompt": "Hi", "n": 2})");
  EXPECT_EQ(n2.status, 400);
  EXPECT_NE(n2.body.find("'n' must be 1"), std::string::npos);
}

TEST_F(WebApi, CorsAllowsOnlyTheListedOrigins) {
  const auto allowed = server_->request("/v1/models", "", {"-H", "Origin: http://app.example"});
  EXPECT_NE(allowed.headers.find("Access-Control-Allow-Origin: http://app.example"), std::string::npos) << allowed.headers;
  const auto other = server_->request("/v1/models", "", {"-H", "Origin: http://elsewhere.example"});
  EXPECT_EQ(other.headers.find("Access-Control-Allow-Origin"), std::string::npos) << other.headers;
  const auto preflight = server_->request("/v1/chat/completions", "",
                                          {"-X", "OPTIONS", "-H", "Origin: http://app.example", "-H",
                                           "Access-Control-Request-Method: POST", "-H",
                                           "Access-Control-Request-Headers: content-type, authorization"});
  EXPECT_EQ(preflight.status, 204);
  EXPECT_NE(preflight.headers.find("Access-Control-Allow-Methods: GET, POST, OPTIONS"), std::string::npos);
  EXPECT_NE(preflight.headers.find("Access-Control-Allow-Headers: content-type, authorization"), std::string::npos);
  EXPECT_NE(preflight.headers.find("Access-Control-Allow-Origin: http://app.example"), std::string::npos);
  // The streamed answer carries it too.
  const auto streamed = server_->request("/v1/completions", R"({"prompt": "Hi", "max_tokens": 2, "stream": true})",
                                         {"-H", "Origin: http://app.example"});
  EXPECT_NE(streamed.headers.find("Access-Control-Allow-Origin: http://app.example"), std::string::npos);
}

TEST_F(WebApi, PageAndStatusAreServed) {
  const auto page = server_->request("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.headers.find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("<title>troupe</title>"), std::string::npos);
  for (const char* external : {"src=\"http", "href=\"http", "@import", "fetch(\"http"})  // works offline
    EXPECT_EQ(page.body.find(external), std::string::npos) << external;
  const auto status = json::parse(server_->request("/v1/status").body);
  EXPECT_EQ(status["model"], "stories");
  ASSERT_EQ(status["stages"].size(), 1u);
  EXPECT_EQ(status["stages"][0]["layers"], "all 5 layers");
  EXPECT_GT(status["process_rss_bytes"].get<uint64_t>(), 0u);
}

TEST(WebPageWithKey, PageIsOpenButStatusAndPreflightFollowTheKey) {
  Server keyed({"--model", test::model_path("stories260K/stories260K.gguf"), "--api-key", "s3cret", "--cors-origin",
                "http://app.example"});
  EXPECT_EQ(keyed.request("/").status, 200);  // the page holds no data; it asks for the key on a 401
  EXPECT_EQ(keyed.request("/v1/status").status, 401);
  EXPECT_EQ(keyed.request("/v1/status", "", {"-H", "Authorization: Bearer s3cret"}).status, 200);
  // A browser's preflight carries no credentials: refusing it would block the keyed request after it.
  const auto preflight = keyed.request("/v1/chat/completions", "",
                                       {"-X", "OPTIONS", "-H", "Origin: http://app.example", "-H",
                                        "Access-Control-Request-Method: POST"});
  EXPECT_EQ(preflight.status, 204);
}

TEST_F(WebApi, ASecondServeOnATakenPortRefusesToStart) {
  test::TempDir dir;
  const auto r = test::run_command({test::bin_path("troupe"), "serve", "--model",
                                    test::model_path("stories260K/stories260K.gguf"), "--port",
                                    std::to_string(server_->port)},
                                   60);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot listen on 127.0.0.1:" + std::to_string(server_->port) + ": the port is taken"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(server_->request("/health").status, 200);  // the first one still answers
}

TEST_F(WebApi, OfficialOpenAiSdkSeesEveryFieldInItsShape) {
  const std::string missing = node_missing("openai");
  if (!missing.empty()) GTEST_SKIP() << missing;
  const auto ref = test::load_reference("stories260K.once-upon-a-time");
  const auto tokens = reference_sequence(ref, 20);
  std::string list;
  for (int32_t t : tokens) list += (list.empty() ? "" : ",") + std::to_string(t);
  const auto r = test::run_command({node_binary(), kWebDir + "/sdk_check.mjs", server_->url("/v1"), "stories", list}, 120);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const auto out = json::parse(r.out);
  const auto& logprobs = out["echo"]["token_logprobs"];
  ASSERT_EQ(logprobs.size(), tokens.size());
  const size_t p = ref.prompt_tokens.size();
  for (size_t i = 0; i < 20; ++i)
    EXPECT_NEAR(logprobs[p + i].get<double>(), ref.steps[i].top5[0].second - ref.steps[i].logsumexp,
                logprob_tolerance(ref.steps[i].top5[0].second))
        << p + i;
  EXPECT_EQ(out["two_prompts"][0], out["two_prompts"][1]);  // the same prompt as ids and as text
}

// The page in headless Chromium, on a slower model (GPT-2 width, random weights, ~10 ms a
// token) so that an answer lasts long enough to be stopped.
TEST(WebPage, ChromiumChatsStreamsStopsKeepsHistoryAndShowsTheCluster) {
  const std::string missing = node_missing("playwright-core");
  if (!missing.empty()) GTEST_SKIP() << missing;
  if (!exists("/usr/bin/chromium")) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs it)";
  test::TempDir dir;
  const auto synth = test::run_command({test::bin_path("troupe"), "synth", "--shape", "gpt2", "--layers", "2", "--type",
                                        "f16", "--vocab-from", test::model_path("gpt2-tiny/gpt2-tiny.gguf"), "--out",
                                        dir.file("slow.gguf")});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  Server server({"--model", dir.file("slow.gguf")});
  const std::string shots = std::string(TROUPE_BIN_DIR) + "/../tests";
  const auto r = test::run_command(
      {node_binary(), kWebDir + "/browser_check.mjs", server.url("/"), shots, dir.file("chromium-profile")}, 240);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out << server.process->log();
  const auto out = json::parse(r.out);
  // The streamed answer is what the API gives for the same conversation, greedy.
  const auto api = server.request("/v1/chat/completions",
                                  R"({"messages": [{"role": "user", "content": "Tell me a story about a cat."}], "max_tokens": 40, "temperature": 0})");
  ASSERT_EQ(api.status, 200) << api.body;
  const std::string expected = json::parse(api.body)["choices"][0]["message"]["content"];
  EXPECT_FALSE(expected.empty());
  EXPECT_EQ(out["answer"], expected);
  EXPECT_GT(out["distinct_lengths"].get<int>(), 3) << "the answer appeared at once, not streamed";
  EXPECT_NE(out["meta"].get<std::string>().find("tokens/s"), std::string::npos) << out["meta"];
  // Reloaded, the conversation is still there (localStorage).
  ASSERT_GE(out["after_reload"].size(), 2u);
  EXPECT_EQ(out["after_reload"][0], "Tell me a story about a cat.");
  EXPECT_EQ(out["stopped_meta"], "stopped");
  ASSERT_EQ(out["stage_rows"].size(), 1u);
  EXPECT_EQ(out["stage_rows"][0][1], "this process");
  EXPECT_EQ(out["stage_rows"][0][2], "all 2 layers");
  EXPECT_TRUE(out["console_errors"].empty()) << out["console_errors"].dump();
  std::cout << "screenshots: " << shots << "/chat.png, " << shots << "/cluster.png\n";
}

}  // namespace
}  // namespace troupe
