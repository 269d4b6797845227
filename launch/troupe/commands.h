#pragma once
// Subcommands of the `troupe` CLI. Each registers its options on the parser and
// returns the process exit code when run.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

#include "models/runtime/sampler.h"

namespace troupe::cli {

void add_keys_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_split_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_synth_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_status_command(CLI::App& app);
void add_chat_command(CLI::App& app);

// The flags `generate` and `chat` share: sampling (--temp, --top-k, --top-p, --seed), the
// context length (--ctx) and compute threads (--threads).
void add_sampling_context_thread_flags(CLI::App* cmd, SamplingOptions& sampling, int64_t& seed, int64_t& ctx,
                                       int& threads);

// Common set-up: threads for LibTorch (0 = all cores).
void set_compute_threads(int threads);

// Reads a single-process model's weights into memory now, showing progress when it takes
// longer than 2 s (models/runtime/progress.h). `prefetch` is StageModel::prefetch_weights.
void load_with_progress(const std::string& what,
                        const std::function<void(const std::function<void(uint64_t, uint64_t)>&)>& prefetch);

}  // namespace troupe::cli
