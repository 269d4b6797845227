#include <ATen/Parallel.h>

#include <thread>

#include "launch/troupe/commands.h"

namespace troupe::cli {

void set_compute_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
}

}  // namespace troupe::cli
