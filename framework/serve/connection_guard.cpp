#include "framework/serve/connection_guard.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace troupe {

struct ConnectionGuard::Connection {
  ConnectionGuard* guard = nullptr;
  uint64_t inode = 0;
  int fd = -1;  // our duplicate of httplib's descriptor; -1 if the socket was not found
  Clock::time_point deadline = Clock::time_point::max();
  const char* waiting_for = "headers";
  bool expired = false;
};

namespace {

thread_local std::shared_ptr<void> t_connection;  // the Connection this thread serves

int local_port(int fd) {
  sockaddr_storage a{};
  socklen_t n = sizeof(a);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n) != 0) return -1;
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
  return -1;
}

bool connected(int fd) {
  sockaddr_storage a{};
  socklen_t n = sizeof(a);
  return ::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &n) == 0;
}

void write_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

ConnectionGuard::ConnectionGuard(ConnectionLimits limits, int port) : limits_(limits), port_(port) {
  watchdog_ = std::thread([this] { watchdog(); });
}

ConnectionGuard::~ConnectionGuard() { shutdown(); }

std::shared_ptr<ConnectionGuard::Connection> ConnectionGuard::adopt_accepted_socket() {
  auto c = std::make_shared<Connection>();
  c->guard = this;
  std::vector<std::pair<int, uint64_t>> fresh;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
      const int fd = std::atoi(e->d_name);
      if (e->d_name[0] == '.' || fd == own) continue;
      struct stat st {};
      if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
      if (by_inode_.count(st.st_ino) || local_port(fd) != port_ || !connected(fd)) continue;
      fresh.emplace_back(fd, st.st_ino);
    }
    ::closedir(d);
  }
  if (fresh.size() == 1) {
    c->inode = fresh[0].second;
    c->fd = ::fcntl(fresh[0].first, F_DUPFD_CLOEXEC, 0);
    if (c->fd >= 0) by_inode_[c->inode] = c;
  } else {
    spdlog::warn("http: {} unknown sockets on port {}; this connection has no deadline", fresh.size(), port_);
  }
  return c;
}

void ConnectionGuard::enqueue(std::function<void()> fn) {
  std::shared_ptr<Connection> c;
  bool refuse = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    c = adopt_accepted_socket();
    c->deadline = Clock::now() + limits_.header_timeout;
    refuse = threads_ >= limits_.max_connections;
    ++threads_;
  }
  if (refuse && c->fd >= 0) {
    // httplib still runs `fn`, which finds the socket shut and closes it.
    ++refused_;
    const std::string body = "{\"error\":{\"message\":\"too many connections (limit " +
                             std::to_string(limits_.max_connections) +
                             "); retry later\",\"type\":\"rate_limit_error\",\"code\":503}}";
    write_all(c->fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    ::shutdown(c->fd, SHUT_RDWR);
  }
  auto run = [this, c, fn = std::move(fn)] {
    t_connection = c;
    fn();
    t_connection.reset();
    release(c);
  };
  try {
    std::thread(std::move(run)).detach();
  } catch (const std::system_error& e) {
    spdlog::warn("http: cannot start a connection thread ({}); serving it on the listener", e.what());
    run();
  }
}

void ConnectionGuard::release(const std::shared_ptr<Connection>& c) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (c->fd >= 0) {
    by_inode_.erase(c->inode);
    ::close(c->fd);
    c->fd = -1;
  }
  --threads_;
  changed_.notify_all();
}

void ConnectionGuard::set_deadline(Clock::time_point at, const char* waiting_for) {
  auto* c = static_cast<Connection*>(t_connection.get());
  if (!c) return;
  std::lock_guard<std::mutex> lock(c->guard->mutex_);
  c->deadline = at;
  c->waiting_for = waiting_for;
}

void ConnectionGuard::headers_received() {
  auto* c = static_cast<Connection*>(t_connection.get());
  if (c) set_deadline(Clock::now() + c->guard->limits_.body_timeout, "body");
}

void ConnectionGuard::request_started() { set_deadline(Clock::time_point::max(), "response"); }

void ConnectionGuard::response_sent() {
  auto* c = static_cast<Connection*>(t_connection.get());
  if (c) set_deadline(Clock::now() + c->guard->limits_.header_timeout, "headers");
}

int ConnectionGuard::open_connections() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return threads_;
}

void ConnectionGuard::watchdog() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    changed_.wait_for(lock, std::chrono::milliseconds(200));
    const auto now = Clock::now();
    for (auto& [inode, c] : by_inode_) {
      if (c->expired || c->deadline > now) continue;
      c->expired = true;
      ++timed_out_;
      spdlog::info("http: closing a connection that sent no complete {} in time", c->waiting_for);
      ::shutdown(c->fd, SHUT_RDWR);  // httplib's read returns, and it closes its descriptor
    }
  }
}

void ConnectionGuard::shutdown() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_ && !watchdog_.joinable()) return;
  for (auto& [inode, c] : by_inode_) ::shutdown(c->fd, SHUT_RDWR);
  changed_.wait(lock, [this] { return threads_ == 0; });
  stopping_ = true;
  changed_.notify_all();
  lock.unlock();
  if (watchdog_.joinable()) watchdog_.join();
}

}  // namespace troupe
