// `troupe quantize`: a GGUF file or Hugging Face directory in, a quantized GGUF file out,
// tensor by tensor, with progress on stderr.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "models/convert/quantize_model.h"
#include "models/machine/process_memory.h"
#include "models/quant/dtype.h"

namespace troupe::cli {
namespace {

struct QuantizeCliOptions {
  std::string model, type, out;
  int threads = 0;
};

// "45% (130/291 tensors, 6100 of 13500 MB), 210 MB/s, ETA 35 s", at most every two seconds and at the end.
class ProgressLine {
 public:
  void operator()(const QuantizeProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool last = p.tensors_done == p.tensors_total;
    if (!last && now - last_print_ < std::chrono::seconds(2)) return;
    last_print_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? p.bytes_done / secs : 0;
    const double eta = rate > 0 ? (p.bytes_total - p.bytes_done) / rate : 0;
    std::fprintf(stderr, "quantize: %3.0f%% (%lld/%lld tensors, %.0f of %.0f MB), %.0f MB/s, ETA %.0f s  %s\n",
                 p.bytes_total ? 100.0 * p.bytes_done / p.bytes_total : 100.0, static_cast<long long>(p.tensors_done),
                 static_cast<long long>(p.tensors_total), p.bytes_done / 1e6, p.bytes_total / 1e6, rate / 1e6, eta,
                 p.tensor.c_str());
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_print_{};
};

void run_quantize(const QuantizeCliOptions& o) {
  set_compute_threads(o.threads);
  const QuantRecipe& recipe = quant_recipe(o.type);
  const auto start = std::chrono::steady_clock::now();
  ProgressLine line;
  const QuantizeSummary s = quantize_model(o.model, recipe, o.out, [&line](const QuantizeProgress& p) { line(p); });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::map<uint32_t, int> counts;
  for (const auto& [name, type] : s.tensor_types) ++counts[type];
  std::string mix;
  for (const auto& [type, n] : counts) mix += (mix.empty() ? "" : ", ") + std::to_string(n) + " " + dtype_name(type);
  spdlog::info("{}: {} ({}), {:.1f} MB from {:.1f} MB in {:.1f} s, peak RSS {:.0f} MB", o.out, recipe.name, mix,
               s.bytes_out / 1e6, s.bytes_in / 1e6, secs, process_memory().peak_rss / 1e6);
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto o = std::make_shared<QuantizeCliOptions>();
  auto* cmd = app.add_subcommand("quantize", "write a quantized GGUF copy of a model (llama.cpp's type mixes)");
  cmd->add_option("--model,-m", o->model, "GGUF file or Hugging Face directory")->required();
  std::string types;
  for (const auto& n : quant_recipe_names()) types += (types.empty() ? "" : ", ") + n;
  cmd->add_option("--type", o->type, types)->required();
  cmd->add_option("--out,-o", o->out, "output GGUF file")->required();
  cmd->add_option("--threads,-t", o->threads, "threads (default: all cores)");
  cmd->callback([o] { run_reporting_errors([&] { run_quantize(*o); }); });
}

}  // namespace troupe::cli
