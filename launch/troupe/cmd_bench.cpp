// `troupe bench`: prefill and decode speed, memory, bytes per hop, and how close decoding
// comes to the memory-bandwidth bound (every weight is read once per token).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "framework/deploy/deploy.h"
#include "launch/troupe/cli_checks.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "launch/troupe/node_options.h"
#include "models/format/checkpoint.h"
#include "models/machine/memory_bandwidth.h"
#include "models/machine/process_memory.h"
#include "models/arch/stage_model.h"
#include "models/arch/open_checkpoint.h"

namespace troupe::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string model, json_path;
  NodeOptions distributed;
  int64_t prompt_tokens = 64, decode_tokens = 32;
  int threads = 0;
  int sessions = 1;  // single process: sessions decoded together, one forward pass per step
};

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// Bytes decoding reads per token: every weight except the embedding table, of which it
// reads one row (unless the head is tied to it, which reads it whole).
uint64_t weight_bytes_per_token(const Checkpoint& ckpt) {
  uint64_t bytes = 0;
  for (const auto& name : ckpt.tensor_names()) {
    if (name == "position_embd.weight") continue;
    if (name == "token_embd.weight" && !ckpt.config().tied_head) continue;
    bytes += ckpt.tensor_nbytes(name);
  }
  return bytes;
}

// A fixed, model-independent prompt: BOS, then ids spread over the vocabulary.
std::vector<int32_t> bench_prompt(const Checkpoint& ckpt, int64_t n) {
  std::vector<int32_t> ids;
  const int64_t vocab = ckpt.config().n_vocab;
  for (int64_t i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>((i * 7919 + 13) % vocab));
  if (ckpt.has_vocab() && ckpt.vocab().bos_id >= 0) ids[0] = ckpt.vocab().bos_id;
  return ids;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

json bench_single_process(const std::shared_ptr<const Checkpoint>& ckpt, const BenchOptions& o) {
  const auto load_start = Clock::now();
  auto model = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
  // Read into memory at load, as generate, chat, serve and a node taking a stage do: the prefill
  // timed is then the computation, not the first touch of every page of the mapped file.
  load_with_progress(o.model, [&](const auto& on_progress) { model->prefetch_weights(on_progress); });
  const double load_ms = ms_since(load_start);
  const auto prompt = bench_prompt(*ckpt, o.prompt_tokens);
  const at::Tensor prompt_ids = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong);
  // Every session gets the same prompt (prefilled on its own; the first one is timed), then
  // each decode step is one forward pass over all sessions, as a stage batches them.
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<at::Tensor> logits;
  double prefill_ms = 0;
  for (int s = 0; s < o.sessions; ++s) {
    caches.push_back(model->new_cache(o.prompt_tokens + o.decode_tokens));
    const auto t0 = Clock::now();
    logits.push_back(model->forward(prompt_ids, 0, *caches.back()));
    if (s == 0) prefill_ms = ms_since(t0);
  }
  std::vector<double> step_ms;
  int64_t pos = o.prompt_tokens;
  for (int64_t i = 0; i < o.decode_tokens; ++i, ++pos) {
    std::vector<SequenceStep> steps;
    for (int s = 0; s < o.sessions; ++s) steps.push_back(SequenceStep{at::argmax(logits[s], -1).view({1}), pos, caches[s].get()});
    const auto t = Clock::now();
    logits = model->forward_batch(steps);
    step_ms.push_back(ms_since(t));
  }
  // Taken before the bandwidth probe (run_bench), which allocates buffers of its own.
  return {{"mode", "single-process"}, {"load_ms", load_ms}, {"prefill_ms", prefill_ms}, {"step_ms", step_ms},
          {"nodes", json::array({{{"node", "local"}, {"peak_rss_bytes", process_memory().peak_rss}}})}};
}

json bench_pipeline(const std::shared_ptr<const Checkpoint>& ckpt, const BenchOptions& o) {
  SamplingOptions greedy;
  greedy.temperature = 0;
  ClientActorSystem sys;
  const auto load_start = Clock::now();
  Pipeline pipeline = deploy_on_nodes(sys.get(), o.distributed, o.model, *ckpt, greedy);
  const double load_ms = ms_since(load_start);
  GenerateOptions gen;
  gen.stop_at_eos = false;
  const Generation g = pipeline.generate_tokens(bench_prompt(*ckpt, o.prompt_tokens), o.decode_tokens, greedy, gen);
  json nodes = json::array();
  for (const auto& s : pipeline.stats()) {
    const double steps = std::max<double>(1, static_cast<double>(s.steps));
    nodes.push_back({{"node", s.node},
                     {"stage", s.describe},
                     {"compute_ms_per_step", s.compute_ms / steps},
                     {"bytes_out_total", s.bytes_out},
                     {"bytes_out_per_decode_step", s.bytes_out == 0 ? 0.0 : static_cast<double>(s.bytes_out) / steps}});
  }
  pipeline.shutdown();
  return {{"mode", "pipeline"}, {"load_ms", load_ms}, {"prefill_ms", g.prefill_ms}, {"step_ms", g.step_ms}, {"nodes", nodes}};
}

