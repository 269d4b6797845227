// `troupe synth`: a random-weight model of a real model's shape, for benchmarks.
#include <spdlog/spdlog.h>

#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "models/convert/synthetic_model.h"
#include "models/quant/type_traits.h"
#include "models/runtime/progress.h"

namespace troupe::cli {
namespace {

struct SynthCliOptions {
  std::string shape = "tinyllama", type = "q4_0", out, vocab_from;
  int64_t layers = 0;
  uint64_t seed = 1;
  int threads = 0;
  bool zero_weights = false;
};

void run_synth(const SynthCliOptions& o) {
  set_compute_threads(o.threads);
  SynthOptions s;
  s.config = preset_shape(o.shape);
  if (o.layers > 0) s.config.n_layer = o.layers;
  const SynthType t = parse_synth_type(o.type);
  s.type = t.type;
  s.mix = t.mix;
  s.seed = o.seed;
  s.vocab_from = o.vocab_from;
  s.zero_weights = o.zero_weights;
  Progress progress("synth " + o.out, 0);
  s.on_progress = [&](uint64_t done, uint64_t total) {
    progress.set_total(total);
    progress.update(done);
  };
  const uint64_t bytes = write_synthetic_model(s, o.out);
  progress.finish();
  spdlog::info("{}: {} shape, {} layers, {}{}, {:.1f} MB", o.out, o.shape, s.config.n_layer, o.type,
               o.zero_weights ? " (zero weights)" : "", bytes / 1e6);
}

}  // namespace

void add_synth_command(CLI::App& app) {
  auto o = std::make_shared<SynthCliOptions>();
  auto* cmd = app.add_subcommand("synth", "write a random-weight GGUF model of a given shape and weight type");
  cmd->add_option("--shape", o->shape, "tinyllama, llama2-7b, llama3-8b, mistral-7b, gpt2, gpt2-medium, phi2, gptj, qwen2.5-7b, phi3-mini")->capture_default_str();
  cmd->add_option("--type", o->type,
                 "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs, "
                 "or a mix: q3_k_m, q4_k_s, q4_k_m, q5_k_m")->capture_default_str();
  cmd->add_option("--layers", o->layers, "override the number of layers");
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--vocab-from", o->vocab_from, "GGUF file whose tokenizer to copy (vocab sizes must agree)");
  cmd->add_option("--out,-o", o->out, "output GGUF file")->required();
  cmd->add_option("--threads,-t", o->threads, "threads (default: all cores)");
  cmd->add_flag("--zero-weights", o->zero_weights,
                "leave the matrices zero: exact tensor table and sizes in seconds, for `plan` (not for `bench`)");
  cmd->callback([o] { run_reporting_errors([&] { run_synth(*o); }); });
}

}  // namespace troupe::cli
