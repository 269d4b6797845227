#include "framework/deploy/pipeline_plan.h"

#include <sstream>
#include <stdexcept>

namespace troupe {

std::vector<std::string> split_node_list(const std::string& text) {
  std::vector<std::string> nodes;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) throw std::invalid_argument("empty entry in the node list '" + text + "'");
    nodes.push_back(item);
  }
  if (nodes.empty()) throw std::invalid_argument("no nodes given");
  return nodes;
}

dsl::PipelineDesc describe_pipeline(const PipelineRequest& r, int64_t n_layer) {
  const auto specs = r.layers.empty() ? even_split(n_layer, static_cast<int64_t>(r.nodes.size()))
                                      : parse_layer_ranges(r.layers, n_layer);
  if (specs.size() != r.nodes.size())
    throw std::invalid_argument(std::to_string(specs.size()) + " layer ranges for " + std::to_string(r.nodes.size()) +
                                " nodes: give one range per node");
  dsl::PipelineDesc desc;
  desc.tokenizer = dsl::tokenizer(r.tokenizer_model);
  for (size_t i = 0; i < specs.size(); ++i)
    desc = desc >> dsl::stage(r.model, dsl::layers(specs[i].layer_first, specs[i].layer_last)).on(r.nodes[i]).wire(r.wire);
  return desc >> dsl::sampler(r.sampling);
}

}  // namespace troupe
