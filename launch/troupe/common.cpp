#include <ATen/Parallel.h>

#include <thread>

#include "launch/troupe/cli_checks.h"
#include "launch/troupe/commands.h"
#include "models/runtime/progress.h"

namespace troupe::cli {

void add_sampling_context_thread_flags(CLI::App* cmd, SamplingOptions& sampling, int64_t& seed, int64_t& ctx,
                                       int& threads) {
  cmd->add_option("--temp", sampling.temperature, "temperature (0 = greedy)")->capture_default_str()->check(non_negative());
  cmd->add_option("--top-k", sampling.top_k, "keep the k most likely tokens (0 = all)")->capture_default_str()->check(non_negative());
  cmd->add_option("--top-p", sampling.top_p, "nucleus sampling threshold (1 = off)")->capture_default_str()->check(between(0.0, 1.0));
  cmd->add_option("--seed", seed, "random seed (default: random)");
  cmd->add_option("--ctx,-c", ctx, "context length in tokens (default: the model's; longer only in one process, with a warning)")
    ->check(positive());
  cmd->add_option("--threads,-t", threads, "compute threads (default: all cores)");
}

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
