#include <ATen/Parallel.h>

#include <thread>

#include "launch/troupe/commands.h"
#include "models/runtime/progress.h"

namespace troupe::cli {

void set_compute_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
}

void load_with_progress(const std::string& what,
                        const std::function<void(const std::function<void(uint64_t, uint64_t)>&)>& prefetch) {
  Progress progress("loading " + what, 0);
  prefetch([&](uint64_t done, uint64_t total) {
    progress.set_total(total);
    progress.update(done);
  });
  progress.finish();
}

}  // namespace troupe::cli
