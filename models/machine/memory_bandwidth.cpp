#include "models/machine/memory_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "models/machine/runqueue_wait.h"

namespace troupe {
namespace {

using Clock = std::chrono::steady_clock;

// Runs f(part, n_parts) on `threads` threads at once; returns the seconds the slowest part ran:
// the wall time, but no more than the CPU time its thread got (each thread streams all the
// while), so the time a neighbour held a core (another caf-node starting beside this one) does
// not count.
template <class F>
double run_split(int threads, F f) {
  std::vector<std::thread> pool;
  std::vector<double> ran(static_cast<size_t>(threads));
  const auto t0 = Clock::now();
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&f, &ran, i, threads] {
      const double c0 = thread_cpu_seconds();
      f(i, threads);
      ran[static_cast<size_t>(i)] = thread_cpu_seconds() - c0;
    });
  for (auto& t : pool) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  return std::min(wall, *std::max_element(ran.begin(), ran.end()));
}

// Four independent 256-bit accumulators keep the loads, not the adds, the limit.
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint64_t* p, size_t n) {
  __m256i s[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  for (size_t k = 0; k + 16 <= n; k += 16)
    for (int j = 0; j < 4; ++j)
      s[j] = _mm256_add_epi64(s[j], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + k + 4 * j)));
  const __m256i t = _mm256_add_epi64(_mm256_add_epi64(s[0], s[1]), _mm256_add_epi64(s[2], s[3]));
  return static_cast<uint64_t>(_mm256_extract_epi64(t, 0) + _mm256_extract_epi64(t, 1) + _mm256_extract_epi64(t, 2) +
                               _mm256_extract_epi64(t, 3));
}

uint64_t sum_portable(const uint64_t* p, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t k = 0; k + 4 <= n; k += 4) {
    s0 += p[k];
    s1 += p[k + 1];
    s2 += p[k + 2];
    s3 += p[k + 3];
  }
  return s0 + s1 + s2 + s3;
}

}  // namespace

MemoryBandwidth measure_memory_bandwidth(int threads, size_t bytes) {
  threads = std::max(1, threads);
  const size_t n = bytes / 8;
  std::vector<uint64_t> a(n, 1), b(n, 0);
  const bool avx2 = __builtin_cpu_supports("avx2");
  MemoryBandwidth bw;
  double best_copy = 1e30, best_read = 1e30;
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  for (int rep = 0; rep < 3; ++rep) {  // best of three: the first pass also faults the pages in
    best_copy = std::min(best_copy, run_split(threads, [&](int i, int parts) {
                           const size_t part = n / static_cast<size_t>(parts);
                           std::memcpy(b.data() + static_cast<size_t>(i) * part, a.data() + static_cast<size_t>(i) * part, part * 8);
                         }));
    best_read = std::min(best_read, run_split(threads, [&](int i, int parts) {
                           const size_t part = n / static_cast<size_t>(parts);
                           const uint64_t* p = a.data() + static_cast<size_t>(i) * part;
                           sums[static_cast<size_t>(i)] = avx2 ? sum_avx2(p, part) : sum_portable(p, part);
                         }));
  }
  if (sums[0] == 42) std::fputc(' ', stderr);  // keeps the sums from being optimised away
  bw.copy_bytes_per_s = 2.0 * static_cast<double>(n * 8) / best_copy;
  bw.read_bytes_per_s = static_cast<double>(n * 8) / best_read;
  return bw;
}

}  // namespace troupe
