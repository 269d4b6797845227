// `troupe serve` against hostile HTTP clients (all on 127.0.0.1): the API key, oversized
// bodies, admission before tokenizing, slow-header clients and the connection limit.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/test_support.h"

namespace troupe {
namespace {

using json = nlohmann::json;
const std::string kKey = "test-key-7f3a9c";

// One `troupe serve` on the local model (no nodes) with the given extra flags.
class Server {
 public:
  explicit Server(std::vector<std::string> extra) {
    std::ofstream(dir_.file("key")) << kKey << "\n";
    std::vector<std::string> argv = {test::bin_path("troupe"), "serve", "--model",
                                     test::model_path("stories260K/stories260K.gguf"), "--port", "0", "--port-file",
                                     dir_.file("port"), "--threads", "1", "--api-key-file", dir_.file("key")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<test::ChildProcess>(argv);
    port_ = process_->wait_for_port_file(dir_.file("port"));
  }
  int port() const { return port_; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::string log() const { return process_->log(); }

  // {status, body} of a curl request; `key` empty sends no Authorization header.
  std::pair<int, std::string> request(const std::string& path, const std::string& key,
                                      const std::string& body_file = "", std::vector<std::string> headers = {}) const {
    std::vector<std::string> args;
    if (!key.empty()) args.insert(args.end(), {"-H", "Authorization: Bearer " + key});
    for (const auto& h : headers) args.insert(args.end(), {"-H", h});
    if (!body_file.empty()) args.insert(args.end(), {"-H", "Content-Type: application/json", "--data-binary", "@" + body_file});
    const auto r = test::http_request(url(path), "", 30, args);
    return {r.status, r.body};
  }
  std::string body_file(const std::string& name, const std::string& body) const {
    std::ofstream(dir_.file(name), std::ios::binary) << body;
    return dir_.file(name);
  }

 private:
  test::TempDir dir_;
  std::unique_ptr<test::ChildProcess> process_;
  int port_ = 0;
};

// A raw TCP connection to 127.0.0.1:port.
class RawSocket {
 public:
  explicit RawSocket(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawSocket() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& s) { return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()); }
  // Everything until the peer closes (or 30 s of silence).
  std::string read_all() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  std::string read_some() {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  // Whether the server has closed its side (a read returns end of file or an error).
  // (Whatever it sent before closing, e.g. an error response, is read and dropped.)
  bool closed_by_peer() {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) continue;
      return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }
  }

