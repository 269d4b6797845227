#pragma once
// Weights travel to the nodes: before a stage loads on a node that has a shard cache
// (caf-node --cache), the client makes sure the cache holds that stage's shard, the GGUF
// file `troupe split` would write for its layer range, named by its SHA-256:
//
//   1. the client's index (ShardIndex, in ShardTransferOptions::build_dir) maps (model file,
//      size, mtime, spec) to the hash of its shard; when known, the client offers that hash
//      and a node that holds it (hash re-checked there) needs nothing: a second run sends
//      nothing and builds nothing;
//   2. otherwise the client writes the shard (write_stage_shard: one tensor in memory at a
//      time) under build_dir, hashes it, and offers it; the node answers where to resume (0,
//      or the bytes a broken transfer left);
//   3. the chunks go over the cluster's own authenticated CAF connection to the node
//      (TLS with a cluster key), at most `window` chunks of `chunk_bytes` unacknowledged at a
//      time, so the link keeps room for running pipelines; the node appends each at its
//      offset, and at the end checks size and hash and renames the file into its cache;
//   4. the client removes its copy once the node has it.
// Progress (bytes, rate, ETA) goes to a callback per node.
#include <caf/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/protocol/messages.h"
#include "models/arch/stage_spec.h"

namespace troupe {

struct TransferProgress {
  std::string node;          // "host:port"
  std::string stage;         // "layers 0-2 +embedding"
  std::string sha256;
  uint64_t bytes_done = 0;   // held by the node now (resumed bytes included)
  uint64_t bytes_total = 0;
  uint64_t resumed_from = 0; // bytes the node already held when this transfer began
  double bytes_per_s = 0;    // this run's rate
  double eta_s = 0;
  bool done = false;
};

struct ShardTransferOptions {
  std::string build_dir;     // the client's shards and their index; "" : default_shard_build_dir()
  size_t chunk_bytes = size_t(1) << 20;
  int window = 4;            // chunks in flight per node
  std::chrono::milliseconds chunk_timeout{std::chrono::seconds(60)};
  uint64_t max_bytes_per_s = 0;  // per node; 0: as fast as the link and the node take them
  std::function<void(const TransferProgress&)> on_progress;  // called on a CAF thread, at most ~4 times a second per node
};

// $XDG_CACHE_HOME/troupe/outgoing, else ~/.cache/troupe/outgoing, else /tmp/troupe-outgoing.
std::string default_shard_build_dir();

// One stage that should load from a node's cache.
struct ShardRequest {
  proto::node_actor node;
  std::string endpoint;      // for messages
  std::string model_path;    // the model file (or HF directory) in this process
  StageSpec spec;
};

// The shard request for a stage of `model` placed on the node at `endpoint`: the node has a
// shard cache (`cache_cap` > 0) and the model file is in this process (resolved under
// `local_models_dir`, as the tokenizer is). Otherwise none: the node reads the model under its
// own --models. The one rule for deploy and for a repair.
std::optional<ShardRequest> shard_request_for(const proto::node_actor& node, const std::string& endpoint,
                                              uint64_t cache_cap, const std::string& local_models_dir,
                                              const std::string& model, const StageSpec& spec);

struct ShardOutcome {
  std::string sha256;
  uint64_t size = 0;
  uint64_t bytes_sent = 0;   // this run (0: the node held it)
  uint64_t resumed_from = 0;
  bool built = false;        // the client wrote the shard this run
  double seconds = 0;        // sending
};

class ShardTransferError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Makes sure each node's cache holds its stage's shard (transfers run at once, one per
// node); returns each shard's hash, for SpawnStage::shard. Throws ShardTransferError naming
// the node and stage of every failure.
std::vector<ShardOutcome> ensure_stage_shards(caf::actor_system& sys, const std::vector<ShardRequest>& requests,
                                              const ShardTransferOptions& options);

// The client's record of which shard hash belongs to (model file, spec): lines in
// <build_dir>/index. A model file is known by its absolute path, size and modification time.
class ShardIndex {
 public:
  explicit ShardIndex(std::string build_dir);
  std::optional<proto::CachedShard> find(const std::string& model_path, const StageSpec& spec) const;
  void add(const std::string& model_path, const proto::CachedShard& shard);
  // Every shard known for this model file (for the planner: which node holds which range).
  std::vector<proto::CachedShard> of_model(const std::string& model_path) const;

 private:
  std::string file_;
};

}  // namespace troupe
