#pragma once
// Wi-Fi-like links for tests, made by the test and removed after it (also when it fails):
//  - Laptops: "laptops" in network namespaces of their own, each joined to the test's
//    namespace by a veth pair with a bandwidth cap (tbf, both ways) and random packet loss
//    (nftables numgen, both ways), and a link that can be taken down and up (an outage).
//    Nothing is routed beyond the pairs: a laptop reaches only the test's side of its pair.
//  - DelayRelay: a TCP relay with delay and jitter (this kernel has no netem), listening on the
//    test's side of a laptop's pair and forwarding to the node inside it. Everyone (the client
//    and the other nodes) reaches the node at the relay's address, so every byte into or out
//    of that node is delayed, capped and thinned on its own link.
// Header-only: tests/CMakeLists.txt builds test_*.cpp with test_support.cpp only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_support.h"

namespace troupe::test {

// The full path of a system tool (run_command execs without a PATH search); "" if missing.
inline std::string system_tool(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"})
    if (::access((std::string(dir) + name).c_str(), X_OK) == 0) return dir + name;
  return {};
}

// Runs a network command; throws naming it and what it printed when it fails.
inline std::string run_net(const std::vector<std::string>& argv) {
  const CommandResult r = run_command(argv, 20);
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw std::runtime_error("`" + cmd + "` failed (exit " + std::to_string(r.exit_code) + "): " + r.err);
  }
  return r.out;
}

struct LinkShape {
  int rate_mbit = 30;     // each way
  int loss_percent = 1;   // of the packets each way (so about 2 % of a round trip's)
};

class Laptops {
 public:
  // Why namespaces cannot be made here ("" when they can): tried with a throwaway one.
  static std::string unavailable_reason() {
    for (const char* tool : {"ip", "tc", "nft"})
      if (system_tool(tool).empty()) return std::string("`") + tool + "` is not installed (iproute2, nftables)";
    const std::string probe = "troupe-wl-" + std::to_string(::getpid()) + "-probe";
    const CommandResult r = run_command({system_tool("ip"), "netns", "add", probe}, 20);
    if (r.exit_code != 0) return "cannot create a network namespace (needs root or CAP_NET_ADMIN): " + r.err;
    run_command({system_tool("ip"), "netns", "del", probe}, 20);
    return {};
  }

  // Namespaces and links left by runs that died (their process is gone): removed first.
  static void remove_stale() {
    const std::string ip = system_tool("ip");
    std::istringstream netns(run_command({ip, "netns", "list"}, 20).out);
    for (std::string line; std::getline(netns, line);) {
      const std::string name = line.substr(0, line.find(' '));
      if (name.rfind("troupe-wl-", 0) == 0 && !alive(pid_in(name.substr(10))))
        run_command({ip, "netns", "del", name}, 20);
    }
    std::istringstream links(run_command({ip, "-o", "link", "show"}, 20).out);
    for (std::string line; std::getline(links, line);) {
      // "12: twl4242h0@if11: <...>"
      const auto start = line.find(": ");
      if (start == std::string::npos) continue;
      std::string name = line.substr(start + 2, line.find_first_of("@:", start + 2) - start - 2);
      if (name.rfind("twl", 0) == 0 && !alive(pid_in(name.substr(3)))) run_command({ip, "link", "del", name}, 20);
    }
  }

