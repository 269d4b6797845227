#pragma once
// Real caf-node daemons for tests, on 127.0.0.1 with ports they pick themselves.
// Each is a test::ChildProcess: it dies with the test process (PR_SET_PDEATHSIG), is
// stopped by the destructor (SIGTERM, then SIGKILL after a grace period) even when a test
// fails, and logs to a file the test can show.
// Header-only: tests/CMakeLists.txt builds test_*.cpp with test_support.cpp only.
#include <dirent.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/test_support.h"

namespace troupe::test {

class NodeProcess {
 public:
  // Starts `bin_path("caf-node")`; wait_ready() waits until it listens (several nodes can
  // start at once: construct them all, then wait for each). `port` 0: any free port (a node
  // restarted in place of a dead one passes the dead one's port). `name` names it in errors.
  NodeProcess(const std::string& models_dir, int threads, const std::string& name, uint16_t port = 0,
              const std::vector<std::string>& extra_args = {})
      : name_(name), child_(node_argv(models_dir, threads, port, dir_.file("port"), extra_args)) {}
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  // Waits (at most `ready_within`) until the node listens; throws with its log otherwise.
  // (Generous: a daemon loads LibTorch and measures its speed, which takes long on a loaded machine.)
  void wait_ready(std::chrono::milliseconds ready_within = std::chrono::seconds(90)) {
    if (port_ != 0) return;
    try {
      const int ready_ms = static_cast<int>(ready_within.count());
      port_ = static_cast<uint16_t>(child_.wait_for_port_file(dir_.file("port"), ready_ms));
    } catch (const std::runtime_error& e) {
      child_.stop();
      throw std::runtime_error("caf-node " + name_ + ": " + e.what());
    }
  }

  // SIGTERM, then SIGKILL if it has not exited within `grace`. Returns the exit status
  // (as waitpid reports it), or -1 if it was not running.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5)) {
    return child_.stop(static_cast<int>(grace.count()));
  }

  pid_t pid() const { return child_.pid(); }
  uint16_t port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return child_.log(); }

 private:
  static std::vector<std::string> node_argv(const std::string& models_dir, int threads, uint16_t port,
                                            const std::string& port_file, const std::vector<std::string>& extra_args) {
    std::vector<std::string> argv = {bin_path("caf-node"), "--port",    std::to_string(port),    "--listen",
                                     "127.0.0.1",          "--models",  models_dir,              "--threads",
                                     std::to_string(threads), "--port-file", port_file};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    return argv;
  }

  TempDir dir_;  // holds the port file; declared first, so removed after the process stopped
  std::string name_;
  ChildProcess child_;
  uint16_t port_ = 0;
};

using NodeProcesses = std::vector<std::unique_ptr<NodeProcess>>;

// Nodes <prefix>0, <prefix>1, ..., node i with extra_args[i] (their count is extra_args.size()).
// All are started, then each is waited for: every node measures its speed when it starts,
// so starting them together saves seconds.
inline NodeProcesses start_nodes(const std::string& models_dir, int threads, const std::string& prefix,
                                 const std::vector<std::vector<std::string>>& extra_args) {
  NodeProcesses nodes;
  for (size_t i = 0; i < extra_args.size(); ++i)
    nodes.push_back(std::make_unique<NodeProcess>(models_dir, threads, prefix + std::to_string(i), 0, extra_args[i]));
  for (auto& n : nodes) n->wait_ready();
  return nodes;
}

inline NodeProcesses start_nodes(const std::string& models_dir, int threads, const std::string& prefix, size_t n) {
  return start_nodes(models_dir, threads, prefix, std::vector<std::vector<std::string>>(n));
}

inline std::vector<std::string> endpoints(const NodeProcesses& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes) out.push_back(n->endpoint());
  return out;
}

// "127.0.0.1:p0,127.0.0.1:p1,...", as --nodes takes it.
inline std::string node_list(const NodeProcesses& nodes) {
  std::string list;
  for (const auto& n : nodes) list += (list.empty() ? "" : ",") + n->endpoint();
  return list;
}

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
