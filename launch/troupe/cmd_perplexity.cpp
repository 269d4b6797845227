// `troupe perplexity`: llama.cpp's perplexity method on a text file.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "launch/troupe/cli_checks.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "launch/troupe/text_input.h"
#include "models/format/checkpoint.h"
#include "models/runtime/perplexity.h"
#include "models/runtime/progress.h"
#include "models/arch/stage_model.h"
#include "models/vocab/tokenizer.h"
#include "models/arch/open_checkpoint.h"

namespace troupe::cli {
namespace {

struct PerplexityOptions {
  std::string model, file;
  int64_t ctx = 128;
  int threads = 0;
};

void run_perplexity(const PerplexityOptions& o) {
  set_compute_threads(o.threads);
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(o.model);
  const auto tokenizer = make_tokenizer(ckpt->vocab());
  const auto tokens = tokenizer->encode(read_text_file(o.file), tokenizer->adds_bos());
  spdlog::info("{}: {} tokens, chunks of {}", o.file, tokens.size(), o.ctx);
  auto model = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
  load_with_progress(o.model, [&](const auto& on_progress) { model->prefetch_weights(on_progress); });
  Progress progress("perplexity", static_cast<uint64_t>(static_cast<int64_t>(tokens.size()) / std::max<int64_t>(o.ctx, 1)),
                    Progress::Unit::count, "chunks");
  const auto r = perplexity(*model, tokens, o.ctx, tokenizer->adds_bos(), tokenizer->bos_id(),
                            [&](int64_t chunk, int64_t n, double ppl) {
                              spdlog::debug("[{}/{}] {:.4f}", chunk, n, ppl);
                              progress.update(static_cast<uint64_t>(chunk));
                            });
  progress.finish();
  spdlog::info("{} chunks, {} predictions scored", r.n_chunks, r.n_scored);
  std::printf("PPL = %.4f\n", r.ppl);
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  auto* cmd = app.add_subcommand("perplexity", "perplexity of a model on a text file (llama.cpp's method)");
  cmd->add_option("--model,-m", o->model, "GGUF file or Hugging Face directory")->required();
  cmd->add_option("--file,-f", o->file, "text file")->required();
  cmd->add_option("--ctx,-c", o->ctx, "chunk length in tokens")->capture_default_str()->check(troupe::cli::between(2, 1 << 20));
  cmd->add_option("--threads,-t", o->threads, "compute threads (default: all cores)");
  cmd->callback([o] { run_reporting_errors([&] { run_perplexity(*o); }); });
}

}  // namespace troupe::cli