  // `n` laptops, each in namespace troupe-wl-<pid>-<i> behind veth twl<pid>h<i> (this side,
  // 10.213.<s+i>.1/24) and twl<pid>n<i> (its side, 10.213.<s+i>.2/24), shaped by `shape`.
  Laptops(size_t n, LinkShape shape) : n_(n), ip_(system_tool("ip")), tc_(system_tool("tc")) {
    remove_stale();
    subnet_ = free_subnets(n);
    try {
      for (size_t i = 0; i < n; ++i) {
        const std::string ns = this->ns(i), h = host_link(i), l = laptop_link(i);
        run_net({ip_, "netns", "add", ns});
        made_.push_back(i);
        run_net({ip_, "link", "add", h, "type", "veth", "peer", "name", l, "netns", ns});
        run_net({ip_, "addr", "add", host_addr(i) + "/24", "dev", h});
        run_net({ip_, "link", "set", h, "up"});
        run_net({ip_, "-n", ns, "addr", "add", laptop_addr(i) + "/24", "dev", l});
        run_net({ip_, "-n", ns, "link", "set", l, "up"});
        run_net({ip_, "-n", ns, "link", "set", "lo", "up"});
        // Bandwidth, both ways: this side's egress is the laptop's download.
        const std::string rate = std::to_string(shape.rate_mbit) + "mbit";
        run_net({tc_, "qdisc", "add", "dev", h, "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "200ms"});
        run_net(in_laptop(i, {tc_, "qdisc", "add", "dev", l, "root", "tbf", "rate", rate, "burst", "32kbit", "latency",
                              "200ms"}));
        // Loss, both ways, on the laptop's side only (nothing changes in the test's namespace).
        const std::string nft = system_tool("nft"), loss = std::to_string(shape.loss_percent);
        run_net(in_laptop(i, {nft, "add table inet troupe_wifi"}));
        run_net(in_laptop(i, {nft, "add chain inet troupe_wifi in { type filter hook input priority 0; }"}));
        run_net(in_laptop(i, {nft, "add chain inet troupe_wifi out { type filter hook output priority 0; }"}));
        run_net(in_laptop(i, {nft, "add rule inet troupe_wifi in iifname " + l + " numgen random mod 100 < " + loss +
                                     " drop"}));
        run_net(in_laptop(i, {nft, "add rule inet troupe_wifi out oifname " + l + " numgen random mod 100 < " + loss +
                                     " drop"}));
      }
      // Laptop i reaches the relays of the others (addresses of this namespace, so delivered
      // here, never forwarded) over its own link; nothing else.
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < n; ++j)
          if (j != i) run_net({ip_, "-n", ns(i), "route", "add", host_addr(j) + "/32", "via", host_addr(i)});
    } catch (...) {
      remove();
      throw;
    }
  }
  ~Laptops() { remove(); }
  Laptops(const Laptops&) = delete;
  Laptops& operator=(const Laptops&) = delete;

  size_t size() const { return n_; }
  std::string ns(size_t i) const { return "troupe-wl-" + std::to_string(::getpid()) + "-" + std::to_string(i); }
  std::string host_link(size_t i) const { return "twl" + std::to_string(::getpid()) + "h" + std::to_string(i); }
  std::string laptop_link(size_t i) const { return "twl" + std::to_string(::getpid()) + "n" + std::to_string(i); }
  // The test's side of laptop i's link (where its relay listens) and the laptop's own address.
  std::string host_addr(size_t i) const { return "10.213." + std::to_string(subnet_ + i) + ".1"; }
  std::string laptop_addr(size_t i) const { return "10.213." + std::to_string(subnet_ + i) + ".2"; }

  // `argv` run inside laptop i's namespace (same pid: `ip netns exec` does not fork).
  std::vector<std::string> in_laptop(size_t i, std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {ip_, "netns", "exec", ns(i)});
    return argv;
  }

  // Takes laptop i's link down (an outage: no packet either way) or up again. Connections
  // survive it; TCP retransmits once it is back.
  void set_link(size_t i, bool up) { run_net({ip_, "link", "set", host_link(i), up ? "up" : "down"}); }

 private:
  static int pid_in(const std::string& s) {
    try {
      return std::stoi(s);
    } catch (const std::exception&) {
      return 0;
    }
  }
  static bool alive(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

  // The first s with 10.213.s.0/24 .. 10.213.(s+n-1).0/24 unused here (several runs at once).
  size_t free_subnets(size_t n) const {
    const std::string used = run_command({ip_, "-4", "-o", "addr", "show"}, 20).out;
    for (size_t s = (static_cast<size_t>(::getpid()) % 60) * 4;; s = (s + 4) % 240) {
      bool taken = false;
      for (size_t i = 0; i < n; ++i) taken = taken || used.find(" 10.213." + std::to_string(s + i) + ".") != std::string::npos;
      if (!taken) return s;
    }
  }

  void remove() {
    for (size_t i : made_) {
      run_command({ip_, "link", "del", host_link(i)}, 20);  // both ends of the pair
      run_command({ip_, "netns", "del", ns(i)}, 20);
    }
    made_.clear();
  }

  size_t n_;
  std::string ip_, tc_;
  size_t subnet_ = 0;
  std::vector<size_t> made_;
};

// One-way delay of a relay, each way: the round trip through it is twice that.
struct LinkDelay {
  std::chrono::microseconds one_way{0};
  std::chrono::microseconds jitter{0};  // each chunk: one_way +- up to this, uniformly (never reordered)
};

class DelayRelay {
 public:
  // Listens on listen_addr (any free port) and forwards every connection to target:port.
  DelayRelay(const std::string& listen_addr, const std::string& target, uint16_t target_port, LinkDelay delay)
      : listen_addr_(listen_addr), target_(target), target_port_(target_port) {
    set_delay(delay);
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = address(listen_addr, 0);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 64) != 0) {
      const std::string why = std::strerror(errno);
      ::close(listen_fd_);
      throw std::runtime_error("relay: cannot listen on " + listen_addr + ": " + why);
    }
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~DelayRelay() {
    stopping_ = true;
    acceptor_.join();
    ::close(listen_fd_);
    std::list<std::shared_ptr<Connection>> connections;
    {
      std::lock_guard<std::mutex> lock(mu_);
      connections = connections_;
    }
    for (auto& c : connections) c->abort();
    for (auto& c : connections)
      for (auto& t : c->pumps) t.join();
  }
  DelayRelay(const DelayRelay&) = delete;
  DelayRelay& operator=(const DelayRelay&) = delete;

