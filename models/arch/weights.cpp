#include "models/arch/weights.h"

#include <sstream>

#include "models/quant/quant_formats.h"
#include "models/quant/type_traits.h"

namespace troupe {
namespace {

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

TensorView checked_view(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name,
                        at::IntArrayRef expected_shape) {
  TensorView view = ckpt->tensor(name);
  if (!expected_shape.empty() && at::IntArrayRef(view.shape) != expected_shape)
    throw CheckpointError(ckpt->path() + ": tensor '" + name + "' has shape " + shape_string(view.shape) +
                          ", expected " + shape_string(expected_shape) + " for this model's configuration");
  return view;
}

// Whatever must stay alive for view.data to stay valid: the reader's buffer or the checkpoint.
std::shared_ptr<const void> keep_alive(const std::shared_ptr<const Checkpoint>& ckpt, const TensorView& view) {
  return view.owner ? view.owner : std::shared_ptr<const void>(ckpt, nullptr);
}

at::Tensor to_fp32(const std::shared_ptr<const Checkpoint>& ckpt, const TensorView& view) {
  const auto options = at::TensorOptions().dtype(at::kFloat);
  if (view.dtype == DType::F32 && reinterpret_cast<uintptr_t>(view.data) % alignof(float) == 0) {
    // Zero-copy: the tensor keeps the mapping (or the reader's buffer) alive.
    auto owner = keep_alive(ckpt, view);
    return at::from_blob(const_cast<uint8_t*>(view.data), view.shape, [owner](void*) {}, options);
  }
  at::Tensor out = at::empty(view.shape, options);
  dequantize(view.dtype, view.data, out.data_ptr<float>(), view.numel());
  return out;
}

// Every type with a direct kernel stays as stored; F32 is used in place (zero-copy) by torch.
bool kept_packed(DType t) {
  const TypeTraits& traits = type_traits(t);
  return traits.gemm_q[0] != nullptr || traits.gemm_f[0] != nullptr;
}

}  // namespace

at::Tensor load_tensor(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name,
                       at::IntArrayRef expected_shape) {
  return to_fp32(ckpt, checked_view(ckpt, name, expected_shape));
}

WeightMatrix::WeightMatrix(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name, int64_t rows,
                           int64_t cols)
    : name_(ckpt->path() + ": tensor '" + name + "'") {
  const TensorView view = checked_view(ckpt, name, {rows, cols});
  if (!kept_packed(view.dtype)) {
    f32_ = to_fp32(ckpt, view);
    return;
  }
  packed_ = PackedMatrix{view.dtype, rows, cols, view.data};
  if (view.nbytes < packed_.bytes())
    throw CheckpointError(name_ + " holds " + std::to_string(view.nbytes) + " bytes, expected " +
                          std::to_string(packed_.bytes()) + " for " + shape_string(view.shape) + " " +
                          dtype_name(static_cast<uint32_t>(view.dtype)));
  keep_alive_ = keep_alive(ckpt, view);
}

at::Tensor WeightMatrix::linear(const at::Tensor& x, const c10::optional<at::Tensor>& bias) const {
  if (f32_.defined()) return at::linear(x, f32_, bias);
  TORCH_CHECK(packed_.data, "linear map of an empty weight matrix");
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == packed_.cols, name_, " maps ", packed_.cols,
              " features, the input has shape ", x.sizes());
  const at::Tensor xc = x.to(at::kFloat).contiguous();
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = packed_.rows;
  at::Tensor y = at::empty(shape, xc.options());
  at::Tensor b;
  if (bias) b = bias->to(at::kFloat).contiguous();
  packed_matmul(packed_, xc.data_ptr<float>(), xc.numel() / packed_.cols, b.defined() ? b.data_ptr<float>() : nullptr,
                y.data_ptr<float>());
  return y;
}

bool WeightMatrix::rows_independent(int64_t n_rows) const {
  if (n_rows <= 1) return true;
  if (f32_.defined()) return false;
  return packed_matmul_rows_independent(packed_.dtype, n_rows);
}

at::Tensor WeightMatrix::linear(const at::Tensor& x, const c10::optional<at::Tensor>& bias,
                                const RowGroups& groups) const {
  if (groups.size() <= 1 || rows_independent(x.size(0))) return linear(x, bias);
  std::vector<at::Tensor> parts;
  parts.reserve(groups.size());
  for (const RowRange& r : groups) parts.push_back(linear(r.of(x), bias));
  return at::cat(parts);
}

at::Tensor WeightMatrix::rows(const at::Tensor& ids) const {
  if (f32_.defined()) return at::embedding(f32_, ids);
  TORCH_CHECK(packed_.data, "row lookup in an empty weight matrix");
  const at::Tensor idc = ids.to(at::kLong).contiguous();
  std::vector<int64_t> shape = ids.sizes().vec();
  shape.push_back(packed_.cols);
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  try {
    packed_rows(packed_, idc.data_ptr<int64_t>(), idc.numel(), out.data_ptr<float>());
  } catch (const std::out_of_range& e) {
    throw std::out_of_range(name_ + ": token id out of range: " + e.what());
  }
  return out;
}

size_t WeightMatrix::bytes() const {
  if (f32_.defined()) return f32_.numel() * f32_.element_size();
  return packed_.data ? packed_.bytes() : 0;
}

LinearWeight::LinearWeight(const std::shared_ptr<const Checkpoint>& ckpt, const std::string& name,
                           int64_t out_features, int64_t in_features, bool with_bias)
    : weight_(ckpt, name + ".weight", out_features, in_features) {
  if (with_bias) bias_ = load_tensor(ckpt, name + ".bias", {out_features});
}

std::vector<MemoryRange> LinearWeight::memory() const {
  std::vector<MemoryRange> ranges{weight_.memory()};
  if (bias_) ranges.push_back({bias_->data_ptr(), static_cast<size_t>(bias_->numel() * bias_->element_size())});
  return ranges;
}

size_t LinearWeight::bytes() const {
  size_t n = weight_.bytes();
  if (bias_) n += bias_->numel() * bias_->element_size();
  return n;
}

}  // namespace troupe
