#include "models/quant/worker_pool.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace troupe {
namespace {

using Clock = std::chrono::steady_clock;

// How long a pool thread waits for the next loop before it sleeps: a decode step's loops are
// tens of microseconds apart (norms and attention run between them), tokens a few milliseconds
// at most in one process; an idle node or a stage waiting for its next hop sleeps soon.
constexpr auto kSpinTime = std::chrono::microseconds(1000);
// While spinning, a thread gives its core to anyone who wants it every this many checks.
constexpr int kChecksPerYield = 64;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Set while this thread runs chunks of a loop: a loop inside a chunk runs on this thread alone.
thread_local bool t_in_loop = false;

// state_: (sequence << 32) | pool threads inside the current loop. The sequence is odd while a
// loop is open. A thread joins by adding 1 only while the sequence it saw is still current, and
// the caller closes the loop (sequence + 1) only when none is inside, so no thread touches a loop
// that has returned. A thread that comes late finds the loop closed and waits for the next.
class WorkerPool {
 public:
  void run(int threads, int64_t chunks, const std::function<void(int64_t)>& f) {
    // Nested first: the caller of the outer loop holds run_mutex_, and a thread must not try to
    // lock a std::mutex it holds.
    if (t_in_loop) return run_alone(chunks, f);
    std::unique_lock<std::mutex> one_loop(run_mutex_, std::try_to_lock);
    if (!one_loop.owns_lock()) return run_alone(chunks, f);
    const int helpers = static_cast<int>(std::min<int64_t>(threads - 1, chunks - 1));
    helpers_.store(helpers, std::memory_order_relaxed);
    while (static_cast<int>(threads_.size()) < helpers) {
      const int index = static_cast<int>(threads_.size());
      threads_.emplace_back([this, index] { serve(index); });
      pthread_setname_np(threads_.back().native_handle(), "troupe-compute");
    }
    f_ = &f;
    chunks_ = chunks;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    const uint32_t sequence = static_cast<uint32_t>(state_.load() >> 32) + 1;
    state_.store(static_cast<uint64_t>(sequence) << 32);  // open
    if (sleepers_.load() > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mutex_); }
      wake_.notify_all();
    }
    t_in_loop = true;
    take_chunks();
    t_in_loop = false;
    for (int checks = 1;; ++checks) {  // close once the threads that joined are done
      uint64_t s = state_.load(std::memory_order_acquire);
      if ((s & 0xffffffffu) == 0 &&
          state_.compare_exchange_weak(s, static_cast<uint64_t>(sequence + 1) << 32, std::memory_order_acq_rel))
        break;
      wait_a_little(checks);
    }
    f_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  // Never destroyed: the threads sleep or spin until the process ends, and a loop still running
  // in another thread at exit must not find its pool gone.
  static WorkerPool& instance() {
    static WorkerPool* pool = new WorkerPool;
    return *pool;
  }

 private:
  static void run_alone(int64_t chunks, const std::function<void(int64_t)>& f) {
    const bool nested = t_in_loop;
    t_in_loop = true;
    try {
      for (int64_t c = 0; c < chunks; ++c) f(c);
    } catch (...) {
      t_in_loop = nested;
      throw;
    }
    t_in_loop = nested;
  }

  static void wait_a_little(int checks) {
    if (checks % kChecksPerYield == 0)
      std::this_thread::yield();
    else
      cpu_relax();
  }

  void take_chunks() {
    for (int64_t c = next_.fetch_add(1, std::memory_order_relaxed); c < chunks_;
         c = next_.fetch_add(1, std::memory_order_relaxed)) {
      try {
        (*f_)(c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  // Pool thread `index`: waits for each loop, joins it if it is one of the loop's helpers.
  void serve(int index) {
    t_in_loop = true;
    uint32_t seen = 0;
    for (;;) {
      uint64_t s = wait_for_loop(seen);
      const uint32_t sequence = static_cast<uint32_t>(s >> 32);
      seen = sequence;
      if (index >= helpers_.load(std::memory_order_relaxed)) continue;
      bool joined = false;
      while (static_cast<uint32_t>(s >> 32) == sequence)
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) {
          joined = true;
          break;
        }
      if (!joined) continue;
      take_chunks();
      state_.fetch_sub(1, std::memory_order_release);
    }
  }

  static bool is_new_loop(uint64_t s, uint32_t seen) {
    const uint32_t sequence = static_cast<uint32_t>(s >> 32);
    return (sequence & 1) && sequence != seen;
  }

  // The state of a loop opened after `seen`: spinning for kSpinTime, then asleep until one opens.
  uint64_t wait_for_loop(uint32_t seen) {
    const auto until = Clock::now() + kSpinTime;
    for (int checks = 1;; ++checks) {
      const uint64_t s = state_.load(std::memory_order_acquire);
      if (is_new_loop(s, seen)) return s;
      wait_a_little(checks);
      if (checks % kChecksPerYield == 0 && Clock::now() > until) break;
    }
    std::unique_lock<std::mutex> lock(sleep_mutex_);
    sleepers_.fetch_add(1);
    uint64_t s;
    wake_.wait(lock, [&] { return is_new_loop(s = state_.load(), seen); });
    sleepers_.fetch_sub(1);
    return s;
  }

  std::mutex run_mutex_;  // one loop at a time
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> next_{0};  // the next chunk to take
  // The open loop's: written before it opens, read by the threads that joined it.
  const std::function<void(int64_t)>* f_ = nullptr;
  int64_t chunks_ = 0;
  std::atomic<int> helpers_{0};  // how many pool threads the open loop wants
  std::exception_ptr error_;
  std::mutex error_mutex_;
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
  std::vector<std::thread> threads_;
};

}  // namespace

void run_on_worker_pool(int threads, int64_t chunks, const std::function<void(int64_t)>& f) {
  if (chunks <= 0) return;
  if (threads <= 1 || chunks == 1) {
    for (int64_t c = 0; c < chunks; ++c) f(c);
    return;
  }
  WorkerPool::instance().run(threads, chunks, f);
}

}  // namespace troupe
