#include "models/arch/layers.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "models/quant/parallel_range.h"

namespace troupe {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  // Each row's mean square is summed in double, row by row, as llama.cpp does. (ATen's
  // mean() vectorises differently for one row than for several, so a batched row would not
  // get the bits it gets alone.) Then x * scale * weight, as two roundings per element: the
  // bits of LibTorch's `xc * scale * weight`, here in the same pass, rows split over the
  // compute threads (a prompt's norm otherwise runs on one thread while the others wait).
  const at::Tensor xc = x.to(at::kFloat).contiguous();
  const int64_t d = xc.size(-1), n_rows = d > 0 ? xc.numel() / d : 0;
  auto row_scale = [&](const float* row) {
    double sum = 0;
    for (int64_t i = 0; i < d; ++i) sum += static_cast<double>(row[i]) * row[i];
    return 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(d)) + static_cast<float>(eps));
  };
  const float* in = xc.data_ptr<float>();
  if (weight.scalar_type() != at::kFloat || weight.dim() != 1 || weight.size(0) != d) {
    // Another weight type or shape: LibTorch's broadcasting and type promotion.
    std::vector<int64_t> scale_shape = xc.sizes().vec();
    scale_shape.back() = 1;
    at::Tensor scale = at::empty(scale_shape, xc.options());
    float* scales = scale.data_ptr<float>();
    for (int64_t r = 0; r < n_rows; ++r) scales[r] = row_scale(in + r * d);
    return xc * scale * weight;
  }
  const at::Tensor w = weight.contiguous();
  at::Tensor out = at::empty_like(xc);
  const float* wp = w.data_ptr<float>();
  float* op = out.data_ptr<float>();
  // Tasks of about 32 Ki elements: tens of microseconds each.
  parallel_range(n_rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, d)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = in + r * d;
      float* o = op + r * d;
      const float s = row_scale(row);
      for (int64_t i = 0; i < d; ++i) o[i] = (row[i] * s) * wp[i];
    }
  });
  return out;
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

Rotary::Rotary(int64_t dims, double theta, int64_t max_positions, RotaryOrder order, const at::Tensor& freq_factors)
    : dims_(dims), order_(order) {
  // theta_i = pos * base^(-2i/d), computed in double for accuracy at long positions.
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Tensor inv_freq = at::pow(theta, -at::arange(0, dims, 2, opts) / static_cast<double>(dims));
  if (freq_factors.defined()) inv_freq = inv_freq / freq_factors.to(at::kDouble);
  const at::Tensor angles = at::outer(at::arange(max_positions, opts), inv_freq);
  cos_ = angles.cos().to(at::kFloat);
  sin_ = angles.sin().to(at::kFloat);
}

at::Tensor Rotary::apply(const at::Tensor& x, int64_t pos) const {
  const int64_t T = x.size(0);
  TORCH_CHECK(pos + T <= cos_.size(0), "position ", pos + T, " beyond the rotary table of ", cos_.size(0));
  const at::Tensor cos = cos_.narrow(0, pos, T).unsqueeze(1);  // [T, 1, d/2]
  const at::Tensor sin = sin_.narrow(0, pos, T).unsqueeze(1);
  const bool partial = dims_ < x.size(-1);
  const at::Tensor r = partial ? x.narrow(-1, 0, dims_) : x;
  at::Tensor rotated;
  if (order_ == RotaryOrder::interleaved) {
    const at::Tensor pairs = r.unflatten(-1, {-1, 2});  // [T, H, d/2, 2]
    const at::Tensor x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
    rotated = at::stack({x0 * cos - x1 * sin, x0 * sin + x1 * cos}, -1).flatten(-2);
  } else {
    const at::Tensor x0 = r.narrow(-1, 0, dims_ / 2), x1 = r.narrow(-1, dims_ / 2, dims_ / 2);
    rotated = at::cat({x0 * cos - x1 * sin, x0 * sin + x1 * cos}, -1);
  }
  return partial ? at::cat({rotated, x.narrow(-1, dims_, x.size(-1) - dims_)}, -1) : rotated;
}

at::Tensor llama3_rope_factors(int64_t dims, double theta, double factor, double low_freq_factor,
                               double high_freq_factor, int64_t original_context) {
  // As Meta's reference and llama.cpp's converter: long wavelengths are slowed by `factor`,
  // short ones kept, the band between blended smoothly.
  const double pi = 3.14159265358979323846;
  const double low_freq_wavelen = static_cast<double>(original_context) / low_freq_factor;
  const double high_freq_wavelen = static_cast<double>(original_context) / high_freq_factor;
  std::vector<float> factors;
  for (int64_t i = 0; i < dims; i += 2) {
    const double freq = 1.0 / std::pow(theta, static_cast<double>(i) / static_cast<double>(dims));
    const double wavelen = 2 * pi / freq;
    if (wavelen < high_freq_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_freq_wavelen) {
      factors.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (static_cast<double>(original_context) / wavelen - low_freq_factor) /
                            (high_freq_factor - low_freq_factor);
      factors.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return at::tensor(factors, at::kFloat);
}

}  // namespace troupe
