// parallel_range and parallel_range_aten (models/quant/parallel_range.h): how a loop's indices
// are cut into chunks for the compute threads.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "models/quant/parallel_range.h"

namespace troupe {
namespace {

using Range = std::function<void(int64_t, int64_t, const std::function<void(int64_t, int64_t)>&)>;

struct ThreadCount {
  explicit ThreadCount(int threads) : previous(at::get_num_threads()) { at::set_num_threads(threads); }
  ~ThreadCount() { at::set_num_threads(previous); }
  int previous;
};

// The chunks one call hands out, sorted by where they begin.
std::vector<std::pair<int64_t, int64_t>> chunks_of(const Range& range, int64_t n, int64_t grain) {
  std::mutex mutex;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  range(n, grain, [&](int64_t begin, int64_t end) {
    std::lock_guard<std::mutex> lock(mutex);
    chunks.emplace_back(begin, end);
  });
  std::sort(chunks.begin(), chunks.end());
  return chunks;
}

const std::vector<std::pair<const char*, Range>> kRanges = {
    {"parallel_range", [](int64_t n, int64_t g, const auto& f) { parallel_range(n, g, f); }},
    {"parallel_range_aten", [](int64_t n, int64_t g, const auto& f) { parallel_range_aten(n, g, f); }},
};

TEST(ParallelRange, CoversEveryIndexOnceInChunksOfAtLeastTheGrainButTheLast) {
  for (const auto& [name, range] : kRanges) {
    for (int threads : {1, 2, 3}) {
      for (int64_t n : {1, 5, 16, 17, 100, 512, 1000, 5632}) {
        for (int64_t grain : {1, 4, 16, 64}) {
          const ThreadCount count(threads);
          const auto chunks = chunks_of(range, n, grain);
          const std::string what = std::string(name) + ", " + std::to_string(threads) + " threads, n " +
                                   std::to_string(n) + ", grain " + std::to_string(grain);
          ASSERT_FALSE(chunks.empty()) << what;
          int64_t next = 0;
          for (size_t k = 0; k < chunks.size(); ++k) {
            EXPECT_EQ(chunks[k].first, next) << what;
            EXPECT_LT(chunks[k].first, chunks[k].second) << what;
            if (k + 1 < chunks.size()) {
              EXPECT_GE(chunks[k].second - chunks[k].first, grain) << what;
            }
            next = chunks[k].second;
          }
          EXPECT_EQ(next, n) << what;
        }
      }
    }
  }
}

// The loop's last chunks are smaller than its first: the thread that takes the last one is not
// still busy with a whole chunk while the others wait at the end of the loop.
TEST(ParallelRange, ChunksGetSmallerTowardsTheEndOfTheLoop) {
  for (const auto& [name, range] : kRanges) {
    const ThreadCount count(2);
    const auto chunks = chunks_of(range, 512, 16);  // a 2048-row matrix in groups of 4, 64 rows a chunk at least
    ASSERT_GE(chunks.size(), 3u) << name;
    const int64_t first = chunks.front().second - chunks.front().first;
    const int64_t last = chunks.back().second - chunks.back().first;
    EXPECT_LE(2 * last, first) << name;
    for (size_t k = 1; k < chunks.size(); ++k)
      EXPECT_LE(chunks[k].second - chunks[k].first, chunks[k - 1].second - chunks[k - 1].first) << name;
  }
}

}  // namespace
}  // namespace troupe
