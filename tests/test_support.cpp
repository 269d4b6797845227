#include "tests/test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace troupe::test {

std::string models_dir() { return TROUPE_MODELS_DIR; }
std::string model_path(const std::string& relative) { return models_dir() + "/" + relative; }

std::string param_name(std::string text) {
  for (auto& c : text)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return text;
}
std::string bin_path(const std::string& name) { return std::string(TROUPE_BIN_DIR) + "/" + name; }

namespace {

// The references' "text" holds the raw bytes the model produced, which may be invalid
// UTF-8 (a byte-level token can end mid-character); a JSON parser rejects those. So the
// text is decoded here by hand, byte for byte, and blanked before parsing the rest.
std::string take_raw_text_field(std::string& json) {
  const std::string key = "\"text\": \"";
  const size_t start = json.find(key);
  if (start == std::string::npos) throw std::runtime_error("reference without a text field");
  std::string out;
  size_t i = start + key.size();
  for (; i < json.size() && json[i] != '"'; ++i) {
    if (json[i] != '\\') {
      out += json[i];
      continue;
    }
    const char e = json[++i];
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        uint32_t cp = std::stoul(json.substr(i + 1, 4), nullptr, 16);
        i += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && json.compare(i + 1, 2, "\\u") == 0) {
          const uint32_t lo = std::stoul(json.substr(i + 3, 4), nullptr, 16);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xC0 | (cp >> 6));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
          out += static_cast<char>(0xE0 | (cp >> 12));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          out += static_cast<char>(0xF0 | (cp >> 18));
          out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        break;
      }
      default: out += e;  // \" \\ \/
    }
  }
  json.erase(start + key.size(), i - start - key.size());
  return out;
}

}  // namespace

double logsumexp(const float* logits, size_t n) {
  double m = -INFINITY;
  for (size_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(logits[i]));
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(logits[i] - m);
  return m + std::log(s);
}

Reference load_reference(const std::string& name) {
  const std::string path = models_dir() + "/expected/" + name + ".json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open reference " + path);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string text = take_raw_text_field(raw);
  const auto j = nlohmann::json::parse(raw);
  Reference ref;
  ref.prompt = j.at("prompt").get<std::string>();
  ref.prompt_tokens = j.at("prompt_tokens").get<std::vector<int32_t>>();
  for (const auto& s : j.at("steps")) {
    ReferenceStep step;
    step.token = s.at("token").get<int32_t>();
    for (const auto& p : s.at("top5")) step.top5.emplace_back(p.at(0).get<int32_t>(), p.at(1).get<float>());
    step.logsumexp = s.at("logsumexp").get<double>();
    ref.steps.push_back(std::move(step));
  }
  ref.text = text;
  return ref;
}

double reference_perplexity(const std::string& file) {
  std::ifstream in(models_dir() + "/README.md");
  const std::string row_start = "| " + file + " | ";
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(row_start, 0) == 0) return std::stod(line.substr(row_start.size()));
  throw std::runtime_error(models_dir() + "/README.md has no perplexity row for " + file);
}

CommandResult run_command(const std::vector<std::string>& argv, int timeout_seconds) {
  TempDir dir;
  const std::string out_path = dir.file("stdout"), err_path = dir.file("stderr");
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "cannot exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  CommandResult r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

HttpReply http_request(const std::string& url, const std::string& json_body, double max_seconds,
                       const std::vector<std::string>& curl_args) {
  std::vector<std::string> argv{"/usr/bin/curl", "-s", "-N", "--max-time", std::to_string(max_seconds), "-w",
                                "\n%{http_code}"};
  if (!json_body.empty()) argv.insert(argv.end(), {"-H", "Content-Type: application/json", "-d", json_body});
  argv.insert(argv.end(), curl_args.begin(), curl_args.end());
  argv.push_back(url);
  const CommandResult r = run_command(argv, static_cast<int>(max_seconds) + 10);
  HttpReply reply;
  const size_t nl = r.out.rfind('\n');  // the status line -w appends
  if (nl == std::string::npos) return reply;
  reply.status = std::atoi(r.out.c_str() + nl + 1);
  reply.body = r.out.substr(0, nl);
  return reply;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/troupe-test-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("cannot create a temporary directory");
  path_ = tmpl;
}

TempDir::~TempDir() {
  const std::string cmd = "rm -rf '" + path_ + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", path_.c_str());
}

void copy_prefix(const std::string& from, const std::string& to, size_t n) {
  std::ifstream in(from, std::ios::binary);
  std::string data(n, '\0');
  in.read(data.data(), static_cast<std::streamsize>(n));
  data.resize(static_cast<size_t>(in.gcount()));
  std::ofstream(to, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
}

size_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + path);
  return static_cast<size_t>(st.st_size);
}

ChildProcess::ChildProcess(std::vector<std::string> argv) {
  char log_template[] = "/tmp/troupe-child-XXXXXX";
  const int log_fd = ::mkstemp(log_template);
  if (log_fd < 0) throw std::runtime_error("cannot create a log file");
  log_path_ = log_template;
  // Prepared before fork: between fork and exec only async-signal-safe calls.
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(&a[0]);
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test process
    if (::getppid() != parent) ::_exit(1);
    const int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
    ::dup2(log_fd, 2);
    ::close_range(3, ~0U, 0);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(log_fd);
}

ChildProcess::~ChildProcess() {
  stop();
  std::remove(log_path_.c_str());
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int ChildProcess::stop(int grace_ms) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return status;
}

std::string ChildProcess::log() const {
  std::ifstream in(log_path_);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int ChildProcess::wait_for_port_file(const std::string& path, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(path);
    int port = 0;
    if (in >> port && port > 0) return port;
    if (!running()) throw std::runtime_error("process exited before listening; its log:\n" + log());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("process did not listen in time; its log:\n" + log());
}

size_t peak_rss_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return static_cast<size_t>(std::stoull(line.substr(6))) * 1024;
  return 0;
}

}  // namespace troupe::test
