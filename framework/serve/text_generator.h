#pragma once
// What the HTTP server needs from a model: tokenize, generate with streaming and
// cancellation, and report metrics. Implemented over a deployed pipeline
// (framework/pipeline_generator) or a single process (tests, one-machine use).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/runtime/sampler.h"
#include "models/runtime/token_logprobs.h"
#include "models/vocab/chat_template.h"

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

// One generated token with its log-probability (for `logprobs`): `logprob` is null unless
// asked for (top_k >= 0).
struct ScoredPiece {
  int32_t token = 0;
  const std::string& bytes;
  const TokenLogprob* logprob = nullptr;
};
using ScoredPieceHandler = std::function<bool(const ScoredPiece& piece)>;

// What the status page shows of one stage (one entry, "this process", without a cluster).
struct StageStatus {
  std::string node;
  std::string layers;
  int32_t sessions = 0;
  uint64_t cache_bytes = 0;      // KV caches held
  uint64_t steps = 0;
  double compute_ms = 0;
  double tokens_per_s = 0;       // last 10 s
  double hop_rtt_ms = -1;        // ping to the next stage; -1: last stage or not measured
};
struct ClusterStatus {
  std::vector<StageStatus> stages;
  std::vector<std::string> recoveries;  // one line per repaired stage failure, oldest first
  std::vector<std::string> standby;     // nodes that take a lost stage over first
};

class TextGenerator {
 public:
  virtual ~TextGenerator() = default;
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual int64_t max_positions() const = 0;  // prompt + completion must fit
  virtual const ChatTemplate& chat_template() const = 0;
  virtual GenerationOutcome generate(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                     const SamplingOptions& sampling, const PieceHandler& on_piece) = 0;
  virtual int64_t n_vocab() const = 0;
  virtual std::string token_bytes(int32_t token) const = 0;
  // Log-probabilities: `score` gives each token's given those before it (entry 0: none);
  // generate_scored passes each generated token's. A generator that cannot (the pipeline:
  // its last stage samples and keeps the logits) says so in supports_logprobs().
  virtual bool supports_logprobs() const { return false; }
  virtual std::vector<TokenLogprob> score(const std::vector<int32_t>& tokens, int top_k);
  virtual GenerationOutcome generate_scored(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                            const SamplingOptions& sampling, int top_k,
                                            const ScoredPieceHandler& on_piece);
  virtual ClusterStatus status() const { return {}; }
  // Extra Prometheus lines (per-stage compute time, per-hop bytes and latency).
  virtual std::string stage_metrics() const { return {}; }
  virtual ServiceHealth health() const { return {}; }
};

}  // namespace troupe
