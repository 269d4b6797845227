#pragma once
// Real caf-node daemons for tests, on 127.0.0.1 with ports they pick themselves.
// Each runs as a child process that dies with the test process (PR_SET_PDEATHSIG), is
// stopped by the destructor (SIGTERM, then SIGKILL after a grace period) even when a test
// fails, and logs to a file the test can show.
// Header-only: tests/CMakeLists.txt builds test_*.cpp with test_support.cpp only.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_support.h"

namespace troupe::test {

class NodeProcess {
 public:
  // Starts `bin_path("caf-node")`; wait_ready() waits until it listens (several nodes can
  // start at once: construct them all, then wait for each). `port` 0: any free port (a node
  // restarted in place of a dead one passes the dead one's port).
  NodeProcess(const std::string& models_dir, int threads, const std::string& name, uint16_t port = 0,
              const std::vector<std::string>& extra_args = {}) {
    char dir_template[] = "/tmp/troupe-node-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = dir_template;
    port_file_ = dir_ + "/port";
    log_file_ = dir_ + "/" + name + ".log";
    // Everything the child needs is prepared before fork: between fork and exec it calls
    // only async-signal-safe functions (the test process has other threads).
    const std::string bin = bin_path("caf-node");
    const std::string threads_str = std::to_string(threads);
    std::vector<std::string> args = {bin,       "--port",    std::to_string(port),       "--listen",   "127.0.0.1",
                                     "--models", models_dir, "--threads", threads_str, "--port-file",
                                     port_file_};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test process
      if (getppid() != parent) _exit(1);
      const int log_fd = open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int null_fd = open("/dev/null", O_RDWR);
      if (log_fd < 0 || null_fd < 0) _exit(1);
      dup2(null_fd, 0);
      dup2(null_fd, 1);
      dup2(log_fd, 2);
      close_range(3, ~0U, 0);  // no inherited sockets of the test process
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
  }

  // Waits (at most `ready_within`) until the node listens; throws with its log otherwise.
  void wait_ready(std::chrono::milliseconds ready_within = std::chrono::seconds(20)) {
    if (port_ != 0) return;
    const auto deadline = std::chrono::steady_clock::now() + ready_within;
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(port_file_);
      int port = 0;
      if (in >> port && port > 0) {
        port_ = static_cast<uint16_t>(port);
        return;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("caf-node exited before listening; its log:\n" + log());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    throw std::runtime_error("caf-node did not listen within the time allowed; its log:\n" + log());
  }

  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;
  ~NodeProcess() {
    stop();
    std::remove(port_file_.c_str());
    std::remove(log_file_.c_str());
    rmdir(dir_.c_str());
  }

  // SIGTERM, then SIGKILL if it has not exited within `grace`. Returns the exit status
  // (as waitpid reports it), or -1 if it was not running.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5)) {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    return status;
  }

  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const {
    std::ifstream in(log_file_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string dir_, port_file_, log_file_;
};

// An established TCP connection owned by a process (local and remote port, loopback only).
struct TcpConnection {
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
};

// The established TCP connections whose sockets process `pid` holds open.
inline std::vector<TcpConnection> established_connections(pid_t pid) {
  std::set<std::string> inodes;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = opendir(fd_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      char target[256] = {0};
      const std::string link = fd_dir + "/" + e->d_name;
      const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
      if (n <= 0) continue;
      const std::string t(target, static_cast<size_t>(n));
      if (t.rfind("socket:[", 0) == 0) inodes.insert(t.substr(8, t.size() - 9));
    }
    closedir(d);
  }
  std::vector<TcpConnection> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string slot, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> slot >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state != "01" || !inodes.count(inode)) continue;  // 01: ESTABLISHED
      auto port_of = [](const std::string& addr) {
        return static_cast<uint16_t>(std::stoul(addr.substr(addr.find(':') + 1), nullptr, 16));
      };
      out.push_back({port_of(local), port_of(remote)});
    }
  }
  return out;
}

// Whether processes `a` and `b` (listening on `a_port` and `b_port`) share a direct TCP
// connection, whichever of them opened it.
inline bool directly_connected(pid_t a, uint16_t a_port, pid_t b, uint16_t b_port) {
  for (const auto& c : established_connections(a))
    if (c.remote_port == b_port) return true;
  for (const auto& c : established_connections(b))
    if (c.remote_port == a_port) return true;
  return false;
}

}  // namespace troupe::test
