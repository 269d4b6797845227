#pragma once
// Building blocks shared by the architectures: norms, rotary embedding, attention
// (causal_attention.h).
#include <ATen/ATen.h>

#include <cstdint>

#include "models/arch/causal_attention.h"

namespace troupe {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// Which dimensions of a head rotate together.
enum class RotaryOrder {
  interleaved,  // pairs (0,1), (2,3), ...: LLaMA in GGUF layout, GPT-J
  halves,       // (i, i + dims/2): NEOX order, as Phi-2, Qwen2, Phi-3 store q and k
};

// Rotary position embedding on the first `dims` dimensions of each head (all of them for
// LLaMA; Phi-2 and GPT-J rotate a part and pass the rest through). The frequencies are
// theta^(-2i/dims), divided by `freq_factors[i]` when given (Llama-3 rope scaling).
class Rotary {
 public:
  Rotary(int64_t dims, double theta, int64_t max_positions, RotaryOrder order = RotaryOrder::interleaved,
         const at::Tensor& freq_factors = {});
  // x: [T, n_heads, head_dim] for positions [pos, pos+T); returns the rotated copy.
  at::Tensor apply(const at::Tensor& x, int64_t pos) const;

 private:
  int64_t dims_;
  RotaryOrder order_;
  at::Tensor cos_, sin_;  // [max_positions, dims/2]
};

// Llama-3's per-frequency divisors for `dims` rotary dimensions (HF rope_scaling "llama3";
// llama.cpp stores the same numbers as rope_freqs.weight): [dims/2] fp32.
at::Tensor llama3_rope_factors(int64_t dims, double theta, double factor, double low_freq_factor,
                               double high_freq_factor, int64_t original_context);

// tanh-approximated GELU (GPT-2's and Phi-2's "gelu_new", GPT-J's).
inline at::Tensor gelu_tanh(const at::Tensor& x) { return at::gelu(x, "tanh"); }

}  // namespace troupe