void run_bench(const BenchOptions& o) {
  set_compute_threads(o.threads);
  // This process's memory in three parts: before any model work (LibTorch and the libraries
  // loaded), the peak of the model work, and the peak of the bandwidth probe run after it
  // (its buffers are not the model's: the peak is started again from the RSS of then).
  if (!o.distributed.used()) o.distributed.check_single_process();
  const ProcessMemory before_model = process_memory();
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(o.model);
  json r = o.distributed.used() ? bench_pipeline(ckpt, o) : bench_single_process(ckpt, o);
  const ProcessMemory after_model = process_memory();
  const auto steps = r["step_ms"].get<std::vector<double>>();
  const double ms_per_token = median(steps);
  const bool probe_peak_apart = reset_peak_rss();
  const MemoryBandwidth bw = measure_memory_bandwidth(at::get_num_threads());
  const ProcessMemory after_probe = process_memory();
  r["rss_before_model_bytes"] = before_model.rss;
  r["peak_rss_model_bytes"] = after_model.peak_rss;
  r["rss_after_model_bytes"] = after_model.rss;
  if (probe_peak_apart) r["peak_rss_bandwidth_probe_bytes"] = after_probe.peak_rss;
  const uint64_t bytes_per_token = weight_bytes_per_token(*ckpt);
  const double bound_ms = 1e3 * static_cast<double>(bytes_per_token) / bw.read_bytes_per_s;
  r["model"] = o.model;
  r["threads"] = at::get_num_threads();
  r["prompt_tokens"] = o.prompt_tokens;
  r["prefill_tokens_per_s"] = 1e3 * static_cast<double>(o.prompt_tokens) / r["prefill_ms"].get<double>();
  r["decode_ms_per_token"] = ms_per_token;
  r["sessions"] = o.sessions;
  r["decode_tokens_per_s"] = ms_per_token > 0 ? 1e3 * o.sessions / ms_per_token : 0.0;
  r["weight_bytes_per_token"] = bytes_per_token;
  r["memory_read_gb_per_s"] = bw.read_bytes_per_s / 1e9;
  r["memory_copy_gb_per_s"] = bw.copy_bytes_per_s / 1e9;
  r["bandwidth_bound_ms_per_token"] = bound_ms;
  r["ratio_to_bound"] = ms_per_token / bound_ms;
  r.erase("step_ms");

  std::printf("model                 %s (%s)\n", o.model.c_str(), r["mode"].get<std::string>().c_str());
  std::printf("threads               %d\n", r["threads"].get<int>());
  std::printf("load                  %.0f ms\n", r["load_ms"].get<double>());
  std::printf("prefill               %lld tokens in %.1f ms = %.1f tokens/s\n", static_cast<long long>(o.prompt_tokens),
              r["prefill_ms"].get<double>(), r["prefill_tokens_per_s"].get<double>());
  if (o.sessions > 1)
    std::printf("decode                %.2f ms per forward pass of %d sessions (median of %zu) = %.2f tokens/s\n",
                ms_per_token, o.sessions, steps.size(), r["decode_tokens_per_s"].get<double>());
  else
    std::printf("decode                %.2f ms/token (median of %zu) = %.2f tokens/s\n", ms_per_token, steps.size(),
                r["decode_tokens_per_s"].get<double>());
  std::printf("weights read/token    %.1f MB\n", bytes_per_token / 1e6);
  std::printf("memory bandwidth      %.1f GB/s read, %.1f GB/s copy (read+write)\n", bw.read_bytes_per_s / 1e9,
              bw.copy_bytes_per_s / 1e9);
  std::printf("bandwidth bound       %.2f ms/token; measured / bound = %.2fx\n", bound_ms, ms_per_token / bound_ms);
  std::printf("memory (this process) RSS %.1f MB before the model, peak %.1f MB during the model work (+%.1f MB)",
              before_model.rss / 1e6, after_model.peak_rss / 1e6,
              (after_model.peak_rss > before_model.rss ? after_model.peak_rss - before_model.rss : 0) / 1e6);
  if (probe_peak_apart) std::printf("; the bandwidth probe after it peaked at %.1f MB", after_probe.peak_rss / 1e6);
  std::printf("\n");
  for (const auto& n : r["nodes"]) {
    std::printf("node %-16s", n["node"].get<std::string>().c_str());
    if (n.contains("stage")) std::printf(" %-26s", n["stage"].get<std::string>().c_str());
    if (n.contains("peak_rss_bytes")) std::printf(" peak RSS %.1f MB", n["peak_rss_bytes"].get<double>() / 1e6);
    if (n.contains("compute_ms_per_step")) std::printf(" compute %.2f ms/step", n["compute_ms_per_step"].get<double>());
    if (n.contains("bytes_out_per_decode_step") && n["bytes_out_total"].get<uint64_t>() > 0)
      std::printf(" sends %.0f bytes/step to the next stage", n["bytes_out_per_decode_step"].get<double>());
    std::printf("\n");
  }
  if (!o.json_path.empty()) std::ofstream(o.json_path) << r.dump(2) << "\n";
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "measure prefill and decode speed, memory, and the bandwidth bound");
  cmd->add_option("--model,-m", o->model, "GGUF file or Hugging Face directory")->required();
  o->distributed.add_to(cmd);
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt length for the prefill measurement")->capture_default_str()->check(troupe::cli::positive());
  cmd->add_option("--tokens,-n", o->decode_tokens, "decode steps to time")->capture_default_str()->check(troupe::cli::positive());
  cmd->add_option("--threads,-t", o->threads, "compute threads (default: all cores)");
  auto* sessions = cmd->add_option("--sessions", o->sessions,
                                   "decode this many sessions together, one forward pass per step (as a stage "
                                   "batches them; single process only)")
                     ->capture_default_str()
                     ->check(troupe::cli::between(1, 256));
  sessions->excludes(cmd->get_option("--nodes"));
  cmd->add_option("--json", o->json_path, "also write the results as JSON to this file");
  cmd->callback([o] { run_reporting_errors([&] { run_bench(*o); }); });
}

}  // namespace troupe::cli
