#pragma once
// Subcommands of the `troupe` CLI. Each registers its options on the parser and
// returns the process exit code when run.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

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

// Common set-up: threads for LibTorch (0 = all cores).
void set_compute_threads(int threads);

// Reads a single-process model's weights into memory now, showing progress when it takes
// longer than 2 s (models/runtime/progress.h). `prefetch` is StageModel::prefetch_weights.
void load_with_progress(const std::string& what,
                        const std::function<void(const std::function<void(uint64_t, uint64_t)>&)>& prefetch);

}  // namespace troupe::cli
