#pragma once
// Turning a pipeline description into running actors, and generating text through them.
//
//   caf::actor_system_config cfg;
//   troupe::configure_actor_system(cfg);
//   caf::actor_system sys{cfg};
//   troupe::Pipeline p = troupe::deploy(sys, desc);
//   p.generate("Once upon a time", 32, [](int32_t, const std::string& piece) { std::cout << piece; });
//
// deploy() connects to each node named in the description (giving up after
// DeployOptions::connect_timeout with an error naming host:port), asks it to load its
// stage (the last stage's node also gets the sampler), spawns stages without .on() in this
// process, and tells each stage its successor. Generation runs the one token loop
// (models/runtime/generation_loop.h): each step is one request to the pipeline's supervision
// actor, which sends it on to the first stage; the reply comes back from the sampler at the
// end of the chain. Text is made by the tokenizer, called directly.
// Several threads may generate through one Pipeline at once: each call is its own session
// with its own KV caches, and gets exactly what it would get alone.
//
// A supervisor watches the stages and their nodes; a stage that dies, hangs or throws is
// restarted (on its node, or on one of DeployOptions::standby_nodes), and every generation
// in flight is replayed into it and finishes with the tokens it would have had anyway
// (framework/deploy/deploy_supervision.h; Pipeline::recoveries() lists what happened).
//
// The actor system must outlive the Pipeline; destroying the Pipeline stops its actors.
#include <caf/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/protocol/actor_system.h"
#include "framework/deploy/shard_transfer.h"
#include "framework/dsl/dsl.h"
#include "actors/protocol/messages.h"
#include "models/runtime/local_session.h"

namespace troupe {

struct DeployOptions {
  std::chrono::milliseconds connect_timeout{5000};           // per node: TCP, handshake and info
  std::chrono::milliseconds spawn_timeout{std::chrono::minutes(5)};  // loading a stage's weights
  std::chrono::milliseconds step_timeout{std::chrono::seconds(60)};  // one token through the chain
  std::string local_models_dir;  // the tokenizer and stages without .on() resolve model paths here
  int32_t local_threads = 0;     // LibTorch threads of in-process stages; 0: leave as set
  int64_t max_positions = 0;     // KV cache length per session; 0: the model's context
  WireDType wire_dtype = WireDType::f32;  // activations between stages, unless a stage says otherwise
  int32_t max_batch = 0;         // sessions a stage runs in one forward pass; 0: the stage default, 1: none
  // A prompt longer than this goes through the stages in chunks of it, all sent at once, so
  // that stage k computes chunk i while stage k+1 computes chunk i-1 (time to first token
  // over N stages tends to 1/N of one pass). The same chunks as LocalSession's (the bits of
  // one process); 0: the whole prompt at once (models/runtime/local_session.h).
  int64_t prefill_chunk = kDefaultPrefillChunk;
  // Speculative decoding: up to this many tokens drafted by prompt lookup
  // (models/runtime/prompt_lookup.h) are verified in each step's pass; the tokens are those
  // of plain decoding, greedy or sampled (the sampler keeps a draft only where it draws that
  // very token). 0: off. Not with GenerateOptions::want_logits.
  int64_t speculate = 0;
  // With speculate > 0: draft with this model instead of by prompt lookup (`--draft M`), a small
  // model of the same vocabulary loaded in this process (path relative to local_models_dir
  // unless absolute) and run greedily (models/runtime/draft_model.h). deploy() refuses one whose
  // vocabulary differs from the pipeline's. "": prompt lookup.
  std::string draft_model;
  // Called (on a CAF thread) as each stage reads its weights: node, stage, bytes done / total.
  std::function<void(const std::string& node, const std::string& stage, uint64_t done, uint64_t total)>
      on_load_progress;

  // Weights travel (framework/deploy/shard_transfer.h): a stage placed on a node with a shard
  // cache (caf-node --cache) loads its own shard from there, sent by this process from the
  // model file under local_models_dir when the node does not hold it yet. Without a cache, or
  // when the model is not here, the node reads the model under its --models dir as before.
  bool send_weights = true;
  ShardTransferOptions transfer;  // chunking, window, rate cap, build dir, progress callback