  uint16_t port() const { return port_; }
  std::string endpoint() const { return listen_addr_ + ":" + std::to_string(port_); }
  // Applies to every chunk read from now on (a bench changes the link between runs).
  void set_delay(LinkDelay d) {
    one_way_us_ = d.one_way.count();
    jitter_us_ = std::min(d.jitter.count(), d.one_way.count());
  }
  size_t connections() const {
    std::lock_guard<std::mutex> lock(mu_);
    return connections_.size();
  }

 private:
  using Clock = std::chrono::steady_clock;

  // Both directions of one relayed connection; the direction that ends last closes both sockets.
  struct Connection {
    int fd[2];  // [0] the side that connected to the relay, [1] the node
    std::mutex mu;
    bool closed = false;
    int running = 2;
    std::vector<std::thread> pumps;
    void abort() {
      std::lock_guard<std::mutex> lock(mu);
      if (closed) return;
      ::shutdown(fd[0], SHUT_RDWR);
      ::shutdown(fd[1], SHUT_RDWR);
    }
    void finished() {
      std::lock_guard<std::mutex> lock(mu);
      if (--running > 0) return;
      ::close(fd[0]);
      ::close(fd[1]);
      closed = true;
    }
  };

  static sockaddr_in address(const std::string& host, uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) throw std::runtime_error("relay: not an IPv4 address: " + host);
    return a;
  }

  // A connection to the node, or -1 (it is unreachable: an outage, or it is gone).
  int connect_target() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a = address(target_, target_port_);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
      ::close(fd);
      return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, 5000) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      ::close(fd);
      return -1;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
  }

  void accept_loop() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;
      const int in = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (in < 0) continue;
      const int out = connect_target();
      if (out < 0) {
        ::close(in);
        continue;
      }
      const int one = 1;
      ::setsockopt(in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_shared<Connection>();
      c->fd[0] = in;
      c->fd[1] = out;
      const uint32_t seed = static_cast<uint32_t>(port_) * 7919u + static_cast<uint32_t>(count_++);
      c->pumps.emplace_back([this, c, seed] { pump(*c, 0, 1, seed); });
      c->pumps.emplace_back([this, c, seed] { pump(*c, 1, 0, seed + 1); });
      std::lock_guard<std::mutex> lock(mu_);
      connections_.push_back(c);
    }
  }

  // Copies fd[from] to fd[to], each chunk released one_way +- jitter after it was read, in
  // order. The end of the stream is passed on (shutdown) once everything before it is out;
  // an error on either side ends both directions (the other side then sees the connection end).
  void pump(Connection& c, int from, int to, uint32_t seed) {
    struct Chunk {
      Clock::time_point release;
      std::string bytes;
    };
    std::deque<Chunk> queue;
    std::mt19937 rng(seed);
    Clock::time_point last_release{};
    bool eof = false, failed = false;
    char buf[65536];
    while (!failed && !stopping_) {
      const auto now = Clock::now();
      int timeout_ms = 100;
      if (!queue.empty())
        timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(queue.front().release - now).count() + 1));
      pollfd p{eof ? -1 : c.fd[from], POLLIN, 0};
      if (::poll(&p, 1, std::min(timeout_ms, 100)) == 1) {
        const ssize_t n = ::recv(c.fd[from], buf, sizeof buf, 0);
        if (n > 0) {
          const int64_t j = jitter_us_.load();
          std::uniform_int_distribution<int64_t> spread(-j, j);
          const auto release =
            std::max(last_release, Clock::now() + std::chrono::microseconds(one_way_us_.load() + spread(rng)));
          last_release = release;
          queue.push_back({release, std::string(buf, static_cast<size_t>(n))});
        } else if (n == 0) {
          eof = true;
        } else if (errno != EINTR && errno != EAGAIN) {
          failed = true;
        }
      }
      while (!failed && !queue.empty() && queue.front().release <= Clock::now()) {
        const std::string& b = queue.front().bytes;
        for (size_t sent = 0; sent < b.size();) {
          const ssize_t n = ::send(c.fd[to], b.data() + sent, b.size() - sent, MSG_NOSIGNAL);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            failed = true;
            break;
          }
          sent += static_cast<size_t>(n);
        }
        queue.pop_front();
      }
      if (eof && queue.empty()) {
        ::shutdown(c.fd[to], SHUT_WR);
        break;
      }
    }
    if (failed || stopping_) c.abort();
    c.finished();
  }

  std::string listen_addr_, target_;
  uint16_t target_port_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int64_t> one_way_us_{0}, jitter_us_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> count_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::list<std::shared_ptr<Connection>> connections_;
};

}  // namespace troupe::test
