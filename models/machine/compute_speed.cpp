#include "models/machine/compute_speed.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>

#include "models/machine/runqueue_wait.h"

namespace troupe {

double measure_matmul_gflops(int threads, int reps) {
  const int previous = at::get_num_threads();
  at::set_num_threads(std::max(1, threads));
  // 512x2048 times 2048x512: large enough to reach the BLAS kernel's speed, small
  // enough that the whole measurement stays well under a second on a laptop.
  const at::Tensor a = at::rand({512, 2048}), b = at::rand({2048, 512});
  at::matmul(a, b);  // warm up: thread pool, pages
  const double flops = 2.0 * 512 * 2048 * 512;
  double best = 1e30;
  for (int rep = 0; rep < std::max(1, reps); ++rep) {
    const double waited_before = runqueue_wait_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    at::Tensor c = at::matmul(a, b);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Without the time its threads waited for a core (shared out over the threads; a product
    // that used fewer threads gets less taken off, never more): what this machine does when it
    // has its cores, which a neighbour starting at the same moment does not change.
    const double waited = (runqueue_wait_seconds() - waited_before) / std::max(1, threads);
    best = std::min(best, std::max(wall - waited, 0.25 * wall));
  }
  at::set_num_threads(previous);
  return flops / best / 1e9;
}

}  // namespace troupe
