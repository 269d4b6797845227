// troupe's own compute threads (models/quant/worker_pool.h): every chunk once, on more than one
// thread, errors carried to the caller, nested and concurrent loops, and asleep when idle.
#include <dirent.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "models/quant/worker_pool.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

TEST(WorkerPool, RunsEveryChunkExactlyOnceForAnyThreadAndChunkCount) {
  for (int threads : {1, 2, 3, 8})
    for (int64_t chunks : {0, 1, 2, 3, 7, 16, 100}) {
      std::vector<std::atomic<int>> runs(static_cast<size_t>(chunks));
      run_on_worker_pool(threads, chunks, [&](int64_t c) { runs[static_cast<size_t>(c)].fetch_add(1); });
      for (int64_t c = 0; c < chunks; ++c)
        ASSERT_EQ(runs[static_cast<size_t>(c)].load(), 1) << "chunk " << c << " of " << chunks << ", " << threads << " threads";
    }
}

// Loops back to back, as a decode step's: a pool thread still busy with (or late for) one loop
// must neither miss nor repeat a chunk of the next, nor touch a loop that has returned.
TEST(WorkerPool, ManyShortLoopsBackToBackEachRunEveryChunkOnce) {
  for (int loop = 0; loop < 20000; ++loop) {
    const int64_t chunks = 1 + loop % 9;
    std::vector<int> hits(static_cast<size_t>(chunks), 0);  // each written by the chunk's one thread
    run_on_worker_pool(2, chunks, [&](int64_t c) { ++hits[static_cast<size_t>(c)]; });
    for (int64_t c = 0; c < chunks; ++c) ASSERT_EQ(hits[static_cast<size_t>(c)], 1) << "loop " << loop;
  }
}

TEST(WorkerPool, ChunksRunOnMoreThanOneThread) {
  std::mutex m;
  std::set<std::thread::id> ids;
  std::atomic<bool> two_seen{false};
  run_on_worker_pool(2, 16, [&](int64_t) {
    {
      std::lock_guard<std::mutex> lock(m);
      ids.insert(std::this_thread::get_id());
      if (ids.size() >= 2) two_seen = true;
    }
    // Hold the chunk until a second thread has taken one (or give up after 10 s): a pool that ran
    // everything on the caller would time out here.
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!two_seen && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  });
  EXPECT_GE(ids.size(), 2u);
}

TEST(WorkerPool, AnErrorInAChunkReachesTheCallerAndThePoolCarriesOn) {
  std::atomic<int> ran{0};
  EXPECT_THROW(run_on_worker_pool(2, 32,
                                  [&](int64_t c) {
                                    ran.fetch_add(1);
                                    if (c == 5) throw std::runtime_error("chunk 5 failed");
                                  }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 32);  // the other chunks still ran: no loop is left half done
  std::atomic<int64_t> sum{0};
  run_on_worker_pool(2, 100, [&](int64_t c) { sum.fetch_add(c); });
  EXPECT_EQ(sum.load(), 99 * 100 / 2);
}

TEST(WorkerPool, ALoopInsideAChunkRunsOnThatThread) {
  std::atomic<int64_t> inner{0};
  run_on_worker_pool(2, 8, [&](int64_t) {
    const auto outer_thread = std::this_thread::get_id();
    run_on_worker_pool(2, 4, [&](int64_t c) {
      EXPECT_EQ(std::this_thread::get_id(), outer_thread);
      inner.fetch_add(c + 1);
    });
  });
  EXPECT_EQ(inner.load(), 8 * (1 + 2 + 3 + 4));
}

// Several stages in one process call from their own threads at once: each gets all its chunks.
TEST(WorkerPool, LoopsFromSeveralThreadsAtOnceEachComplete) {
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int loop = 0; loop < 2000; ++loop) {
        std::atomic<int64_t> sum{0};
        run_on_worker_pool(2, 10, [&](int64_t c) { sum.fetch_add(c); });
        if (sum.load() != 45) wrong.fetch_add(1);
      }
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(wrong.load(), 0);
}

// CPU time (ticks) of this process's threads named troupe-compute, from /proc.
long compute_thread_ticks(int* count) {
  long ticks = 0;
  *count = 0;
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string task = std::string("/proc/self/task/") + e->d_name;
    std::string name;
    std::getline(std::ifstream(task + "/comm"), name);
    if (name != "troupe-compute") continue;
    std::string stat;
    std::getline(std::ifstream(task + "/stat"), stat);
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string f;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {  // fields 14 and 15: utime, stime
      if (i == 14) utime = std::stol(f);
      if (i == 15) stime = std::stol(f);
    }
    ticks += utime + stime;
    ++*count;
  }
  closedir(dir);
  return ticks;
}

// An idle pool must not hold a core: after a short spin its threads sleep, so a neighbour (a
// browser, another stage) gets the cores while this node waits for work.
TEST(WorkerPool, IdlePoolThreadsSleepInsteadOfSpinning) {
  std::atomic<int64_t> sum{0};
  run_on_worker_pool(2, 64, [&](int64_t c) { sum.fetch_add(c); });
  std::this_thread::sleep_for(100ms);  // past the spin
  int threads = 0;
  const long before = compute_thread_ticks(&threads);
  ASSERT_GE(threads, 1) << "no troupe-compute thread found";
  std::this_thread::sleep_for(1s);
  const long after = compute_thread_ticks(&threads);
  EXPECT_LE(after - before, 5) << "pool threads used " << (after - before) << " ticks (1/100 s) while idle for 1 s";
}

}  // namespace
}  // namespace troupe
