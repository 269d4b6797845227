#pragma once
// From what a user types (a model, a list of nodes, optional layer ranges) to a pipeline
// description: one stage per node, in order, the tokenizer in the client, the sampler
// after the last stage. Shared by `troupe generate`, `serve` and `bench`.
#include <string>
#include <vector>

#include "framework/dsl/dsl.h"
#include "models/arch/stage_spec.h"

namespace troupe {

struct PipelineRequest {
  std::string model;               // path as the nodes resolve it (relative to their --models, or absolute)
  std::string tokenizer_model;     // path here, for the vocabulary and the layer count
  std::vector<std::string> nodes;  // "host:port", one stage each, in pipeline order
  std::string layers;              // "0-1,2-3,4-4"; empty: split evenly
  WireDType wire = WireDType::f32;
  SamplingOptions sampling;
};

// "a:1,b:2" -> {"a:1", "b:2"} (empty items are an error).
std::vector<std::string> split_node_list(const std::string& text);

// Throws std::invalid_argument when the ranges do not match the number of nodes.
dsl::PipelineDesc describe_pipeline(const PipelineRequest& request, int64_t n_layer);

}  // namespace troupe