 private:
  int fd_;
  bool connected_ = false;
};

TEST(ServeHardening, ListeningBeyondLoopbackWithoutAKeyIsRefused) {
  // 192.0.2.1 (TEST-NET-1) is never assigned here: if the check were missing, binding would fail
  // with a different message rather than open a port beyond this machine.
  const auto r = test::run_command({test::bin_path("troupe"), "serve", "--model",
                                    test::model_path("stories260K/stories260K.gguf"), "--listen", "192.0.2.1", "--port", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs --api-key KEY or --api-key-file FILE"), std::string::npos) << r.err;
}

TEST(ServeHardening, ApiKeyIsCheckedOnEveryRouteButHealth) {
  Server s({});
  EXPECT_EQ(s.request("/health", "").first, 200);
  const std::string completion = s.body_file("c.json", R"({"prompt":"Once upon a time","max_tokens":4})");
  for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
           {"/v1/models", ""}, {"/metrics", ""}, {"/v1/completions", completion}}) {
    SCOPED_TRACE(path);
    for (const std::string& key : {std::string(), std::string("wrong-key")}) {
      const auto [status, text] = s.request(path, key, body);
      EXPECT_EQ(status, 401);
      const auto err = json::parse(text)["error"];
      EXPECT_EQ(err["code"], "invalid_api_key") << text;
      EXPECT_EQ(err["type"], "invalid_request_error") << text;
      EXPECT_TRUE(err["message"].is_string()) << text;
    }
    EXPECT_EQ(s.request(path, kKey, body).first, 200);
  }
}

TEST(ServeHardening, OversizedBodyGets413NamingTheLimit) {
  Server s({"--max-body", "65536"});
  const std::string big = s.body_file("big.json", R"({"prompt":")" + std::string(100000, 'a') + R"("})");
  const auto [status, text] = s.request("/v1/completions", kKey, big);
  EXPECT_EQ(status, 413);
  EXPECT_NE(json::parse(text)["error"]["message"].get<std::string>().find("limit is 65536 bytes"), std::string::npos)
      << text;
  // A chunked body has no length to judge: it is refused (411) instead of read without a bound.
  const auto chunked = s.request("/v1/completions", kKey, big, {"Transfer-Encoding: chunked"});
  EXPECT_EQ(chunked.first, 411);
  EXPECT_NE(chunked.second.find("Content-Length of at most 65536 bytes"), std::string::npos) << chunked.second;
  // Without a key too: the size is judged from the headers, before anything else is read.
  EXPECT_EQ(s.request("/v1/completions", "", big).first, 413);
}

TEST(ServeHardening, BusyServerRefusesAPromptBeforeTokenizingIt) {
  // A prompt far longer than the context gets 400 once tokenized. While the only slot is
  // taken it must get 429 instead: admission comes before tokenizing.
  Server s({"--max-in-flight", "1", "--max-queue", "0"});
  std::string words;
  for (int i = 0; i < 20000; ++i) words += "story ";
  const std::string long_prompt = s.body_file("long.json", R"({"prompt":")" + words + R"(","max_tokens":1})");
  EXPECT_EQ(s.request("/v1/completions", kKey, long_prompt).first, 400);

  const std::string hold = R"({"prompt":"Once upon a time","max_tokens":500,"stream":true,"temperature":1.5,"seed":1})";
  bool saw_429 = false;
  for (int attempt = 0; attempt < 10 && !saw_429; ++attempt) {
    RawSocket a(s.port());  // takes the slot and streams; the test reads only its first bytes
    ASSERT_TRUE(a.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kKey +
                       "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(hold.size()) +
                       "\r\n\r\n" + hold));
    ASSERT_NE(a.read_some().find("200"), std::string::npos);  // the stream has started: the slot is taken
    const auto [status, text] = s.request("/v1/completions", kKey, long_prompt);
    if (status == 429) {
      saw_429 = true;
      EXPECT_NE(text.find("server busy"), std::string::npos) << text;
    } else {
      EXPECT_EQ(status, 400) << text;  // the held generation had already finished
    }
  }
  EXPECT_TRUE(saw_429) << "the long prompt was never refused while the slot was taken";
}

TEST(ServeHardening, SlowHeaderClientsDoNotStarveHealth) {
  // 30 clients send one header line every 3 s; the server closes each when its headers are not
  // complete after --header-timeout-ms, and answers /health meanwhile.
  Server s({"--header-timeout-ms", "4000"});
  constexpr int kSlow = 30;
  std::vector<std::unique_ptr<RawSocket>> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<RawSocket>(s.port()));
    ASSERT_TRUE(slow.back()->connected());
    ASSERT_TRUE(slow.back()->send("GET /health HTTP/1.1\r\nHost: x\r\n"));
  }
  std::atomic<bool> done{false};
  std::thread dribble([&] {
    for (int round = 0; round < 4 && !done; ++round) {
      std::this_thread::sleep_for(std::chrono::seconds(3));
      for (auto& c : slow) c->send("X-Slow-" + std::to_string(round) + ": 1\r\n");
    }
  });
  for (int i = 0; i < 3; ++i) {
    const auto [status, text] = s.request("/health", "");
    EXPECT_EQ(status, 200) << text;
    EXPECT_NE(text.find("ok"), std::string::npos);
  }
  dribble.join();
  done = true;
  int closed = 0;
  for (auto& c : slow) closed += c->closed_by_peer() ? 1 : 0;
  EXPECT_EQ(closed, kSlow) << "slow-header connections still open after the header deadline";
  const auto metrics = s.request("/metrics", kKey).second;
  EXPECT_NE(metrics.find("troupe_http_connections_timed_out_total"), std::string::npos) << metrics;
}

TEST(ServeHardening, ConnectionsPastTheLimitGet503) {
  Server s({"--max-connections", "8", "--header-timeout-ms", "60000"});
  std::vector<std::unique_ptr<RawSocket>> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(std::make_unique<RawSocket>(s.port()));
  RawSocket extra(s.port());
  ASSERT_TRUE(extra.connected());
  const std::string reply = extra.read_all();
  EXPECT_NE(reply.find("503"), std::string::npos) << reply;
  EXPECT_NE(reply.find("too many connections (limit 8)"), std::string::npos) << reply;
  idle.clear();
  int status = 0;  // the held connections end asynchronously
  EXPECT_TRUE(test::eventually([&] { return (status = s.request("/health", "").first) == 200; }, std::chrono::seconds(5)))
    << status;
}

}  // namespace
}  // namespace troupe
