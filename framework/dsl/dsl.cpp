#include "framework/dsl/dsl.h"

#include <set>
#include <stdexcept>

namespace troupe {
namespace dsl {

LayerRange layers(int64_t first, int64_t last) {
  if (first < 0 || last < first)
    throw std::invalid_argument("layers(" + std::to_string(first) + ", " + std::to_string(last) +
                                "): expected 0 <= first <= last");
  return {first, last};
}

StageDesc StageDesc::on(const std::string& host_port) const {
  StageDesc s = *this;
  s.endpoint = host_port;
  return s;
}

StageDesc StageDesc::wire(WireDType dtype) const {
  if (dtype == WireDType::i32) throw std::invalid_argument("activations go as f32, f16 or bf16, not i32");
  StageDesc s = *this;
  s.wire_dtype = dtype;
  return s;
}

StageDesc StageDesc::with_threads(int32_t n) const {
  StageDesc s = *this;
  s.threads = n;
  return s;
}

PlannedStagesDesc PlannedStagesDesc::on(std::vector<std::string> host_ports) const {
  PlannedStagesDesc p = *this;
  p.nodes = std::move(host_ports);
  return p;
}

PlannedStagesDesc PlannedStagesDesc::for_sessions(int32_t n) const {
  if (n < 1) throw std::invalid_argument("for_sessions(" + std::to_string(n) + "): expected at least 1 session");
  PlannedStagesDesc p = *this;
  p.sessions = n;
  return p;
}

PlannedStagesDesc PlannedStagesDesc::wire(WireDType dtype) const {
  if (dtype == WireDType::i32) throw std::invalid_argument("activations go as f32, f16 or bf16, not i32");
  PlannedStagesDesc p = *this;
  p.wire_dtype = dtype;
  return p;
}

PlannedStagesDesc PlannedStagesDesc::with_threads(int32_t n) const {
  PlannedStagesDesc p = *this;
  p.threads = n;
  return p;
}

TokenizerDesc tokenizer(std::string model) { return {std::move(model)}; }

StageDesc stage(std::string model, LayerRange range) {
  StageDesc s;
  s.model = std::move(model);
  s.range = range;
  return s;
}

PlannedStagesDesc planned_stages(std::string model) {
  PlannedStagesDesc p;
  p.model = std::move(model);
  return p;
}

SamplerDesc sampler(SamplingOptions options) { return {options}; }

SamplingOptions greedy() {
  SamplingOptions o;
  o.temperature = 0.0f;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.repeat_penalty = 1.0f;
  return o;
}

PipelineDesc operator>>(TokenizerDesc t, StageDesc s) {
  PipelineDesc p;
  p.tokenizer = std::move(t);
  p.stages.push_back(std::move(s));
  return p;
}

PipelineDesc operator>>(StageDesc a, StageDesc b) {
  PipelineDesc p;
  p.stages.push_back(std::move(a));
  p.stages.push_back(std::move(b));
  return p;
}

PipelineDesc operator>>(StageDesc s, SamplerDesc sampler) {
  PipelineDesc p;
  p.stages.push_back(std::move(s));
  p.sampler = std::move(sampler);
  return p;
}

PipelineDesc operator>>(PipelineDesc p, StageDesc s) {
  if (p.sampler) throw std::invalid_argument("the sampler ends a pipeline: no stage can follow it");
  if (p.planned)
    throw std::invalid_argument("planned_stages(" + p.planned->model +
                                ") places every layer: no explicit stage can follow it");
  p.stages.push_back(std::move(s));
  return p;
}

PipelineDesc operator>>(PipelineDesc p, SamplerDesc sampler) {
  if (p.sampler) throw std::invalid_argument("a pipeline has one sampler");
  p.sampler = std::move(sampler);
  return p;
}

PipelineDesc operator>>(TokenizerDesc t, PlannedStagesDesc s) {
  PipelineDesc p;
  p.tokenizer = std::move(t);
  p.planned = std::move(s);
  return p;
}

PipelineDesc operator>>(PlannedStagesDesc s, SamplerDesc sampler) {
  PipelineDesc p;
  p.planned = std::move(s);
  p.sampler = std::move(sampler);
  return p;
}

PipelineDesc operator>>(PipelineDesc p, PlannedStagesDesc s) {
  if (p.sampler) throw std::invalid_argument("the sampler ends a pipeline: no stage can follow it");
  if (!p.stages.empty() || p.planned)
    throw std::invalid_argument("planned_stages(" + s.model +
                                ") places every layer: it cannot follow other stages (give either explicit "
                                "stages or one planned_stages)");
  p.planned = std::move(s);
  return p;
}

namespace {

void validate_planned(const PlannedStagesDesc& p) {
  const std::string what = "planned_stages(" + p.model + ")";
  if (p.model.empty()) throw std::invalid_argument("planned_stages names no model");
  if (p.nodes.empty())
    throw std::invalid_argument(what + " names no nodes: give them with .on({\"host:port\", ...})");
  std::set<std::string> seen;
  for (const std::string& n : p.nodes) {
    if (n.empty()) throw std::invalid_argument(what + ": empty node name");
    if (!seen.insert(n).second) throw std::invalid_argument(what + ": node " + n + " is named twice");
  }
  if (p.sessions < 1)
    throw std::invalid_argument(what + ": " + std::to_string(p.sessions) + " sessions, expected at least 1");
}

}  // namespace

void PipelineDesc::validate() const {
  if (planned) {
    if (!stages.empty())
      throw std::invalid_argument("a pipeline is either explicit stages or one planned_stages, not both: this one has " +
                                  std::to_string(stages.size()) + (stages.size() == 1 ? " stage" : " stages") +
                                  " and planned_stages(" + planned->model + ")");
    validate_planned(*planned);
    return;
  }
  if (stages.empty()) throw std::invalid_argument("a pipeline needs at least one stage (stage(...) or planned_stages(...))");
  int64_t expected = 0;
  for (size_t i = 0; i < stages.size(); ++i) {
    const StageDesc& s = stages[i];
    if (s.range.first != expected)
      throw std::invalid_argument("stage " + std::to_string(i) + " starts at layer " + std::to_string(s.range.first) +
                                  ", expected layer " + std::to_string(expected) +
                                  " (stages must cover the layers in order, without gaps or overlaps)");
    if (s.range.last < s.range.first)
      throw std::invalid_argument("stage " + std::to_string(i) + " has no layers");
    if (s.model.empty()) throw std::invalid_argument("stage " + std::to_string(i) + " names no model");
    expected = s.range.last + 1;
  }
}

std::string PipelineDesc::describe() const {
  std::string out;
  if (tokenizer) out += "tokenizer(" + tokenizer->model + ") >> ";
  for (const StageDesc& s : stages) {
    out += "stage(" + s.model + ", " + std::to_string(s.range.first) + "-" + std::to_string(s.range.last) + ") @ " +
           (s.endpoint.empty() ? std::string("local") : s.endpoint) + " >> ";
  }
  if (planned) {
    std::string nodes;
    for (const std::string& n : planned->nodes) nodes += (nodes.empty() ? "" : ", ") + n;
    out += "planned_stages(" + planned->model + ") @ {" + nodes + "}" +
           (planned->sessions > 1 ? " for " + std::to_string(planned->sessions) + " sessions" : "") + " >> ";
  }
  if (sampler) {
    const SamplingOptions& o = sampler->options;
    out += o.temperature == 0.0f ? std::string("sampler(greedy)")
                                 : "sampler(temperature " + std::to_string(o.temperature) + ")";
  } else if (out.size() >= 4) {
    out.resize(out.size() - 4);
  }
  return out;
}

}  // namespace dsl
}  // namespace troupe
