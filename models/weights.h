#pragma once
// Turns checkpoint tensors into ATen tensors for the architectures. F32 tensors point
// straight into the mapped file; other types are expanded to fp32 here.
#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "models/checkpoint.h"

namespace troupe {

// fp32 tensor of checkpoint tensor `name`; throws CheckpointError if it is missing or its
// shape is not `expected_shape` (when given), naming the file, tensor and both shapes.
at::Tensor load_tensor(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name,
                       at::IntArrayRef expected_shape = {});

// A linear layer's weight [out, in] (and optional bias [out]): y = x W^T + b.
class LinearWeight {
 public:
  LinearWeight() = default;
  LinearWeight(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name, int64_t out_features,
               int64_t in_features, bool with_bias = false);

  at::Tensor operator()(const at::Tensor& x) const { return at::linear(x, weight_, bias_); }
  size_t bytes() const;
  const at::Tensor& weight() const { return weight_; }

 private:
  at::Tensor weight_;
  c10::optional<at::Tensor> bias_;
};

}  // namespace troupe
