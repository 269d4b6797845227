#include "framework/serve/pipeline_generator.h"

#include <map>
#include <sstream>

namespace troupe {

namespace {

// A Prometheus label value: backslash, quote and newline escaped.
std::string label_value(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

}  // namespace

PipelineGenerator::PipelineGenerator(const Pipeline& pipeline, ChatTemplate chat_template)
    : pipeline_(pipeline), chat_template_(std::move(chat_template)) {}

std::vector<int32_t> PipelineGenerator::encode(const std::string& text) const { return pipeline_.encode(text); }

int64_t PipelineGenerator::max_positions() const { return pipeline_.max_positions(); }

GenerationOutcome PipelineGenerator::generate(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                              const SamplingOptions& sampling, const PieceHandler& on_piece) {
  GenerationOutcome outcome;
  bool keep_going = true;
  GenerateOptions options;
  options.keep_going = [&] { return keep_going; };
  pipeline_.generate_tokens(prompt, max_tokens, sampling, options, [&](int32_t token, const std::string& piece) {
    ++outcome.completion_tokens;
    if (pipeline_.is_stop(token)) {
      outcome.hit_eos = true;
      return;
    }
    if (!on_piece(piece)) {
      outcome.cancelled = true;
      keep_going = false;
    }
  });
  return outcome;
}

ServiceHealth PipelineGenerator::health() const {
  const PipelineHealth h = pipeline_.health();
  return ServiceHealth{to_string(h.state), h.detail};
}

int64_t PipelineGenerator::n_vocab() const { return pipeline_.n_vocab(); }

std::string PipelineGenerator::token_bytes(int32_t token) const { return pipeline_.decode({token}); }

ClusterStatus PipelineGenerator::status() const {
  ClusterStatus c;
  for (const auto& s : pipeline_.stats()) {
    StageStatus st;
    st.node = s.node;
    st.layers = s.describe;
    st.sessions = s.sessions;
    st.cache_bytes = s.cache_bytes;
    st.steps = s.steps;
    st.compute_ms = s.compute_ms;
    st.tokens_per_s = s.recent_tokens_per_s;
    st.hop_rtt_ms = s.next_rtt_ms;
    c.stages.push_back(std::move(st));
  }
  for (const auto& r : pipeline_.recoveries())
    c.recoveries.push_back(r.stage + " " + r.kind + " on " + (r.from_node.empty() ? "this process" : r.from_node) +
                           ", moved to " + r.to_node + " in " + std::to_string(static_cast<int64_t>(r.restore_ms)) +
                           " ms: " + r.cause);
  c.standby = pipeline_.standby_nodes();
  return c;
}

std::string PipelineGenerator::stage_metrics() const {
  std::ostringstream m;
  // Recoveries first: they are known even while a stage cannot answer.
  std::map<std::string, std::pair<int, double>> by_kind{{"down", {0, 0.0}}, {"hung", {0, 0.0}},
                                                        {"exception", {0, 0.0}}, {"returned", {0, 0.0}}};
  for (const auto& r : pipeline_.recoveries()) {
    auto& k = by_kind[r.kind];
    ++k.first;
    k.second += (r.restore_ms + r.replay_ms) / 1e3;
  }
  m << "# HELP troupe_recoveries_total stage failures repaired (returned: a stage moved back to its node)\n"
    << "# TYPE troupe_recoveries_total counter\n";
  for (const auto& [kind, v] : by_kind) m << "troupe_recoveries_total{kind=\"" << kind << "\"} " << v.first << "\n";
  m << "# HELP troupe_recovery_seconds_total time from detection to the stage wired in, plus the longest replay\n"
    << "# TYPE troupe_recovery_seconds_total counter\n";
  for (const auto& [kind, v] : by_kind) m << "troupe_recovery_seconds_total{kind=\"" << kind << "\"} " << v.second << "\n";
  const SpeculationStats spec = pipeline_.speculation();
  if (spec.draft_tokens > 0) {
    m << "# HELP troupe_speculative_drafter what drafts: prompt lookup, or a draft model (its path)\n"
      << "# TYPE troupe_speculative_drafter gauge\ntroupe_speculative_drafter{drafter=\"" << label_value(spec.drafter)
      << "\"} 1\n";
    m << "# HELP troupe_speculative_draft_tokens_total tokens drafted and verified by the pipeline\n"
      << "# TYPE troupe_speculative_draft_tokens_total counter\ntroupe_speculative_draft_tokens_total " << spec.drafted
      << "\n# HELP troupe_speculative_accepted_tokens_total drafted tokens kept (each one a pass saved)\n"
      << "# TYPE troupe_speculative_accepted_tokens_total counter\ntroupe_speculative_accepted_tokens_total "
      << spec.accepted << "\n# HELP troupe_speculative_acceptance_rate accepted / drafted tokens so far\n"
      << "# TYPE troupe_speculative_acceptance_rate gauge\ntroupe_speculative_acceptance_rate "
      << (spec.drafted ? static_cast<double>(spec.accepted) / static_cast<double>(spec.drafted) : 0.0) << "\n";
  }
  const PipelineHealth h = pipeline_.health();
  m << "# HELP troupe_pipeline_degraded 1 while a stage runs away from its node or is being repaired, 2 when unavailable\n"
    << "# TYPE troupe_pipeline_degraded gauge\ntroupe_pipeline_degraded " << static_cast<int>(h.state) << "\n";
  std::vector<proto::StageStats> stats;
  try {
    stats = pipeline_.stats();
  } catch (const std::exception&) {
    return m.str();  // a stage is down: its statistics come back with its repair
  }
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    m << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    for (size_t i = 0; i < stats.size(); ++i)
      m << name << "{stage=\"" << i << "\",node=\"" << stats[i].node << "\",layers=\"" << stats[i].describe << "\"} "
        << value(stats[i]) << "\n";
  };
  family("troupe_stage_compute_seconds_total", "counter", "time the stage spent in forward passes",
         [](const proto::StageStats& s) { return s.compute_ms / 1e3; });
  family("troupe_stage_steps_total", "counter", "activations the stage handled",
         [](const proto::StageStats& s) { return static_cast<double>(s.steps); });
  family("troupe_stage_bytes_sent_total", "counter", "activation bytes sent to the next stage (the hop after it)",
         [](const proto::StageStats& s) { return static_cast<double>(s.bytes_out); });
  family("troupe_stage_bytes_received_total", "counter", "activation bytes received (the hop before it)",
         [](const proto::StageStats& s) { return static_cast<double>(s.bytes_in); });
  family("troupe_stage_sessions", "gauge", "sessions holding a KV cache on the stage",
         [](const proto::StageStats& s) { return static_cast<double>(s.sessions); });
  family("troupe_stage_forward_passes_total", "counter",
         "forward passes of the stage (steps / passes: sessions batched per pass)",
         [](const proto::StageStats& s) { return static_cast<double>(s.batches); });
  family("troupe_stage_tokens_per_second", "gauge", "activations per second over the last 10 s",
         [](const proto::StageStats& s) { return s.recent_tokens_per_s; });
  family("troupe_hop_rtt_seconds", "gauge",
         "round trip of a ping from the stage to the next one while idle (the hop's latency x 2; -1: last stage "
         "or not measured yet)",
         [](const proto::StageStats& s) { return s.next_rtt_ms < 0 ? -1.0 : s.next_rtt_ms / 1e3; });
  return m.str();
}

}  // namespace troupe
