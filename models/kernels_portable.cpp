// Portable kernels: plain C++ for any CPU, the reference the SIMD kernels are tested against
// and the fallback on CPUs without AVX2. Same arithmetic as the SIMD kernels: exact integer
// dot products per block, fp32 accumulation of the scaled block sums.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/quant_formats.h"
#include "models/quant_kernels.h"

namespace troupe::kernels {
namespace {

float block_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return fp16_to_fp32(h);
}

void quantize_row_q8(const float* x, int64_t cols, int8_t* q, float* d, int32_t* sum) {
  for (int64_t b = 0; b < cols / 32; ++b, x += 32, q += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float scale = amax / 127.0f, inv = scale != 0 ? 1.0f / scale : 0.0f;
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) {
      q[j] = static_cast<int8_t>(std::lround(x[j] * inv));
      s += q[j];
    }
    d[b] = fp16_to_fp32(fp32_to_fp16(scale));
    sum[b] = s;
  }
}

// Integer dot product of one weight block with 32 activation values.
int32_t block_dot_q8_0(const uint8_t* block, const int8_t* x) {
  const auto* w = reinterpret_cast<const int8_t*>(block + 2);
  int32_t s = 0;
  for (int j = 0; j < 32; ++j) s += static_cast<int32_t>(w[j]) * x[j];
  return s;
}

int32_t block_dot_q4_0(const uint8_t* block, const int8_t* x) {
  const uint8_t* w = block + 2;
  int32_t s = 0;
  for (int j = 0; j < 16; ++j) s += ((w[j] & 0x0f) - 8) * static_cast<int32_t>(x[j]) + ((w[j] >> 4) - 8) * x[j + 16];
  return s;
}

template <int32_t (*BlockDot)(const uint8_t*, const int8_t*), size_t BlockBytes>
void gemm_q(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
            int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row(r);
    for (int64_t t = 0; t < x.n; ++t) {
      const int8_t* q = x.row_q(t);
      const float* d = x.row_d(t);
      float acc = 0;
      for (int64_t b = 0; b < x.blocks; ++b)
        acc += block_scale(row + b * BlockBytes) * d[b] * static_cast<float>(BlockDot(row + b * BlockBytes, q + b * 32));
      y[t * ldy + r] = acc + (bias ? bias[r] : 0.0f);
    }
  }
}

float half_to_float(const uint8_t* p, DType type) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return type == DType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
}

template <DType Type>
void gemm_half(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, const float* bias, float* y,
               int64_t ldy) {
  constexpr int64_t kChunk = 256;  // converted weights per step, reused for all T rows
  float wf[kChunk];
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row(r);
    for (int64_t t = 0; t < T; ++t) y[t * ldy + r] = 0;
    for (int64_t j0 = 0; j0 < w.cols; j0 += kChunk) {
      const int64_t n = std::min(kChunk, w.cols - j0);
      for (int64_t j = 0; j < n; ++j) wf[j] = half_to_float(row + 2 * (j0 + j), Type);
      for (int64_t t = 0; t < T; ++t) {
        const float* xt = x + t * w.cols + j0;
        float acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += wf[j] * xt[j];
        y[t * ldy + r] += acc;
      }
    }
    if (bias)
      for (int64_t t = 0; t < T; ++t) y[t * ldy + r] += bias[r];
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  dequantize(w.dtype, w.row(r0), out, (r1 - r0) * w.cols);
}

}  // namespace

const KernelTable& portable_kernels() {
  static const KernelTable table{quantize_row_q8,
                                 gemm_q<block_dot_q8_0, 34>,
                                 gemm_q<block_dot_q4_0, 18>,
                                 gemm_half<DType::F16>,
                                 gemm_half<DType::BF16>,
                                 dequantize_rows};
  return table;
}

}  // namespace troupe::kernels
