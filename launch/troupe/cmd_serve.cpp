// `troupe serve`: the OpenAI-compatible HTTP API.
#include <spdlog/spdlog.h>

#include <csignal>
#include <fstream>
#include <thread>


#include "framework/serve/http_server.h"
#include "framework/serve/pipeline_generator.h"
#include "framework/serve/local_generator.h"
#include "launch/troupe/cli_checks.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "launch/troupe/node_options.h"

namespace troupe::cli {
namespace {

struct ServeCliOptions {
  std::string model;
  std::string port_file;
  NodeOptions distributed;
  ServeOptions serve;
  int threads = 0;
};

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

void wait_for_signal() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

void serve_until_signal(TextGenerator& generator, const ServeCliOptions& o) {
  HttpServer server(generator, o.serve);
  server.start();
  if (!o.port_file.empty()) std::ofstream(o.port_file) << server.port() << "\n";
  wait_for_signal();
  spdlog::info("shutting down");
  server.stop();
}

void run_serve(ServeCliOptions o) {
  set_compute_threads(o.threads);
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(o.model);
  if (o.serve.model_name.empty()) o.serve.model_name = ckpt->config().name;
  if (!o.distributed.used()) {
    LocalGenerator generator(apply_context(ckpt, o.distributed.ctx));
    load_with_progress(o.model, [&](const auto& on_progress) { generator.prefetch_weights(on_progress); });
    return serve_until_signal(generator, o);
  }
  ClientActorSystem sys;
  Pipeline pipeline = deploy_on_nodes(sys.get(), o.distributed, o.model, *ckpt, SamplingOptions{});
  PipelineGenerator generator(pipeline, detect_chat_format(ckpt->has_vocab() ? ckpt->vocab().chat_template : ""));
  serve_until_signal(generator, o);
  pipeline.shutdown();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeCliOptions>();
  o->serve.model_name.clear();
  auto* cmd = app.add_subcommand("serve", "serve an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions)");
  cmd->add_option("--model,-m", o->model, "GGUF file or Hugging Face directory")->required();
  cmd->add_option("--listen", o->serve.listen, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o->serve.port, "port (0: any free port)")->capture_default_str();
  cmd->add_option("--max-in-flight", o->serve.max_in_flight, "generations running at once")->capture_default_str()->check(troupe::cli::positive());
  cmd->add_option("--max-queue", o->serve.max_queue, "requests waiting beyond those (then 429)")->capture_default_str()->check(troupe::cli::non_negative());
  cmd->add_option("--name", o->serve.model_name, "model name reported by /v1/models (default: the model's)");
  cmd->add_option("--alias", o->serve.aliases, "another name requests may use for the model (repeatable)");
  cmd->add_option("--cors-origin", o->serve.cors_origins,
                  "let web pages from this origin (e.g. http://localhost:3000; * for any) call the API (repeatable)");
  cmd->add_flag("!--no-web", o->serve.web_page, "do not serve the chat and cluster page at /");
  cmd->add_option("--ctx,-c", o->distributed.ctx,
                  "context length in tokens (default: the model's; longer only in one process, with a warning)")
      ->check(troupe::cli::positive());
  cmd->add_option("--threads,-t", o->threads, "compute threads (default: all cores)");
  o->distributed.add_to(cmd);
  cmd->add_option("--port-file", o->port_file, "write the bound port to this file once listening (for scripts)");
  cmd->callback([o] { run_reporting_errors([&] { run_serve(*o); }); });
}

}  // namespace troupe::cli
