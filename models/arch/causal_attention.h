#pragma once
// Causal attention of T new queries over a sequence's cached keys and values, one query row
// at a time: row t (at position L-T+t) reads only its own query and keys/values 0..L-T+t, in
// an order fixed by those alone. So a row gets the same bits in a pass of any size at any
// offset (a prompt in one pass or in chunks, a decode step, a speculative verify pass), which
// batched BLAS products over [T x L] do not give: their blocking, and so their summation
// order, depends on T and L.
#include <ATen/ATen.h>

namespace troupe {

// q: [n_head, T, head_dim]; k, v: [n_head_kv, L, head_dim] (fp32, rows contiguous) with the T
// new positions last; n_head a multiple of n_head_kv (grouped-query attention).
// Returns [T, n_head * head_dim].
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace troupe
