// `troupe serve`: the OpenAI-compatible HTTP API.
#include <spdlog/spdlog.h>

#include <csignal>
#include <fstream>
#include <optional>
#include <thread>


#include "actors/protocol/cluster_key.h"
#include "framework/serve/http_server.h"
#include "framework/serve/pipeline_generator.h"
#include "framework/serve/local_generator.h"
#include "launch/troupe/cli_checks.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "launch/troupe/joining_nodes.h"
#include "launch/troupe/node_options.h"
#include "models/arch/open_checkpoint.h"

namespace troupe::cli {
namespace {

struct ServeCliOptions {
  std::string model;
  std::string api_key_file;
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

// The key from --api-key or --api-key-file (its first line, without surrounding blanks); a
// server reachable beyond this machine must have one.
void resolve_api_key(ServeCliOptions& o) {
  if (!o.api_key_file.empty()) {
    if (!o.serve.api_key.empty()) throw std::runtime_error("give --api-key or --api-key-file, not both");
    std::ifstream in(o.api_key_file);
    if (!in) throw std::runtime_error(o.api_key_file + ": cannot read the API key file");
    std::getline(in, o.serve.api_key);
    const auto first = o.serve.api_key.find_first_not_of(" \t\r");
    const auto last = o.serve.api_key.find_last_not_of(" \t\r");
    o.serve.api_key = first == std::string::npos ? "" : o.serve.api_key.substr(first, last - first + 1);
    if (o.serve.api_key.empty()) throw std::runtime_error(o.api_key_file + ": the API key file is empty");
  }
  if (o.serve.api_key.empty() && !is_loopback_address(o.serve.listen))
    throw std::runtime_error("serve --listen " + o.serve.listen +
                             " needs --api-key KEY or --api-key-file FILE: without one anyone who can reach the "
                             "port can use the model (only loopback addresses may run without a key)");
}

void run_serve(ServeCliOptions o) {
  resolve_api_key(o);
  set_compute_threads(o.threads);
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(o.model);
  if (o.serve.model_name.empty()) o.serve.model_name = ckpt->config().name;
  if (!o.distributed.used()) {
    o.distributed.check_single_process();
    LocalGenerator generator(apply_context(ckpt, o.distributed.ctx));
    load_with_progress(o.model, [&](const auto& on_progress) { generator.prefetch_weights(on_progress); });
    return serve_until_signal(generator, o);
  }
  ClientActorSystem sys;
  Pipeline pipeline = deploy_on_nodes(sys.get(), o.distributed, o.model, *ckpt, SamplingOptions{});
  std::optional<JoiningNodes> joining;  // with --discover, a node heard later stands by
  if (o.distributed.discovery.discover)
    joining.emplace(pipeline, find_cluster_key(cluster_key_flag()), o.distributed.discovery.port);
  PipelineGenerator generator(pipeline, read_chat_template(ckpt->has_vocab() ? ckpt->vocab().chat_template : ""));
  serve_until_signal(generator, o);
  joining.reset();
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
  cmd->add_option("--api-key", o->serve.api_key,
                  "require 'Authorization: Bearer KEY' on every route but /health (needed beyond loopback)");
  cmd->add_option("--api-key-file", o->api_key_file, "read the API key from the first line of this file");
  cmd->add_option("--max-body", o->serve.max_body_bytes, "largest request body in bytes (then 413)")->capture_default_str();
  cmd->add_option("--max-connections", o->serve.max_connections, "HTTP connections at once (then 503)")
      ->capture_default_str()->check(troupe::cli::positive());
  cmd->add_option("--header-timeout-ms", o->serve.header_timeout_ms, "time a client has to send its request headers")
      ->capture_default_str()->check(troupe::cli::positive());
  cmd->add_option("--body-timeout-ms", o->serve.body_timeout_ms, "time a client has to send its request body")
      ->capture_default_str()->check(troupe::cli::positive());
  o->distributed.add_to(cmd);
  cmd->add_option("--port-file", o->port_file, "write the bound port to this file once listening (for scripts)");
  cmd->callback([o] { run_reporting_errors([&] { run_serve(*o); }); });
}

}  // namespace troupe::cli
