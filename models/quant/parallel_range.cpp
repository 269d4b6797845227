#include "models/quant/parallel_range.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "models/quant/worker_pool.h"

namespace troupe {
namespace {

// Chunks per thread: enough that a thread the OS takes off its core for a while (the cores are
// shared with other programs: a browser, a compiler, another node) leaves its remaining chunks
// to the others instead of holding them all up at the end of the loop, few enough that taking
// a chunk (one atomic increment) costs nothing next to running it.
constexpr int64_t kChunksPerThread = 8;

// fn() once on each of LibTorch's intra-op threads (or on fewer, one of them running it for
// the rest: fn must not count on being called `threads` times).
// at::parallel_for is a header template whose OpenMP pragmas only take effect in code compiled
// with -fopenmp; without it (troupe's build today) it silently runs on one thread. So the
// threads come from ATen's own compiled loop, TensorIterator::for_each, over a byte per thread.
template <class Fn>
void on_each_thread(int threads, const Fn& fn) {
#ifdef _OPENMP
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) { fn(); });
#else
  const at::Tensor index = at::empty({threads}, at::kByte);
  at::TensorIteratorConfig().add_input(index).check_all_same_dtype(false).build().for_each(
      [&](char**, const int64_t*, int64_t, int64_t) { fn(); }, 1);
#endif
}

// How a loop of n > 0 indices splits over the compute threads: chunk k is [bounds[k],
// bounds[k+1]); no bounds when it runs on the calling thread alone (n <= grain, one thread, or
// inside a parallel region already). Chunks of equal size (kChunksPerThread per thread) first,
// then smaller ones (a quarter of what is left per thread, down to the grain) once less than
// that remains: a thread that takes the last chunk then finishes about when the others do,
// instead of half a chunk later while they wait.
struct Chunking {
  std::vector<int64_t> bounds;
  int threads = 1;
  int64_t count() const { return bounds.empty() ? 0 : static_cast<int64_t>(bounds.size()) - 1; }
};
Chunking chunking(int64_t n, int64_t grain) {
  grain = std::max<int64_t>(1, grain);
  const int threads = at::get_num_threads();
  if (n <= grain || threads <= 1 || at::in_parallel_region()) return {};
  const int64_t count = std::min((n + grain - 1) / grain, threads * kChunksPerThread);
  const int64_t size = std::max(grain, (n + count - 1) / count);
  Chunking c;
  c.threads = threads;
  c.bounds.push_back(0);
  while (c.bounds.back() < n) {
    const int64_t left = n - c.bounds.back();
    c.bounds.push_back(c.bounds.back() + std::min(left, std::clamp(left / (2 * threads), grain, size)));
  }
  return c;
}

}  // namespace

void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  const Chunking c = chunking(n, grain);
  if (c.count() == 0) return f(0, n);
  run_on_worker_pool(c.threads, c.count(), [&](int64_t k) { f(c.bounds[k], c.bounds[k + 1]); });
}

void parallel_range_aten(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  const Chunking c = chunking(n, grain);
  if (c.count() == 0) return f(0, n);
  std::atomic<int64_t> next{0};
  on_each_thread(c.threads, [&] {
    for (int64_t k = next.fetch_add(1, std::memory_order_relaxed); k < c.count();
         k = next.fetch_add(1, std::memory_order_relaxed))
      f(c.bounds[k], c.bounds[k + 1]);
  });
}

}  // namespace troupe
