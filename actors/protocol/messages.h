#pragma once
// The troupe protocol's messages: every struct the actors exchange, and how CAF serializes
// it. Who takes which message and answers what: actors/protocol/interfaces.h (typed actor
// interfaces, which the compiler checks every handler and request against).
//
// Versioning: a client's first message to a node (and a node's to a node it peers with) is
// `hello` with kProtocolVersion, in plain integers that every version decodes the same way;
// only when the other answers with the same version does any struct of this file cross.
// The activation bytes carry their own format version (kWireFormatVersion, wire_tensor.h).
#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "actors/protocol/interfaces.h"
#include "actors/protocol/wire_tensor.h"
#include "models/runtime/sampler.h"
#include "models/arch/stage_spec.h"

namespace troupe {
namespace proto {

constexpr uint32_t kProtocolVersion = 10;  // 2: ping_atom, fault_atom; 4: batching, load progress, stage stats in NodeInfo;
                                          // 5: hello before anything else, no version inside structs;
                                          // 6: shard cache and transfer (shard_* atoms, SpawnStage::shard, NodeInfo cache)
                                          // 7: progress_atom (stage progress from its node)
                                          // 8: speculative steps (LogitsRow of several rows, TokenReply::tokens),
                                          //    NodeInfo::speed_spread
                                          // 9: typed interfaces (interfaces.h), StageFailure in a stage's errors,
                                          //    hello between nodes before they peer
                                          // 10: NodeInfo::speed_age_s, speed_probes (idle re-probing)

// -- node: spawning a stage -----------------------------------------------------------------

struct SpawnStage {
  std::string model;         // relative to the node's --models dir (nothing outside it is served)
  StageSpec spec;
  uint8_t wire_dtype = static_cast<uint8_t>(WireDType::f32);  // for the activations this stage sends
  int32_t threads = 0;       // 0: the node's default
  int64_t max_positions = 0; // KV cache length per session; 0: the model's context
  bool with_sampler = false; // the last stage: also spawn the sampler next to it, wired as successor
  caf::actor owner;          // the stage quits when this actor goes down (the pipeline's supervision
                             // actor, framework/deploy/deploy_supervision.cpp; only monitored)
  int32_t max_batch = 0;     // sessions per forward pass; 0: the default (stage_actor.h), 1: no batching
  load_listener progress;    // receives LoadProgress while the stage loads (may be invalid)
  std::string shard;         // SHA-256 of a shard in the node's --cache to load instead of `model` ("" : use `model`)
};

// -- node: its shard cache (caf-node --cache) ---------------------------------------------------

// A stage shard (as `troupe split` writes it) held by a node's cache, named by its content hash.
struct CachedShard {
  std::string sha256;
  uint64_t size = 0;
  std::string model_id;      // fingerprint of the model it was cut from
  StageSpec spec;
};

// Client -> node: "this shard is coming". The node answers where to resume (0, the bytes of a
// partial file it kept from a broken transfer, or size when it already holds the shard).
struct ShardOffer {
  CachedShard shard;
};

// Stage -> SpawnStage::progress while its weights are read from disk.
struct LoadProgress {
  std::string node;
  std::string describe;      // "layers 0-2 +embedding"
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
};

struct StageReady {
  stage_actor stage;
  sampler_actor sampler;     // invalid unless with_sampler
  std::string node;
  std::string describe;      // "layers 0-2 +embedding"
  int64_t n_layer = 0;       // of the whole model
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_ctx = 0;
  int64_t max_positions = 0;
  uint64_t weight_bytes = 0;
  double load_ms = 0;
  int32_t threads = 0;
};

// -- stage and sampler ------------------------------------------------------------------

// One hop of one request: encode_tensor_message(TensorMessage) (cereal, versioned).
struct Activation {
  std::string bytes;
};

// Last stage -> sampler on the same node: the logits row of the newest position, or for a
// speculative step (sampling.draft not empty) the rows of all 1 + draft.size() positions, one
// after the other.
struct LogitsRow {
  uint64_t session_id = 0;
  std::vector<float> logits;
  SamplingRequest sampling;
};

// Sampler -> the client that sent the Activation to stage 0.
struct TokenReply {
  uint64_t session_id = 0;
  int32_t token = -1;           // the next token (for a speculative step: tokens.back())
  std::vector<float> logits;    // only when the request asked for it (the last row)
  std::vector<int32_t> tokens;  // a speculative step: the drafts kept, then the token drawn after them
};

struct StageStats {
  std::string node;
  std::string describe;
  int32_t sessions = 0;       // sessions holding a KV cache
  uint64_t cache_bytes = 0;
  uint64_t steps = 0;         // activations handled
  uint64_t bytes_in = 0;      // activation bytes received
  uint64_t bytes_out = 0;     // activation bytes sent to the successor (0 for the last stage)
  double compute_ms = 0;      // time spent in forward passes
  uint64_t batches = 0;       // forward passes (steps / batches: sessions per pass)
  uint64_t positions = 0;     // token positions computed (a prefill counts its prompt)
  double recent_tokens_per_s = 0;  // activations (one generated token each) per second, last 10 s
  double next_rtt_ms = -1;    // round trip of a ping to the next stage, sent while idle (the hop's
                              // network latency x 2); -1: not measured (the last stage, or not yet)
};

// -- node: what it has and hosts --------------------------------------------------------------

struct NodeInfo {
  std::string node;          // "host:port" as the daemon was started
  uint64_t mem_total = 0;    // bytes, /proc/meminfo MemTotal
  uint64_t mem_available = 0;  // bytes, /proc/meminfo MemAvailable
  int32_t cores = 0;
  int32_t threads = 0;       // LibTorch threads per stage by default
  std::string models_dir;
  std::vector<std::string> models;  // model files/dirs under models_dir, relative to it
  int32_t stages = 0;        // stage actors currently alive on the node
  uint64_t memory_limit = 0; // bytes troupe may use there (--memory-limit); 0: no limit
  double gflops = 0;         // measured fp32 matmul speed with `threads` threads
  double mem_gbps = 0;       // measured memory read bandwidth
  double speed_spread = 0;   // how far the probe rounds of those two disagreed (interquartile range / median, the larger)
  uint64_t rss = 0;          // resident memory of the daemon now, bytes
  uint64_t peak_rss = 0;     // its peak resident memory, bytes
  std::vector<StageStats> stage_stats;  // of the stages it hosts (a stage busy past the deadline is missing)
  uint64_t cache_cap = 0;    // --cache-cap: bytes of shards it keeps; 0: no --cache (weights are not sent to it)
  uint64_t cache_free = 0;   // cap less what complete and partial shards hold (older ones are evicted as needed)
  std::vector<CachedShard> cached;  // complete shards in its cache
  double speed_age_s = -1;   // seconds since gflops and mem_gbps were measured (-1: never)
  int32_t speed_probes = 0;  // measurements so far: 1 at start, +1 per idle re-probe (caf-node --reprobe-idle)
};

// -- failures as data ---------------------------------------------------------------------------

// A stage that fails a request says which stage it is in the error's context, beside the
// text (caf::error's context is a message: it crosses the network with the error), so the
// client finds the failed stage by its layers, not by reading the words.
struct StageFailure {
  std::string node;          // "host:port" of its node, as the daemon was started
  StageSpec spec;            // its layers: unique within a pipeline
  std::string what;          // what went wrong, without the stage's name
};

// An error naming the stage (`text`, for people) that also carries `failure` (for code).
caf::error stage_failure_error(const std::string& text, StageFailure failure);
// The StageFailure an error carries, if a stage raised it (nothing for a refusal, a timeout,
// a stage that went down: those come without one).
std::optional<StageFailure> stage_failure_of(const caf::error& err);

// -- inspection (CAF serialization) ---------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NodeInfo& x) {
  return f(caf::meta::type_name("troupe.NodeInfo"), x.node, x.mem_total, x.mem_available,
           x.cores, x.threads, x.models_dir, x.models, x.stages, x.memory_limit, x.gflops, x.mem_gbps, x.rss,
           x.peak_rss, x.stage_stats, x.cache_cap, x.cache_free, x.cached, x.speed_spread,
           x.speed_age_s, x.speed_probes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, CachedShard& x) {
  return f(caf::meta::type_name("troupe.CachedShard"), x.sha256, x.size, x.model_id, x.spec.layer_first,
           x.spec.layer_last, x.spec.has_embedding, x.spec.has_head);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ShardOffer& x) {
  return f(caf::meta::type_name("troupe.ShardOffer"), x.shard);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SpawnStage& x) {
  return f(caf::meta::type_name("troupe.SpawnStage"), x.model, x.spec.layer_first,
           x.spec.layer_last, x.spec.has_embedding, x.spec.has_head, x.wire_dtype, x.threads, x.max_positions,
           x.with_sampler, x.owner, x.max_batch, x.progress, x.shard);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageReady& x) {
  return f(caf::meta::type_name("troupe.StageReady"), x.stage, x.sampler, x.node, x.describe, x.n_layer, x.n_vocab,
           x.n_embd, x.n_ctx, x.max_positions, x.weight_bytes, x.load_ms, x.threads);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Activation& x) {
  return f(caf::meta::type_name("troupe.Activation"), x.bytes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, LogitsRow& x) {
  SamplingRequest& s = x.sampling;
  // The options' fields come from their one list (models/runtime/sampler.h), as in the wire codec.
  return visit_fields(s.options, [&](auto&... options) {
    return f(caf::meta::type_name("troupe.LogitsRow"), x.session_id, x.logits, options..., s.recent, s.step,
             s.want_logits, s.draft);
  });
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TokenReply& x) {
  return f(caf::meta::type_name("troupe.TokenReply"), x.session_id, x.token, x.logits, x.tokens);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageStats& x) {
  return f(caf::meta::type_name("troupe.StageStats"), x.node, x.describe, x.sessions, x.cache_bytes, x.steps,
           x.bytes_in, x.bytes_out, x.compute_ms, x.batches, x.positions, x.recent_tokens_per_s, x.next_rtt_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, LoadProgress& x) {
  return f(caf::meta::type_name("troupe.LoadProgress"), x.node, x.describe, x.bytes_done, x.bytes_total);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageFailure& x) {
  return f(caf::meta::type_name("troupe.StageFailure"), x.node, x.spec.layer_first, x.spec.layer_last,
           x.spec.has_embedding, x.spec.has_head, x.what);
}

// Registers every type above with CAF (needed for the ones that cross the network).
void add_message_types(caf::actor_system_config& cfg);

// The message text of an error made by troupe (or CAF's rendering of any other error).
std::string error_text(const caf::error& err);

// What the version handshake says when the other side (`other`: "node host:port") answered
// hello with another `version` than kProtocolVersion; `me`: "this client", "this node".
std::string version_mismatch_text(const std::string& other, uint32_t version, const std::string& me);

}  // namespace proto
}  // namespace troupe
