// `troupe split`: one GGUF shard per stage, so each laptop stores only its part.
#include <spdlog/spdlog.h>

#include <iostream>

#include "launch/troupe/cli_checks.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "models/format/checkpoint.h"
#include "models/convert/model_split.h"
#include "models/arch/open_checkpoint.h"

namespace troupe::cli {
namespace {

struct SplitOptions {
  std::string model, out, layers, type;
  int64_t stages = 0;
};

void run_split(const SplitOptions& o) {
  const auto ckpt = open_checkpoint(o.model);
  const int64_t n_layer = ckpt->config().n_layer;
  const auto specs = o.layers.empty() ? even_split(n_layer, o.stages) : parse_layer_ranges(o.layers, n_layer);
  const QuantRecipe* recipe = o.type.empty() ? nullptr : &quant_recipe(o.type);
  const auto paths = write_stage_shards(o.model, specs, o.out, recipe);
  for (size_t i = 0; i < paths.size(); ++i) std::cout << paths[i] << "\t" << specs[i].describe() << "\n";
}

}  // namespace

void add_split_command(CLI::App& app) {
  auto o = std::make_shared<SplitOptions>();
  auto* cmd = app.add_subcommand("split", "write one GGUF file per stage holding only that stage's tensors");
  cmd->add_option("--model,-m", o->model, "GGUF file or Hugging Face directory")->required();
  auto* stages = cmd->add_option("--stages,-k", o->stages, "number of stages (even split)")->check(troupe::cli::positive());
  auto* layers = cmd->add_option("--layers", o->layers, "inclusive layer ranges, one per stage: 0-1,2-3,4-4");
  stages->excludes(layers);
  cmd->add_option("--out,-o", o->out, "output directory")->required();
  cmd->add_option("--type", o->type, "quantize while writing, as `troupe quantize --type` (q4_k_m, q8_0, ...)");
  cmd->callback([o, stages, layers] {
    run_reporting_errors([&] {
      if (!stages->count() && !layers->count()) throw std::invalid_argument("give --stages or --layers");
      run_split(*o);
    });
  });
}

}  // namespace troupe::cli
