#pragma once
// Splitting a loop over the compute threads (at::set_num_threads) from code built without OpenMP.
#include <cstdint>
#include <functional>

namespace troupe {

// f(begin, end) over chunks of [0, n) of at least `grain` indices (the last may be shorter), on
// the calling thread and troupe's worker pool (worker_pool.h), as many threads in all as
// at::get_num_threads(); on the calling thread alone when n <= grain, with one thread, or inside
// a parallel loop already. The chunks (up to 8 per thread, then smaller ones towards the end, so
// the threads finish together) are taken in turn by whichever thread is free, so a thread that
// loses its core for a while does not hold the others up. Which index lands in which chunk and
// on which thread depends on n, the thread count and timing: f must give each index the same
// result in any chunk. f must not call LibTorch operators that parallelise themselves (BLAS,
// large element-wise ops): use parallel_range_aten for those.
void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

// The same on LibTorch's own intra-op (OpenMP) threads, inside whose region LibTorch's operators
// run on one thread each, as they must when every thread calls them.
void parallel_range_aten(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

}  // namespace troupe
