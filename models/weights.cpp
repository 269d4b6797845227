#include "models/weights.h"

#include <sstream>

#include "models/quant_formats.h"

namespace troupe {
namespace {

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

}  // namespace

at::Tensor load_tensor(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name,
                       at::IntArrayRef expected_shape) {
  TensorView view = ckpt->tensor(name);
  if (!expected_shape.empty() && at::IntArrayRef(view.shape) != expected_shape)
    throw CheckpointError(ckpt->path() + ": tensor '" + name + "' has shape " + shape_string(view.shape) +
                          ", expected " + shape_string(expected_shape) + " for this model's configuration");
  const auto options = at::TensorOptions().dtype(at::kFloat);
  if (view.dtype == DType::F32 && reinterpret_cast<uintptr_t>(view.data) % alignof(float) == 0) {
    // Zero-copy: the tensor keeps the mapping (or the reader's buffer) alive.
    auto keep_alive = view.owner ? view.owner : std::shared_ptr<const void>(ckpt, nullptr);
    return at::from_blob(const_cast<uint8_t*>(view.data), view.shape, [keep_alive](void*) {}, options);
  }
  at::Tensor out = at::empty(view.shape, options);
  dequantize(view.dtype, view.data, out.data_ptr<float>(), view.numel());
  return out;
}

LinearWeight::LinearWeight(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name,
                           int64_t out_features, int64_t in_features, bool with_bias) {
  weight_ = load_tensor(ckpt, name + ".weight", {out_features, in_features});
  if (with_bias) bias_ = load_tensor(ckpt, name + ".bias", {out_features});
}

size_t LinearWeight::bytes() const {
  size_t n = weight_.numel() * weight_.element_size();
  if (bias_) n += bias_->numel() * bias_->element_size();
  return n;
}

}  // namespace troupe
