#pragma once
// What the HTTP server needs from a model: tokenize, generate with streaming and
// cancellation, and report metrics. Implemented over a deployed pipeline
// (framework/pipeline_generator) or a single process (tests, one-machine use).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/vocab/chat_template.h"
#include "models/runtime/sampler.h"

namespace troupe {

struct GenerationOutcome {
  int64_t completion_tokens = 0;
  bool hit_eos = false;    // ended by the end-of-sequence token
  bool cancelled = false;  // on_piece asked to stop
};

// Called with the bytes of each generated token; return false to stop the generation
// (the session is then ended and its KV caches freed on every stage).
using PieceHandler = std::function<bool(const std::string& piece)>;

// What /health reports: "ok", "degraded" (serving, with something missing: `detail`), or
// "unavailable" (requests fail now: 503).
struct ServiceHealth {
  std::string status = "ok";
  std::string detail;
};

class TextGenerator {
 public:
  virtual ~TextGenerator() = default;
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual int64_t max_positions() const = 0;  // prompt + completion must fit
  virtual const ChatTemplate& chat_template() const = 0;
  virtual GenerationOutcome generate(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                     const SamplingOptions& sampling, const PieceHandler& on_piece) = 0;
  // Extra Prometheus lines (per-stage compute time, per-hop bytes and latency).
  virtual std::string stage_metrics() const { return {}; }
  virtual ServiceHealth health() const { return {}; }
};

}  // namespace troupe
