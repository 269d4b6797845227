// A 3-node pipeline written with the DSL. Start three daemons first, e.g. on one machine:
//
//   caf-node --port 7001 --models ../shared/models &
//   caf-node --port 7002 --models ../shared/models &
//   caf-node --port 7003 --models ../shared/models &
//   three_node_pipeline 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003 --model stories260K/stories260K.gguf --tokenizer ../shared/models/stories260K/stories260K.gguf
//
// The model path is relative to each node's --models dir; the tokenizer is read here.
// The layers are split as evenly as possible over the three nodes.
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <CLI/CLI.hpp>
#include <iostream>

#include "actors/protocol/actor_system.h"
#include "framework/deploy/deploy.h"
#include "framework/dsl/dsl.h"
#include "models/format/checkpoint.h"
#include "models/arch/open_checkpoint.h"

int main(int argc, char** argv) {
  CLI::App app{"Generates text through a pipeline of three caf-node daemons"};
  std::vector<std::string> nodes;
  std::string model = "stories260K/stories260K.gguf";
  std::string tokenizer_path;
  std::string prompt = "Once upon a time";
  int n_tokens = 64;
  float temperature = 0.0f;
  app.add_option("nodes", nodes, "three nodes, host:port")->required()->expected(3);
  app.add_option("--model", model, "model, relative to the nodes' --models dir")->capture_default_str();
  app.add_option("--tokenizer", tokenizer_path, "model file or dir to read the vocabulary from, here")->required();
  app.add_option("--prompt", prompt)->capture_default_str();
  app.add_option("-n,--tokens", n_tokens)->capture_default_str();
  app.add_option("--temperature", temperature, "0: greedy")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  caf::actor_system_config cfg;
  troupe::configure_actor_system(cfg);
  caf::actor_system sys{cfg};

  const int64_t n_layer = troupe::open_checkpoint(tokenizer_path)->config().n_layer;
  const int64_t a = n_layer / 3 + (n_layer % 3 > 0 ? 1 : 0) - 1;
  const int64_t b = a + n_layer / 3 + (n_layer % 3 > 1 ? 1 : 0);

  using namespace troupe::dsl;
  troupe::SamplingOptions sampling = temperature == 0.0f ? greedy() : troupe::SamplingOptions{};
  if (temperature != 0.0f) sampling.temperature = temperature;
  const PipelineDesc desc = tokenizer(tokenizer_path)                       //
                            >> stage(model, layers(0, a)).on(nodes[0])      //
                            >> stage(model, layers(a + 1, b)).on(nodes[1])  //
                            >> stage(model, layers(b + 1, n_layer - 1)).on(nodes[2]) >> sampler(sampling);
  try {
    troupe::Pipeline pipeline = troupe::deploy(sys, desc);
    std::cerr << desc.describe() << "\n";
    std::cout << prompt << std::flush;
    const auto g = pipeline.generate(prompt, n_tokens, [](int32_t, const std::string& piece) { std::cout << piece << std::flush; });
    std::cout << "\n";
    double total = 0;
    for (double ms : g.step_ms) total += ms;
    std::cerr << g.tokens.size() << " tokens; prompt " << g.prefill_ms << " ms, then "
              << (g.step_ms.empty() ? 0.0 : total / g.step_ms.size()) << " ms per token\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
