#pragma once
// Describing a pipeline:
//
//   using namespace troupe::dsl;
//   auto desc = tokenizer("stories260K/stories260K.gguf")
//            >> stage("stories260K/stories260K.gguf", layers(0, 2)).on("10.0.0.2:7000")
//            >> stage("stories260K/stories260K.gguf", layers(3, 4)).on("10.0.0.3:7000")
//            >> sampler(greedy());
//
// or, letting the planner (framework/placement.h) choose the split when deploy() runs:
//
//   auto desc = tokenizer("stories260K/stories260K.gguf")
//            >> planned_stages("stories260K/stories260K.gguf").on({"10.0.0.2:7000", "10.0.0.3:7000"})
//            >> sampler(greedy());
//
// A description is plain data: nothing connects or loads until deploy() (framework/deploy.h).
// Stage model paths are relative to the --models dir of the node that runs the stage (or,
// without .on(), to DeployOptions::local_models_dir in the client); the tokenizer is always
// loaded in the client. The first stage gets the token embedding, the last the head.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "actors/protocol/wire_tensor.h"
#include "models/runtime/sampler.h"

namespace troupe {
namespace dsl {

struct LayerRange {
  int64_t first = 0;
  int64_t last = -1;  // inclusive
};
// Transformer blocks first..last, inclusive: layers(4, 4) is one block.
LayerRange layers(int64_t first, int64_t last);

struct TokenizerDesc {
  std::string model;
};

struct StageDesc {
  std::string model;
  LayerRange range;
  std::string endpoint;                 // "host:port" of a caf-node; empty: in the client process
  std::optional<WireDType> wire_dtype;  // of the activations it sends; unset: DeployOptions::wire_dtype
  int32_t threads = 0;                  // LibTorch threads; 0: the node's default

  StageDesc on(const std::string& host_port) const;
  StageDesc wire(WireDType dtype) const;
  StageDesc with_threads(int32_t n) const;
};

// One model over a set of nodes, split by the planner when deploy() runs: it asks each node
// its memory and speed, reads the model's tensor table in the client, and makes one stage per
// node it uses (in the order it chooses; a node that would only slow the pipeline is left
// out). framework/deploy_planning.h turns it into StageDescs.
struct PlannedStagesDesc {
  std::string model;
  std::vector<std::string> nodes;       // "host:port" of the caf-nodes to choose from
  int32_t sessions = 1;                 // concurrent sessions whose KV caches must fit
  std::optional<WireDType> wire_dtype;  // of every stage; unset: DeployOptions::wire_dtype
  int32_t threads = 0;                  // LibTorch threads of every stage; 0: each node's default

  PlannedStagesDesc on(std::vector<std::string> host_ports) const;
  PlannedStagesDesc for_sessions(int32_t n) const;
  PlannedStagesDesc wire(WireDType dtype) const;
  PlannedStagesDesc with_threads(int32_t n) const;
};

struct SamplerDesc {
  SamplingOptions options;
};

// Either explicit `stages` or one `planned` part, not both.
struct PipelineDesc {
  std::optional<TokenizerDesc> tokenizer;
  std::vector<StageDesc> stages;
  std::optional<PlannedStagesDesc> planned;
  std::optional<SamplerDesc> sampler;

  // Throws std::invalid_argument unless the stages cover layers 0..k contiguously, in order,
  // or the planned part names a model and distinct nodes (and there are no explicit stages).
  void validate() const;
  // One line, e.g. "tokenizer(m) >> stage(m, 0-2) @ host:port >> stage(m, 3-4) @ local >> sampler(greedy)"
  // or "tokenizer(m) >> planned_stages(m) @ {a:1, b:2} >> sampler(greedy)".
  std::string describe() const;
};

TokenizerDesc tokenizer(std::string model);
StageDesc stage(std::string model, LayerRange range);
// The model's layers over nodes to be named with .on({...}), split at deploy time.
PlannedStagesDesc planned_stages(std::string model);
SamplerDesc sampler(SamplingOptions options = {});
// Options for greedy decoding (always the most likely token).
SamplingOptions greedy();

PipelineDesc operator>>(TokenizerDesc t, StageDesc s);
PipelineDesc operator>>(StageDesc a, StageDesc b);
PipelineDesc operator>>(StageDesc s, SamplerDesc sampler);
PipelineDesc operator>>(PipelineDesc p, StageDesc s);
PipelineDesc operator>>(PipelineDesc p, SamplerDesc sampler);
PipelineDesc operator>>(TokenizerDesc t, PlannedStagesDesc s);
PipelineDesc operator>>(PlannedStagesDesc s, SamplerDesc sampler);
PipelineDesc operator>>(PipelineDesc p, PlannedStagesDesc s);

}  // namespace dsl
}  // namespace troupe
