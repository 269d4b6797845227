// Between LibTorch tensors and their wire form; kept apart from the codec (wire_tensor.cpp)
// so that a caf-node, which decodes messages but computes nothing itself, need not link LibTorch.
#include <ATen/ATen.h>

#include <cstring>

#include "actors/protocol/wire_tensor.h"

namespace troupe {

namespace {

at::ScalarType scalar_type(WireDType t) {
  switch (t) {
    case WireDType::f32: return at::kFloat;
    case WireDType::f16: return at::kHalf;
    case WireDType::bf16: return at::kBFloat16;
    case WireDType::i32: return at::kInt;
  }
  throw WireError("wire message: unknown element type " + std::to_string(static_cast<int>(t)));
}

}  // namespace

WireTensor to_wire(const at::Tensor& t, WireDType float_dtype) {
  WireTensor w;
  at::Tensor c;
  if (at::isFloatingType(t.scalar_type())) {
    if (float_dtype == WireDType::i32) throw std::invalid_argument("to_wire: i32 is not a float wire type");
    w.dtype = float_dtype;
    c = t.to(scalar_type(float_dtype)).contiguous();
  } else {
    w.dtype = WireDType::i32;
    c = t.to(at::kInt).contiguous();
  }
  w.shape.assign(c.sizes().begin(), c.sizes().end());
  w.data.resize(c.numel() * wire_dtype_size(w.dtype));
  if (!w.data.empty()) std::memcpy(&w.data[0], c.data_ptr(), w.data.size());
  return w;
}

at::Tensor from_wire(const WireTensor& w) {
  check_wire_tensor(w);
  at::Tensor t = at::empty(w.shape, at::TensorOptions().dtype(scalar_type(w.dtype)));
  if (!w.data.empty()) std::memcpy(t.data_ptr(), w.data.data(), w.data.size());
  switch (w.dtype) {
    case WireDType::f32: return t;
    case WireDType::f16:
    case WireDType::bf16: return t.to(at::kFloat);
    case WireDType::i32: return t.to(at::kLong);
  }
  return t;
}

}  // namespace troupe
