#pragma once
// Keeps slow or greedy HTTP clients from starving the server. cpp-httplib (0.11) reads each
// connection on a pool thread with only a per-read timeout, so 30 clients sending one header
// line every few seconds hold every thread for as long as they like. This task queue gives
// each connection its own thread, refuses connections past a limit with a 503, and closes a
// connection whose headers (or body) have not arrived within a deadline.
//
// httplib hands the queue a closure, not the socket; the guard finds the socket just accepted
// (the listener thread accepts, then enqueues) among the process's descriptors: the one
// connected socket on the server's port it has not seen before. It keeps a duplicate
// descriptor, so a deadline can shut the socket down without racing httplib's close.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace troupe {

struct ConnectionLimits {
  int max_connections = 64;
  std::chrono::milliseconds header_timeout{10000};  // from accept (or the previous response) to the last header
  std::chrono::milliseconds body_timeout{30000};    // from the last header to the last body byte
};

class ConnectionGuard : public httplib::TaskQueue {
 public:
  ConnectionGuard(ConnectionLimits limits, int port);
  ~ConnectionGuard() override;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;  // waits for every connection thread

  // Called on a connection's thread by the server's hooks.
  static void headers_received();   // start of the body deadline
  static void request_started();    // the handler runs: no deadline while generating
  static void response_sent();      // a keep-alive connection waits for its next headers

  int open_connections() const;
  uint64_t refused() const { return refused_; }
  uint64_t timed_out() const { return timed_out_; }

 private:
  struct Connection;
  std::shared_ptr<Connection> adopt_accepted_socket();
  void release(const std::shared_ptr<Connection>& c);
  using Clock = std::chrono::steady_clock;
  static void set_deadline(Clock::time_point at, const char* waiting_for);
  void watchdog();

  ConnectionLimits limits_;
  int port_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<uint64_t, std::shared_ptr<Connection>> by_inode_;  // open sockets the guard knows
  int threads_ = 0;
  bool stopping_ = false;
  std::atomic<uint64_t> refused_{0}, timed_out_{0};
  std::thread watchdog_;
};

}  // namespace troupe
