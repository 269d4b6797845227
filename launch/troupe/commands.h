#pragma once
// Subcommands of the `troupe` CLI. Each registers its options on the parser and
// returns the process exit code when run.
#include <CLI/CLI.hpp>

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

// Common set-up: threads for LibTorch (0 = all cores).
void set_compute_threads(int threads);

}  // namespace troupe::cli