  // Supervision (docs/architecture.md, "Supervision and failover"): a failed stage is
  // restarted on its node if that is alive, else on the first standby node that can load it;
  // every session in flight is replayed into it and goes on.
  std::vector<std::string> standby_nodes;            // "host:port" daemons that may take over a stage
  std::chrono::milliseconds heartbeat_interval{kHeartbeatInterval};  // the supervisor pings every node this often
  std::chrono::milliseconds heartbeat_timeout{kHeartbeatTimeout};    // a node that does not answer within it is hung
  // A stage that does not answer between forward passes within this, while its node answers
  // pings, is stuck (frozen compute thread, swapping) and replaced like a hung one. Raise it
  // where one forward pass (a long prompt on a slow machine) can take longer; 0: not watched.
  std::chrono::milliseconds stage_stall_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds replacement_wait{1500};   // how long to keep looking for a node to restart on
  int32_t max_recoveries_per_step = 5;               // then the generation fails with the last error
  // A lost stage may move onto the pipeline's other nodes (after the standbys), which then
  // hold two stages, if their memory allows it.
  bool survivors_take_over = true;
  // A step (or a new generation) that finds a repair under way waits this long for it, then
  // fails (`--repair-wait`).
  std::chrono::milliseconds repair_wait{std::chrono::seconds(60)};
  // How often to look whether a node that left is back (its stage then moves home when no
  // generation runs), and to try again to repair a pipeline that could not be repaired.
  std::chrono::milliseconds heal_interval{2000};
};

// What the pipeline can do now, for /health.
struct PipelineHealth {
  enum class State { ok, degraded, unavailable };
  State state = State::ok;
  std::string detail;  // degraded: which stage runs away from its node, or what is being repaired; unavailable: why
};
const char* to_string(PipelineHealth::State state);

// One stage failure and its repair, as Pipeline::recoveries() reports it.
struct Recovery {
  size_t stage_index = 0;
  std::string stage;      // "layers 2-3"
  std::string from_node;  // where it ran ("" in this process)
  std::string to_node;    // where it runs now
  std::string kind;       // "down", "hung", "exception", or "returned" (a stage moved back to its node)
  std::string cause;      // "went down (...)", "its node did not answer a heartbeat within 1000 ms ..."
  std::chrono::steady_clock::time_point detected_at;  // when the supervisor learnt of the failure
  std::chrono::steady_clock::time_point restored_at;  // replacement loaded and wired
  double restore_ms = 0;       // detected_at -> restored_at
  int32_t sessions_replayed = 0;
  int64_t tokens_replayed = 0;  // positions recomputed, over all sessions
  double replay_ms = 0;         // the longest session replay
};

// deploy() failures: a node that cannot be reached, a model a node does not have, layers
// that do not cover the model... The message names the node, stage and path concerned.
class DeployError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A failed generation step (timeout, a stage's compute error); names the stage and node.
class PipelineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DeployedStage {
  std::string endpoint;  // as in the description ("" for in-process)
  std::string describe;  // "layers 0-2 +embedding"
  proto::stage_actor actor;
  uint64_t weight_bytes = 0;
  double load_ms = 0;
  int32_t threads = 0;
};

struct GenerateOptions {
  bool want_logits = false;  // return each step's logits row (for tests and diagnostics)
  bool stop_at_eos = true;   // stop after one of the tokenizer's stop ids (EOS, end of turn; included)
  // Asked after each token; false ends the generation there (a client that went away).
  // The session is ended on every stage either way.
  std::function<bool()> keep_going;
  // Draft tokens per speculative step for this generation; -1: DeployOptions::speculate.
  int64_t speculate = -1;
};

struct Generation {
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> tokens;              // generated, EOS included when it ended the run
  std::vector<std::vector<float>> logits;   // per generated token, when asked
  std::string text;                         // decoded tokens (empty without a tokenizer)
  double prefill_ms = 0;                    // prompt through the chain, to the first token
  std::vector<double> step_ms;              // each later token, request to reply
  int32_t recoveries = 0;                   // stage failures this generation was replayed through
  int64_t tokens_replayed = 0;              // positions it recomputed for them
  int64_t drafted = 0;                      // speculative decoding: tokens drafted
  int64_t accepted = 0;                     // ... and kept (each saves a pass through the pipeline)
};

// Speculative decoding over the pipeline's life (for /metrics).
struct SpeculationStats {
  int64_t draft_tokens = 0;  // DeployOptions::speculate
  std::string drafter;       // "prompt lookup", or the draft model's path
  uint64_t drafted = 0;
  uint64_t accepted = 0;
};

// Called with each token as it arrives, and the bytes it stands for (empty without a tokenizer).
using TokenHandler = std::function<void(int32_t token, const std::string& piece)>;

class Pipeline {
 public:
  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;
  ~Pipeline();

  // Up to n_tokens after `prompt`, with the description's sampler options or `sampling`.
  Generation generate(const std::string& prompt, int64_t n_tokens, const TokenHandler& on_token = {}) const;
  Generation generate(const std::string& prompt, int64_t n_tokens, const SamplingOptions& sampling,
                      const TokenHandler& on_token = {}) const;
  // The same from token ids (no tokenizer needed).
  Generation generate_tokens(const std::vector<int32_t>& prompt, int64_t n_tokens, const SamplingOptions& sampling,
                             const GenerateOptions& options = {}, const TokenHandler& on_token = {}) const;

  std::vector<int32_t> encode(const std::string& text) const;  // needs a tokenizer
  std::string decode(const std::vector<int32_t>& tokens) const;

  // The stages as now deployed (a recovery replaces an entry; do not hold on to it while
  // another thread generates).
  const std::vector<DeployedStage>& stages() const;
  std::vector<proto::StageStats> stats() const;  // asks every stage
  std::vector<Recovery> recoveries() const;      // every stage failure repaired so far, oldest first
  // Per stage, the shard its node loaded from its cache (sha256 "" for a stage that read the
  // model file under --models) and what was sent for it.
  const std::vector<ShardOutcome>& shard_transfers() const;
  SpeculationStats speculation() const;          // tokens drafted and kept, all generations so far
  PipelineHealth health() const;
  // Nodes that take a lost stage over before the pipeline's own survivors do: the deploy
  // options' standby nodes, the nodes a plan left out, and those added here (a laptop that
  // joined the cluster later: `troupe serve --discover` adds every node it hears).
  std::vector<std::string> standby_nodes() const;
  void add_standby_nodes(const std::vector<std::string>& endpoints) const;
  // Fault injection for tests: stage `index` throws inside compute when it has handled
  // `at_step` activations (counting from its start), which the supervisor repairs.
  void inject_fault(size_t index, uint64_t at_step) const;
  // ... or its compute thread freezes for `stall_ms` there (a stuck stage on a live node).
  void inject_stall(size_t index, uint64_t at_step, uint32_t stall_ms) const;
  // ... or its pass there takes `pass_ms` while computing layers (a long prefill, not a stuck stage).
  void inject_slow_pass(size_t index, uint64_t at_step, uint32_t pass_ms) const;
  const SamplingOptions& sampling() const;       // the description's sampler options
  int64_t n_vocab() const;
  int64_t max_positions() const;
  int32_t eos_id() const;  // -1 without a tokenizer
  // Whether `token` ends generation (EOS, <|eot_id|>, <|im_end|>, ...); false without a tokenizer.
  bool is_stop(int32_t token) const;

  // Stops the stages (also done by the destructor).
  void shutdown();

  struct Impl;

 private:
  friend Pipeline deploy(caf::actor_system&, const dsl::PipelineDesc&, const DeployOptions&);
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

Pipeline deploy(caf::actor_system& sys, const dsl::PipelineDesc& desc, const DeployOptions& options = {});

}  // namespace troupe
