// Per-token latency of the single-process run against a pipeline of caf-node daemons on
// this machine (loopback), and the bytes each hop carries per generated token.
//
//   pipeline_benchmark --models-dir ../shared/models --model stories260K/stories260K.gguf --stages 3 --tokens 64 --threads 1 [--wire f16]
//
// Starts the daemons itself (the caf-node next to this binary), on 127.0.0.1 with free
// ports. "Bytes on the wire" are what each daemon sent over TCP while decoding (the kernel's
// per-socket byte counters, read with `ss`), per token: the activation it sends to the next
// stage, or for the last one the token reply to the client, with CAF's message framing;
// "payload" is the encoded activation alone.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <thread>

#include "actors/protocol/actor_system.h"
#include "framework/deploy/deploy.h"
#include "framework/dsl/dsl.h"
#include "models/format/checkpoint.h"
#include "models/runtime/sampler.h"
#include "models/arch/stage_model.h"
#include "models/arch/open_checkpoint.h"
#include "models/machine/openmp_wait_policy.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Daemon {
  pid_t pid = -1;
  uint16_t port = 0;
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port); }
};

Daemon start_daemon(const std::string& bin, const std::string& models_dir, int threads, const std::string& dir, int i) {
  const std::string port_file = dir + "/port" + std::to_string(i);
  const std::string log_file = dir + "/node" + std::to_string(i) + ".log";
  std::vector<std::string> args = {bin,         "--port",          "0",       "--models", models_dir, "--threads",
                                   std::to_string(threads), "--port-file", port_file};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  Daemon d;
  d.pid = fork();
  if (d.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int log_fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log_fd >= 0) dup2(log_fd, 2);
    close_range(3, ~0U, 0);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    std::ifstream in(port_file);
    int port = 0;
    if (in >> port && port > 0) {
      d.port = static_cast<uint16_t>(port);
      return d;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("caf-node did not start; see " + log_file);
}

// Bytes the process has sent over all its TCP connections (the kernel's tcp_info, via ss).
uint64_t tcp_bytes_sent(pid_t pid) {
  FILE* ss = popen("ss -tinpH 2>/dev/null", "r");
  if (ss == nullptr) return 0;
  const std::string owner = "pid=" + std::to_string(pid) + ",";
  uint64_t total = 0;
  bool mine = false;
  char line[4096];
  while (std::fgets(line, sizeof(line), ss) != nullptr) {
    const std::string l(line);
    if (l[0] != ' ' && l[0] != '\t') {  // a connection; its details follow on the next line
      mine = l.find(owner) != std::string::npos;
      continue;
    }
    const auto at = l.find("bytes_sent:");
    if (mine && at != std::string::npos) total += std::stoull(l.substr(at + 11));
  }
  pclose(ss);
  return total;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// Greedy decoding of the whole model in this process; the time of each decode step.
std::vector<double> single_process_steps(const std::string& path, const std::vector<int32_t>& prompt, int n_tokens) {
  std::shared_ptr<const troupe::Checkpoint> ckpt = troupe::open_checkpoint(path);
  auto model = troupe::StageModel::load(ckpt, troupe::whole_model_spec(ckpt->config().n_layer));
  std::vector<double> steps;
  for (int run = 0; run < 2; ++run) {  // the first run warms up
    steps.clear();
    auto cache = model->new_cache(ckpt->config().n_ctx);
    at::Tensor input = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong);
    int64_t pos = 0;
    for (int i = 0; i < n_tokens; ++i) {
      const auto t0 = Clock::now();
      const at::Tensor logits = model->forward(input, pos, *cache).contiguous();
      const int32_t token = troupe::argmax(logits.data_ptr<float>(), logits.size(-1));
      if (i > 0) steps.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      pos += input.size(0);
      input = at::tensor(std::vector<int64_t>{token}, at::kLong);
    }
  }
  return steps;
}

}  // namespace

