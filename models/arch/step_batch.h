#pragma once
// Several sequences' inputs stacked into one tensor of rows, so that a stage's matrix
// products read each weight once for all of them (decode is memory-bound: one session's
// token and eight sessions' tokens cost about the same weight traffic). Whatever depends on
// the sequence (positions, the KV cache, attention) is done per sequence on its own rows.
//
// A sequence gets exactly the bits it would get alone: the element-wise and row-wise
// operations do not depend on the other rows, and so do not the matrix products of the
// direct kernels (quant_matmul.h); where a product's rows would depend on each other (BLAS:
// F32 weights, or past the direct kernels' batch size) it runs once per sequence
// (WeightMatrix::linear with RowGroups).
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "models/arch/kv_cache.h"
#include "models/arch/row_range.h"

namespace troupe {

// One sequence's share of a forward pass.
struct SequenceStep {
  at::Tensor input;         // token ids [T] (first stage) or hidden states [T, n_embd]
  int64_t pos = 0;          // position of the first of the T inputs
  KvCache* cache = nullptr; // the sequence's cache, holding exactly `pos` positions
};

class StepBatch {
 public:
  explicit StepBatch(const std::vector<SequenceStep>& steps);

  size_t size() const { return steps_.size(); }
  const SequenceStep& operator[](size_t i) const { return steps_[i]; }
  int64_t rows() const { return rows_; }

  // All inputs, one after the other: [rows] ids or [rows, n_embd] hidden states.
  at::Tensor stacked_inputs() const;

  RowRange rows_of(size_t i) const { return groups_[i]; }
  const RowGroups& groups() const { return groups_; }                     // of the stacked rows
  const RowGroups& last_row_groups() const { return last_row_groups_; }  // of last_rows(): one row each

  // fn(i, rows_of(i)) for each sequence, the results stacked along dim 0 (no copy for one).
  template <class Fn>
  at::Tensor per_sequence(Fn&& fn) const {
    if (steps_.size() == 1) return fn(size_t{0}, rows_of(0));
    std::vector<at::Tensor> parts;
    parts.reserve(steps_.size());
    for (size_t i = 0; i < steps_.size(); ++i) parts.push_back(fn(i, rows_of(i)));
    return at::cat(parts);
  }

  // fn(rows of x of sequence i) for each sequence, stacked: for the element-wise ops whose
  // vectorisation depends on the tensor's length (silu, gelu: vector and scalar exp() differ
  // in the last bit), so that each sequence's rows go through them exactly as alone.
  template <class Fn>
  at::Tensor each_sequence(const at::Tensor& x, Fn&& fn) const {
    return per_sequence([&](size_t, RowRange r) { return fn(r.of(x)); });
  }

  at::Tensor last_rows(const at::Tensor& x) const;          // the last row of each sequence: [size(), ...]
  std::vector<at::Tensor> split(const at::Tensor& x) const;  // x's rows back per sequence (views)
  std::vector<at::Tensor> split_one_each(const at::Tensor& x) const;  // [size(), ...] -> one row [1, ...] each

 private:
  const std::vector<SequenceStep>& steps_;
  RowGroups groups_, last_row_groups_;
  int64_t rows_ = 0;
};

}  // namespace troupe
