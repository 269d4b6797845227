// `troupe chat`: an interactive conversation with a model, in this process or over caf-node
// daemons. The history is sent again each turn through the model's chat template; /reset
// forgets it; Ctrl-C stops the answer being written (not the program); Ctrl-D or /quit leaves.
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <random>

#include "framework/serve/local_generator.h"
#include "framework/serve/pipeline_generator.h"
#include "framework/serve/stop_sequences.h"
#include "launch/troupe/cli_checks.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "launch/troupe/node_options.h"
#include "models/arch/open_checkpoint.h"

namespace troupe::cli {
namespace {

struct ChatOptions {
  std::string model;
  std::string system;
  NodeOptions distributed;
  int64_t max_tokens = 512;
  SamplingOptions sampling;
  int64_t seed = -1;
  int threads = 0;
};

volatile sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

// SIGINT sets a flag instead of ending the program: an answer being written stops, and at the
// prompt read_line sees it and gives a new prompt.
void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
}

void print(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// Reads one line from standard input; false at end of input. Ctrl-C at the prompt gives an
// empty line. The flag is looked at every 50 ms rather than trusted to interrupt the read:
// SIGINT goes to any thread of the process (LibTorch's, CAF's), whose read is then not
// interrupted, and one that lands just before the read would not interrupt it either.
bool read_line(std::string& line) {
  line.clear();
  for (;;) {
    if (g_interrupted) {
      g_interrupted = 0;
      print("\n(Ctrl-D or /quit leaves)\n");
      line.clear();
      return true;
    }
    pollfd p{STDIN_FILENO, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;  // nothing yet, or a signal: look at the flag again
    char c;
    const ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return !line.empty();
    if (c == '\n') return true;
    line += c;
  }
}

void chat_loop(TextGenerator& gen, const ChatOptions& o, SamplingOptions sampling) {
  std::vector<ChatMessage> history;
  if (!o.system.empty()) history.push_back({"system", o.system});
  const size_t kept = history.size();
  const ChatTemplate& chat_template = gen.chat_template();
  print("troupe chat: " + std::to_string(gen.max_positions()) +
        "-token context. /reset forgets the conversation, Ctrl-C stops an answer, Ctrl-D or /quit leaves.\n");
  std::string line;
  uint64_t turn = 0;
  for (;;) {
    print("> ");
    if (!read_line(line)) break;
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      history.resize(kept);
      print("(conversation forgotten)\n");
      continue;
    }
    if (line == "/help") {
      print("/reset forgets the conversation, /quit leaves; Ctrl-C stops an answer.\n");
      continue;
    }
    history.push_back({"user", line});
    // Drop the oldest turns (not the system prompt) until the prompt leaves room to answer.
    std::vector<int32_t> prompt = gen.encode(render_chat(chat_template, history));
    const int64_t room = std::min<int64_t>(o.max_tokens, gen.max_positions() / 4);
    while (static_cast<int64_t>(prompt.size()) + room > gen.max_positions() && history.size() > kept + 1) {
      history.erase(history.begin() + static_cast<std::ptrdiff_t>(kept));
      prompt = gen.encode(render_chat(chat_template, history));
    }
    if (static_cast<int64_t>(prompt.size()) >= gen.max_positions()) {
      history.pop_back();
      print("(that message does not fit the context of " + std::to_string(gen.max_positions()) + " tokens)\n");
      continue;
    }
    g_interrupted = 0;
    sampling.seed += ++turn;
    StopSequences stops({end_of_turn(chat_template.format)});
    std::string answer;
    const int64_t max_tokens = std::min<int64_t>(o.max_tokens, gen.max_positions() - static_cast<int64_t>(prompt.size()));
    gen.generate(prompt, max_tokens, sampling, [&](const std::string& piece) {
      const std::string text = stops.push(piece);
      answer += text;
      print(text);
      return !stops.stopped() && !g_interrupted;
    });
    if (!stops.stopped() && !g_interrupted) {
      const std::string rest = stops.flush();
      answer += rest;
      print(rest);
    }
    if (g_interrupted) print(" [stopped]");
    g_interrupted = 0;
    print("\n");
    history.push_back({"assistant", answer});
  }
  print("\n");
}

void run_chat(const ChatOptions& o) {
  set_compute_threads(o.threads);
  SamplingOptions sampling = o.sampling;
  sampling.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(o.model);
  catch_interrupts();
  if (!o.distributed.used()) {
    if (!o.distributed.layers.empty()) throw std::invalid_argument("--layers needs --nodes");
    o.distributed.check_single_process();
    LocalGenerator generator(apply_context(ckpt, o.distributed.ctx));
    load_with_progress(o.model, [&](const auto& on_progress) { generator.prefetch_weights(on_progress); });
    return chat_loop(generator, o, sampling);
  }
  ClientActorSystem sys;
  Pipeline pipeline = deploy_on_nodes(sys.get(), o.distributed, o.model, *ckpt, sampling);
  PipelineGenerator generator(pipeline, read_chat_template(ckpt->has_vocab() ? ckpt->vocab().chat_template : ""));
  chat_loop(generator, o, sampling);
  pipeline.shutdown();
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  auto* cmd = app.add_subcommand("chat", "talk with a model (the model's chat template; /reset, Ctrl-C stops an answer)");
  cmd->add_option("--model,-m", o->model, "GGUF file or Hugging Face directory")->required();
  cmd->add_option("--system", o->system, "system prompt");
  cmd->add_option("-n,--max-tokens", o->max_tokens, "longest answer in tokens")->capture_default_str()->check(positive());
  add_sampling_context_thread_flags(cmd, o->sampling, o->seed, o->distributed.ctx, o->threads);
  o->distributed.add_to(cmd);
  cmd->callback([o] { run_reporting_errors([&] { run_chat(*o); }); });
}

}  // namespace troupe::cli