int main(int argc, char** argv) {
  troupe::use_passive_openmp_wait(argv);  // as caf-node, so that both sides wait alike
  CLI::App app{"Per-token latency: single process against a loopback pipeline of caf-node daemons"};
  std::string models_dir = "../shared/models";
  std::string model = "stories260K/stories260K.gguf";
  std::string prompt = "Once upon a time";
  std::string wire = "f32";
  int stages = 3, n_tokens = 64, threads = 1;
  app.add_option("--models-dir", models_dir)->capture_default_str();
  app.add_option("--model", model, "relative to --models-dir")->capture_default_str();
  app.add_option("--prompt", prompt)->capture_default_str();
  app.add_option("--stages", stages)->capture_default_str();
  app.add_option("--tokens", n_tokens)->capture_default_str();
  app.add_option("--threads", threads, "LibTorch threads, here and in every daemon")->capture_default_str();
  app.add_option("--wire", wire, "f32, f16 or bf16")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  models_dir = fs::absolute(models_dir).string();
  at::set_num_threads(threads);

  const std::string bin = (fs::canonical("/proc/self/exe").parent_path() / "caf-node").string();
  char dir_template[] = "/tmp/troupe-bench-XXXXXX";
  const std::string dir = mkdtemp(dir_template);

  const std::string path = models_dir + "/" + model;
  const int64_t n_layer = troupe::open_checkpoint(path)->config().n_layer;
  stages = static_cast<int>(std::min<int64_t>(stages, n_layer));

  std::vector<Daemon> daemons;
  int status = 0;
  try {
    for (int i = 0; i < stages; ++i) daemons.push_back(start_daemon(bin, models_dir, threads, dir, i));

    caf::actor_system_config cfg;
    troupe::configure_actor_system(cfg);
    caf::actor_system sys{cfg};

    using namespace troupe::dsl;
    PipelineDesc desc;
    desc.tokenizer = tokenizer(model);
    int64_t first = 0;
    for (int i = 0; i < stages; ++i) {
      const int64_t last = first + (n_layer - first) / (stages - i) - 1;
      desc.stages.push_back(stage(model, layers(first, last)).on(daemons[i].endpoint()));
      first = last + 1;
    }
    desc.sampler = sampler(greedy());
    troupe::DeployOptions options;
    options.local_models_dir = models_dir;
    options.wire_dtype = troupe::wire_dtype_from_string(wire);
    troupe::Pipeline p = troupe::deploy(sys, desc, options);
    troupe::GenerateOptions go;
    go.stop_at_eos = false;
    const auto prompt_ids = p.encode(prompt);

    const std::vector<double> single = single_process_steps(path, prompt_ids, n_tokens);

    p.generate_tokens(prompt_ids, 8, greedy(), go);  // warm-up
    // Bytes of a run that only prefills, then of a full run: the difference is the decode steps.
    auto written = [&] {
      std::vector<uint64_t> w;
      for (const auto& d : daemons) w.push_back(tcp_bytes_sent(d.pid));
      return w;
    };
    const auto stats0 = p.stats();
    const auto w0 = written();
    p.generate_tokens(prompt_ids, 1, greedy(), go);
    const auto w1 = written();
    const auto stats1 = p.stats();
    const auto w1b = written();
    const troupe::Generation g = p.generate_tokens(prompt_ids, n_tokens, greedy(), go);
    const auto w2 = written();
    const auto stats2 = p.stats();
    const int decode_steps = static_cast<int>(g.tokens.size()) - 1;
    std::printf("model %s, %d tokens after a %zu-token prompt, %d LibTorch thread(s), wire %s\n", model.c_str(),
                n_tokens, prompt_ids.size(), threads, wire.c_str());
    std::printf("single process        : %.3f ms/token (median %.3f)\n", mean(single), median(single));
    std::printf("%d-stage loopback pipe : %.3f ms/token (median %.3f), prompt %.2f ms\n", stages, mean(g.step_ms),
                median(g.step_ms), g.prefill_ms);
    for (int i = 0; i < stages; ++i) {
      const double wire_bytes =
        static_cast<double>((w2[i] - w1b[i]) - (w1[i] - w0[i])) / static_cast<double>(decode_steps);
      const double payload = static_cast<double>((stats2[i].bytes_out - stats1[i].bytes_out) -
                                                 (stats1[i].bytes_out - stats0[i].bytes_out)) /
                             static_cast<double>(decode_steps);
      const double compute = (stats2[i].compute_ms - stats1[i].compute_ms) / static_cast<double>(decode_steps + 1);
      std::printf("  stage %d (%s): %.3f ms compute/token, sends %s: %.0f bytes on the wire per token (payload %.0f)\n",
                  i, p.stages()[i].describe.c_str(), compute,
                  i + 1 < stages ? "activations to the next stage" : "the token reply to the client", wire_bytes,
                  payload);
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    status = 1;
  }
  for (const auto& d : daemons) {
    kill(d.pid, SIGTERM);
    waitpid(d.pid, nullptr, 0);
  }
  fs::remove_all(dir);
  return status;
}
