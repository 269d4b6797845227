#pragma once
// One interface over the checkpoint formats users have (GGUF files, Hugging Face
// directories): the model's shape, its vocabulary, and named tensors that point into
// the memory-mapped file. Tensor names are the canonical (GGUF) ones, e.g.
// "blk.3.attn_q.weight"; readers translate their own naming. Reading a tensor touches
// only that tensor's bytes, so a stage that asks for its own layers loads only those.
// Torch-free on purpose: this header is included everywhere.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <memory>
#include <string>
#include <vector>

#include "models/quant/dtype.h"
#include "models/format/model_config.h"
#include "models/vocab/vocab.h"

namespace troupe {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;            // outermost first, as torch orders it ([out, in] for a matrix)
  const uint8_t* data = nullptr;         // valid while the checkpoint (or `owner`) lives
  size_t nbytes = 0;
  std::shared_ptr<const void> owner;     // set when the reader had to build the bytes (e.g. a permutation)

  int64_t numel() const;
};

// Raised for every problem with a model file; the message names the file.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Stage-shard metadata written by `troupe split` (absent in ordinary files).
struct ShardInfo {
  bool is_shard = false;
  std::string model_id;   // fingerprint of the model the shard was cut from
  int64_t layer_first = 0;
  int64_t layer_last = -1;  // inclusive
  bool has_embedding = false;
  bool has_head = false;
};

class Checkpoint {
 public:
  virtual ~Checkpoint() = default;
  virtual const std::string& path() const = 0;
  virtual const ModelConfig& config() const = 0;
  virtual const Vocab& vocab() const = 0;  // throws if the file has no vocabulary
  virtual bool has_vocab() const = 0;
  virtual bool has_tensor(const std::string& name) const = 0;
  virtual TensorView tensor(const std::string& name) const = 0;  // throws CheckpointError naming file+tensor
  // Size in bytes of a tensor as stored, without touching (or reordering) its data.
  virtual size_t tensor_nbytes(const std::string& name) const { return tensor(name).nbytes; }
  virtual std::vector<std::string> tensor_names() const = 0;
  virtual ShardInfo shard_info() const { return {}; }
  // Stable fingerprint of the model (shape + a sample of its weights), used to match shards.
  virtual std::string model_id() const = 0;
};

// Opening a file needs the architectures: open_checkpoint() is in models/arch/open_checkpoint.h.

// Canonical tensor names.
std::string layer_tensor_name(int64_t layer, const std::string& suffix);  // "blk.<layer>.<suffix>"

}  // namespace troupe
