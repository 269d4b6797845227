// `troupe generate`: stream a continuation of a prompt.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <random>


#include "framework/deploy/deploy.h"
#include "launch/troupe/cli_checks.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "launch/troupe/node_options.h"
#include "models/arch/stage_model.h"
#include "models/format/checkpoint.h"
#include "models/runtime/local_session.h"
#include "models/vocab/tokenizer.h"
#include "models/arch/open_checkpoint.h"

namespace troupe::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  NodeOptions distributed;
  int64_t n_tokens = 64;
  SamplingOptions sampling;
  int64_t seed = -1;
  int threads = 0;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void print_piece(const std::string& bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
  std::fflush(stdout);
}

// Through caf-node daemons: one stage per node, activations hop from node to node.
void run_distributed(const GenerateOptions& o, const SamplingOptions& sampling) {
  const auto ckpt = open_checkpoint(o.model);
  ClientActorSystem sys;
  Pipeline pipeline = deploy_on_nodes(sys.get(), o.distributed, o.model, *ckpt, sampling);
  const Generation g = pipeline.generate(o.prompt, o.n_tokens, sampling,
                                         [](int32_t, const std::string& piece) { print_piece(piece); });
  std::fputc('\n', stderr);
  double decode_ms = 0;
  for (double ms : g.step_ms) decode_ms += ms;
  spdlog::info("prefill: {} tokens in {:.1f} ms; decode: {} tokens, {:.2f} ms/token", g.prompt_tokens.size(), g.prefill_ms,
               g.step_ms.size(), g.step_ms.empty() ? 0.0 : decode_ms / g.step_ms.size());
  if (g.drafted > 0)
    spdlog::info("speculative: {} of {} drafted tokens kept ({:.0f}%)", g.accepted, g.drafted,
                 100.0 * static_cast<double>(g.accepted) / static_cast<double>(g.drafted));
  pipeline.shutdown();
}

void run_generate(const GenerateOptions& o) {
  set_compute_threads(o.threads);
  SamplingOptions sampling = o.sampling;
  sampling.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  if (o.distributed.used()) return run_distributed(o, sampling);
  if (!o.distributed.layers.empty()) throw std::invalid_argument("--layers needs --nodes");
  o.distributed.check_single_process();

  std::shared_ptr<const Checkpoint> ckpt = apply_context(open_checkpoint(o.model), o.distributed.ctx);
  const auto tokenizer = make_tokenizer(ckpt->vocab());
  const auto prompt = tokenizer->encode(o.prompt, tokenizer->adds_bos(), true);
  spdlog::info("{}: {} layers, {} prompt tokens", ckpt->path(), ckpt->config().n_layer, prompt.size());

  LocalSession session(ckpt);
  load_with_progress(o.model, [&](const auto& on_progress) { session.model().prefetch_weights(on_progress); });
  const auto start = Clock::now();
  double prefill_seconds = 0;
  int64_t n_generated = 0;
  session.generate(prompt, o.n_tokens, sampling, tokenizer->eos_id(), [&](int32_t token, const std::vector<float>&) {
    if (n_generated++ == 0) prefill_seconds = seconds_since(start);
    print_piece(tokenizer->token_bytes(token));
    return !tokenizer->is_stop(token);  // EOS or end of turn
  });
  const double total = seconds_since(start);
  std::fputc('\n', stderr);
  const int64_t n_ctx = ckpt->config().n_ctx;
  if (n_generated < o.n_tokens && static_cast<int64_t>(prompt.size()) + n_generated >= n_ctx)
    spdlog::warn("stopped after {} of {} tokens: the context of {} positions is full (--ctx N for a longer one)",
                 n_generated, o.n_tokens, n_ctx);
  spdlog::info("prefill: {} tokens in {:.1f} ms ({:.1f} tokens/s); decode: {} tokens, {:.2f} ms/token", prompt.size(),
               prefill_seconds * 1e3, prompt.size() / prefill_seconds, n_generated - 1,
               n_generated > 1 ? (total - prefill_seconds) * 1e3 / (n_generated - 1) : 0.0);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "generate text from a prompt (streams to stdout)");
  cmd->add_option("--model,-m", o->model, "GGUF file or Hugging Face directory")->required();
  cmd->add_option("--prompt,-p", o->prompt, "prompt text")->required();
  cmd->add_option("-n,--n-tokens", o->n_tokens, "tokens to generate")->capture_default_str()->check(troupe::cli::positive());
  add_sampling_context_thread_flags(cmd, o->sampling, o->seed, o->distributed.ctx, o->threads);
  cmd->add_option("--repeat-penalty", o->sampling.repeat_penalty, "penalty for recent tokens (1 = off)")->capture_default_str()->check(troupe::cli::positive());
  cmd->add_option("--repeat-window", o->sampling.repeat_window, "recent tokens the penalty looks at")->capture_default_str();
  o->distributed.add_to(cmd);
  cmd->callback([o] { run_reporting_errors([&] { run_generate(*o); }); });
}

}  // namespace troupe::cli
