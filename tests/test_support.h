#pragma once
// Shared helpers for tests: where the real model files and our binaries are, and the
// reference outputs in ../shared/models/expected.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace troupe::test {

std::string models_dir();                 // ../shared/models
std::string model_path(const std::string& relative);  // models_dir() + "/" + relative
std::string bin_path(const std::string& name);        // build/bin/<name>
// A gtest parameter name from any text ("stories260K/hf" -> "stories260K_hf").
std::string param_name(std::string text);

struct ReferenceStep {
  int32_t token;
  std::vector<std::pair<int32_t, float>> top5;
  double logsumexp;
};
struct Reference {
  std::string prompt;
  std::vector<int32_t> prompt_tokens;
  std::vector<ReferenceStep> steps;
  std::string text;
};
Reference load_reference(const std::string& name);  // e.g. "stories260K.once-upon-a-time"
// log(sum(exp(logits))), computed in double as the references' `logsumexp` is.
double logsumexp(const float* logits, size_t n);
inline double logsumexp(const std::vector<float>& logits) { return logsumexp(logits.data(), logits.size()); }

// llama.cpp's perplexity of a model file on the GPL-3 text (--ctx 128), as the table in
// ../shared/models/README.md gives it; `file` is the name in its first column
// ("stories260K-q8_0.gguf"). Throws when the README has no row for it.
double reference_perplexity(const std::string& file);

// Runs a program to completion (killed after `timeout_seconds`) and captures its output.
struct CommandResult {
  int exit_code = -1;  // -1 when killed by the timeout or a signal
  std::string out, err;
};
CommandResult run_command(const std::vector<std::string>& argv, int timeout_seconds = 120);

// One HTTP request by curl to a server this test started: a POST of `json_body` when it is not
// empty, else a GET; `curl_args` go before the URL (e.g. {"-D", file} to keep the headers).
// The body is read as it streams (SSE), for at most `max_seconds`.
struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
};
HttpReply http_request(const std::string& url, const std::string& json_body = "", double max_seconds = 60,
                       const std::vector<std::string>& curl_args = {});

// A long-running child process (a server) that dies with the test process, is stopped
// by the destructor (SIGTERM, then SIGKILL after a grace period) even when a test fails,
// and writes its stderr to a log the test can show.
class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // SIGTERM, then SIGKILL after `grace_ms`; returns the wait status, -1 if not running.
  int stop(int grace_ms = 5000);
  bool running();
  int pid() const { return pid_; }
  std::string log() const;
  // Waits until `path` holds a positive number (a port the server writes once it listens).
  int wait_for_port_file(const std::string& path, int timeout_ms = 20000);

 private:
  int pid_ = -1;
  std::string log_path_;
};

// A fresh temporary directory, removed (with its contents) when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `condition` (every 20 ms) until it holds or `deadline` has passed; returns whether
// it held. The one wait loop of the tests: correctness never depends on how fast.
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Writes the first `n` bytes of `from` to `to` (a truncated copy).
void copy_prefix(const std::string& from, const std::string& to, size_t n);
size_t file_size(const std::string& path);
// Peak resident set size (VmHWM) of a running process, in bytes (0 if it is gone).
size_t peak_rss_of(int pid);

}  // namespace troupe::test
