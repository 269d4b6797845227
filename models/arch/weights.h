#pragma once
// Turns checkpoint tensors into what the architectures compute with. Weight matrices stay in
// the checkpoint's element type and point straight into the mapped file: F32 as an ATen
// tensor (at::linear), F16 / BF16 / Q8_0 / Q4_0 as their 16-bit values or blocks, multiplied
// by the kernels of quant_matmul.h. Small tensors (norms, biases) are expanded to fp32.
#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "models/format/checkpoint.h"
#include "models/format/page_prefetch.h"
#include "models/quant/quant_matmul.h"
#include "models/arch/row_range.h"

namespace troupe {

// fp32 tensor of checkpoint tensor `name`; throws CheckpointError if it is missing or its
// shape is not `expected_shape` (when given), naming the file, tensor and both shapes.
at::Tensor load_tensor(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name,
                       at::IntArrayRef expected_shape = {});

// A weight matrix [rows, cols] in the checkpoint's element type, used as a linear map
// (x W^T) or as an embedding table (row lookup); a tied classifier uses the same object
// both ways. Holds the checkpoint's mapping alive; copies share the bytes.
class WeightMatrix {
 public:
  WeightMatrix() = default;
  WeightMatrix(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name, int64_t rows, int64_t cols);

  // x[..., cols] -> x W^T (+ bias[rows]): [..., rows], fp32.
  at::Tensor linear(const at::Tensor& x, const c10::optional<at::Tensor>& bias = c10::nullopt) const;
  // The same for x[rows, cols] holding several sequences' rows (`groups`), each sequence's
  // result bit-identical to linear() of its rows alone: one product when the kernel's rows
  // do not depend on each other, else one per sequence.
  at::Tensor linear(const at::Tensor& x, const c10::optional<at::Tensor>& bias, const RowGroups& groups) const;
  // Rows `ids` (int64, any shape) as fp32 [..., cols]; converts only those rows.
  at::Tensor rows(const at::Tensor& ids) const;

  bool defined() const { return f32_.defined() || packed_.data != nullptr; }
  // Whether a product of `n_rows` rows gives each row the bits it gets alone: the direct
  // kernels do; BLAS (F32 weights, and the fp32 tiles of large batches) does not.
  bool rows_independent(int64_t n_rows) const;
  DType dtype() const { return f32_.defined() ? DType::F32 : packed_.dtype; }
  size_t bytes() const;  // what the matrix occupies: its block / 16-bit / fp32 bytes
  MemoryRange memory() const { return {f32_.defined() ? f32_.data_ptr() : packed_.data, bytes()}; }
  const PackedMatrix& packed() const { return packed_; }  // non-F32 weights: the file's bytes

 private:
  std::string name_;
  at::Tensor f32_;                             // F32 weights
  PackedMatrix packed_;                        // F16 / BF16 / Q8_0 / Q4_0 weights
  std::shared_ptr<const void> keep_alive_;     // owner of packed_.data
};

// A linear layer's weight [out, in] (and optional bias [out]): y = x W^T + b.
class LinearWeight {
 public:
  LinearWeight() = default;
  LinearWeight(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name, int64_t out_features,
               int64_t in_features, bool with_bias = false);

  at::Tensor operator()(const at::Tensor& x) const { return weight_.linear(x, bias_); }
  at::Tensor operator()(const at::Tensor& x, const RowGroups& groups) const { return weight_.linear(x, bias_, groups); }
  size_t bytes() const;
  const WeightMatrix& weight() const { return weight_; }
  std::vector<MemoryRange> memory() const;  // the weight's and the bias's

 private:
  WeightMatrix weight_;
  c10::optional<at::Tensor> bias_;
};

}  // namespace troupe
