// Portable kernels: plain C++ for any CPU, the reference the SIMD kernels are tested against
// and the fallback on CPUs without AVX2. Same arithmetic as the SIMD kernels: exact integer
// dot products per block, fp32 accumulation of the scaled block sums.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/quant/quant_formats.h"
#include "models/quant/quant_kernels.h"

namespace troupe::kernels {
namespace {

// fp16 -> fp32 without branches (exact, as fp16_to_fp32; the method of Maratyszcza's FP16
// library): normal numbers by rebiasing the exponent, subnormals by a float subtraction.
inline float half_to_float(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16, sign = w & 0x80000000u, two_w = w + w;
  uint32_t bits = (two_w >> 4) + (0xE0u << 23);
  float normal, subnormal;
  std::memcpy(&normal, &bits, 4);
  normal *= 0x1.0p-112f;
  bits = (two_w >> 17) | (126u << 23);
  std::memcpy(&subnormal, &bits, 4);
  subnormal -= 0.5f;
  const float f = two_w < (1u << 27) ? subnormal : normal;
  std::memcpy(&bits, &f, 4);
  bits |= sign;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

float block_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return half_to_float(h);
}

void quantize_row_q8(const float* x, int64_t cols, int8_t* q, float* d) {
  for (int64_t b = 0; b < cols / 32; ++b, x += 32, q += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float scale = amax / 127.0f, inv = scale != 0 ? 1.0f / scale : 0.0f;
    for (int j = 0; j < 32; ++j) {  // std::lround(x * inv), without the library call
      const float v = x[j] * inv;
      const auto whole = static_cast<int32_t>(v);  // truncated
      const float frac = v - static_cast<float>(whole);  // exact
      q[j] = static_cast<int8_t>(whole + (frac >= 0.5f) - (frac <= -0.5f));
    }
    d[b] = fp16_to_fp32(fp32_to_fp16(scale));
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
  int8_t w[32];
  for (int j = 0; j < 16; ++j) {
    w[j] = static_cast<int8_t>((block[2 + j] & 0x0f) - 8);
    w[j + 16] = static_cast<int8_t>((block[2 + j] >> 4) - 8);
  }
  int32_t s = 0;
  for (int j = 0; j < 32; ++j) s += static_cast<int32_t>(w[j]) * x[j];
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

template <DType Type>
float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return Type == DType::F16 ? half_to_float(h) : bf16_to_fp32(h);
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
      for (int64_t j = 0; j < n; ++j) wf[j] = half_at<Type>(row + 2 * (j0 + j));
      for (int64_t t = 0; t < T; ++t) {
        const float* xt = x + t * w.cols + j0;
        float acc[8] = {};  // 8 running sums (vectorizable), added at the end
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
          for (int k = 0; k < 8; ++k) acc[k] += wf[j + k] * xt[j + k];
        float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (; j < n; ++j) sum += wf[j] * xt[j];
        y[t * ldy + r] += sum;
      }
    }
    if (bias)
      for (int64_t t = 0; t < T; ++t) y[t * ldy + r] += bias[r];
  }
}

void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  const int64_t n = (r1 - r0) * w.cols;
  const uint8_t* src = w.row(r0);
  if (w.dtype != DType::F16) return dequantize(w.dtype, src, out, n);
  for (int64_t i = 0; i < n; ++i) out[i] = half_at<DType::F16>(src + 2 * i);
}

}  // namespace

const KernelTable& portable_kernels() {
  static const KernelTable table{quantize_row_q8, dequantize_rows, kernels::quantize_row_q8_k};
  return table;
}

namespace portable {
void gemm_q8_0(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
               int64_t ldy) {
  gemm_q<block_dot_q8_0, 34>(w, r0, r1, x, bias, y, ldy);
}
void gemm_q4_0(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
               int64_t ldy) {
  gemm_q<block_dot_q4_0, 18>(w, r0, r1, x, bias, y, ldy);
}
void gemm_f16(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, const float* bias, float* y,
              int64_t ldy) {
  gemm_half<DType::F16>(w, r0, r1, x, T, bias, y, ldy);
}
void gemm_bf16(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, const float* bias, float* y,
               int64_t ldy) {
  gemm_half<DType::BF16>(w, r0, r1, x, T, bias, y, ldy);
}
}  // namespace portable

}  // namespace troupe::kernels
