#pragma once
// What a model asks of the machines that run it: bytes of weights per layer and per role,
// FLOPs per token, KV cache bytes per position. Read from the file's tensor table (sizes as
// stored: a Q4_0 tensor counts its Q4_0 bytes), touching no weights. The planner and the
// node's --memory-limit check both use it, so they agree on what a stage needs.
#include <cstdint>
#include <string>
#include <vector>

#include "models/arch/stage_spec.h"

namespace troupe {

class Checkpoint;

// What a model asks of the machines that run it, read from its file's tensor table
// (sizes as stored: a Q4_0 tensor counts its Q4_0 bytes) and shape.
struct ModelFootprint {
  std::string model;                   // path, for messages
  int64_t n_layer = 0;
  int64_t n_ctx = 0;                   // trained context length (the default context)
  std::vector<uint64_t> layer_bytes;   // weights of blk.<l>.*, one entry per layer
  std::vector<double> layer_flops;     // per token: 2 x the layer's matmul parameters
  uint64_t embedding_bytes = 0;        // tensors only the first stage needs: token_embd (+ position_embd)
  uint64_t head_bytes = 0;             // tensors the last stage needs: output_norm + output, or token_embd when tied
  uint64_t tied_bytes = 0;             // bytes counted in both of the above (the tied token_embd), else 0
  uint64_t shared_bytes = 0;           // model-wide tensors every stage loads (e.g. rope_freqs)
  double head_flops = 0;               // per token: 2 x n_embd x n_vocab
  uint64_t kv_bytes_per_position = 0;  // per layer: 2 x n_head_kv x head_dim x 4 B (fp32 keys and values)
  double attention_flops_per_position = 0;  // per layer, per token, per cached position: 4 x n_embd

  uint64_t total_weight_bytes() const;  // every tensor once
};

// Reads the tensor table and shape; touches no weights.
ModelFootprint footprint_of(const Checkpoint& ckpt);

// Weights a stage loads: its layers, + the embedding on the first stage, + the head on the
// last (a tied head held once), + model-wide tensors.
uint64_t stage_weight_bytes(const ModelFootprint& f, const StageSpec& spec);

// KV cache of one session of `positions` positions over the stage's layers.
uint64_t stage_kv_bytes(const ModelFootprint& f, const StageSpec& spec, int64_t positions);

// The default runtime overhead: an idle caf-node measures 158 MiB RSS and 170 MiB once it
// holds a stage of stories260K (LibTorch + CAF + OpenBLAS threads); the rest is headroom for
// a large model's scratch activations (a 512-token LLaMA-7B prefill needs ~100 MiB).
constexpr uint64_t kDefaultOverheadBytes = 300ull << 20;

}  // namespace troupe
