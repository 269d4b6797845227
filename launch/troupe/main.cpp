// troupe: run a language model split across several machines.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "launch/troupe/cli_checks.h"
#include "launch/troupe/commands.h"
#include "launch/troupe/node_options.h"
#include "models/machine/openmp_wait_policy.h"

int main(int argc, char** argv) {
  troupe::use_passive_openmp_wait(argv);  // a busy laptop core must not stall every matmul
  // Logs go to stderr so that stdout carries only the generated text or the requested output.
  spdlog::set_default_logger(spdlog::stderr_color_mt("troupe"));
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");

  CLI::App app{"troupe: run a language model split across several machines"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "show help for every command");
  app.add_option("--cluster-key", troupe::cli::cluster_key_flag(),
                 "cluster key file for TLS to the nodes (default: $TROUPE_CLUSTER_KEY, else "
                 "~/.config/troupe/cluster.pem if it exists)");
  app.fallthrough();  // so that it may also follow the command: troupe generate ... --cluster-key FILE
  troupe::cli::add_keys_command(app);
  troupe::cli::add_generate_command(app);
  troupe::cli::add_tokenize_command(app);
  troupe::cli::add_perplexity_command(app);
  troupe::cli::add_quantize_command(app);
  troupe::cli::add_split_command(app);
  troupe::cli::add_synth_command(app);
  troupe::cli::add_plan_command(app);
  troupe::cli::add_serve_command(app);
  troupe::cli::add_chat_command(app);
  troupe::cli::add_bench_command(app);
  troupe::cli::add_status_command(app);
  // `troupe help [command]`, and --version on the program and every command.
  std::string help_topic;
  auto* help = app.add_subcommand("help", "show the help of troupe or of one command (troupe help generate)");
  help->add_option("command", help_topic, "the command");
  help->callback([&] {
    if (help_topic.empty()) {
      // app.help() would show the selected command's (help's own) text.
      std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
      return;
    }
    for (auto* sub : app.get_subcommands({}))
      if (sub->get_name() == help_topic && sub != help) {
        std::cout << sub->help();
        return;
      }
    std::cerr << "troupe: no command '" << help_topic << "'; `troupe help` lists them\n";
    std::exit(2);
  });
  const std::string version = troupe::cli::version_text("troupe");
  app.set_version_flag("--version", version);
  for (auto* sub : app.get_subcommands({})) sub->set_version_flag("--version", version);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
