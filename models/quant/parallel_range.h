#pragma once
// Splitting a loop over LibTorch's intra-op threads from code built without OpenMP.
#include <cstdint>
#include <functional>

namespace troupe {

// f(begin, end) over chunks of [0, n) of at least `grain` indices (the last may be shorter), on
// LibTorch's intra-op threads (at::set_num_threads); on the calling thread alone when n <= grain,
// with one thread, or inside a parallel region already. The chunks (up to 8 per thread) are
// taken in turn by whichever thread is free, so a thread that loses its core for a while does
// not hold the others up. Which index lands in which chunk and on which thread depends on n,
// the thread count and timing: f must give each index the same result in any chunk.
void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

}  // namespace troupe
