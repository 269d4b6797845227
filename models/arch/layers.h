#pragma once
// Building blocks shared by the architectures: norms, rotary embedding, attention.
#include <ATen/ATen.h>

#include <cstdint>

namespace troupe {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// Rotary position embedding on interleaved pairs (GGUF layout), for heads of `head_dim`.
class Rotary {
 public:
  Rotary(int64_t head_dim, double theta, int64_t max_positions);
  // x: [T, n_heads, head_dim] for positions [pos, pos+T); returns the rotated copy.
  at::Tensor apply(const at::Tensor& x, int64_t pos) const;

 private:
  at::Tensor cos_, sin_;  // [max_positions, head_dim/2]
};

// Causal attention of T new queries over all cached keys/values.
// q: [n_head, T, head_dim]; k, v: [n_head_kv, L, head_dim] with the T new positions last.
// Returns [T, n_head * head_dim].
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace troupe
