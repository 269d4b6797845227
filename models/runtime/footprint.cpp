#include "models/runtime/footprint.h"

#include <numeric>
#include <stdexcept>

#include "models/arch/architecture.h"
#include "models/format/checkpoint.h"

namespace troupe {

namespace {

// "blk.<l>.<anything>" -> l; false for other names.
bool layer_of(const std::string& name, int64_t& layer) {
  if (name.rfind("blk.", 0) != 0) return false;
  size_t i = 4;
  int64_t value = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') value = value * 10 + (name[i++] - '0');
  if (i == 4 || i >= name.size() || name[i] != '.') return false;
  layer = value;
  return true;
}

}  // namespace

uint64_t ModelFootprint::total_weight_bytes() const {
  return std::accumulate(layer_bytes.begin(), layer_bytes.end(), uint64_t{0}) + embedding_bytes + head_bytes -
         tied_bytes + shared_bytes;
}

ModelFootprint footprint_of(const Checkpoint& ckpt) {
  const ModelConfig& c = ckpt.config();
  if (ckpt.shard_info().is_shard)
    throw std::invalid_argument(ckpt.path() + ": is a stage shard; plan with the whole model's file");
  ModelFootprint f;
  f.model = ckpt.path();
  f.n_layer = c.n_layer;
  f.n_ctx = c.n_ctx;
  f.layer_bytes.assign(static_cast<size_t>(c.n_layer), 0);
  f.layer_flops.assign(static_cast<size_t>(c.n_layer), 2 * architecture(c.arch).matmul_params_per_layer(c));
  f.head_flops = 2.0 * static_cast<double>(c.n_embd) * static_cast<double>(c.n_vocab);
  f.kv_bytes_per_position = 2 * static_cast<uint64_t>(c.n_head_kv * c.head_dim()) * sizeof(float);
  f.attention_flops_per_position = 4.0 * static_cast<double>(c.n_head * c.head_dim());

  // The split's own rule (stage_needs_tensor) says which stage loads each tensor.
  const StageSpec first_only{0, -1, true, false}, last_only{0, -1, false, true}, neither{0, -1, false, false};
  for (const auto& name : ckpt.tensor_names()) {
    const uint64_t bytes = ckpt.tensor_nbytes(name);
    int64_t layer = 0;
    if (layer_of(name, layer)) {
      if (layer >= 0 && layer < c.n_layer) f.layer_bytes[static_cast<size_t>(layer)] += bytes;
      continue;  // a block beyond n_layer is never loaded
    }
    if (stage_needs_tensor(c, name, neither)) {
      f.shared_bytes += bytes;
      continue;
    }
    const bool first = stage_needs_tensor(c, name, first_only);
    const bool last = stage_needs_tensor(c, name, last_only);
    if (first) f.embedding_bytes += bytes;
    if (last) f.head_bytes += bytes;
    if (first && last) f.tied_bytes += bytes;
  }
  return f;
}

uint64_t stage_weight_bytes(const ModelFootprint& f, const StageSpec& spec) {
  uint64_t weights = f.shared_bytes;
  for (int64_t l = spec.layer_first; l <= spec.layer_last; ++l) weights += f.layer_bytes.at(static_cast<size_t>(l));
  if (spec.has_embedding) weights += f.embedding_bytes;
  if (spec.has_head) weights += f.head_bytes - (spec.has_embedding ? f.tied_bytes : 0);
  return weights;
}

uint64_t stage_kv_bytes(const ModelFootprint& f, const StageSpec& spec, int64_t positions) {
  return f.kv_bytes_per_position * static_cast<uint64_t>(positions * std::max<int64_t>(spec.n_layers(), 0));
}

}  // namespace troupe
