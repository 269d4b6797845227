// Conversions to fp32 and portable kernels for the block formats of block_layouts.h: Q4_1,
// Q5_0, Q5_1, IQ4_NL (blocks of 32, activations Q8_0 or Q8_1) and Q2_K .. Q6_K, IQ4_XS
// (super-blocks of 256, activations Q8_K). As llama.cpp's reference dot products: per block an
// exact integer sum (K formats: sum over sub-blocks of scale * dot(q, x); the mins against the
// activations' sums per 16), then in fp32, for each block in order:
//   32-blocks:  acc = acc + (d_w * d_x) * sumi   (+ m_w * s_x for Q4_1 / Q5_1)
//   K formats:  acc = acc + (d_w * d_x) * sumi   (- (dmin_w * d_x) * summ with mins)
// with every product rounded before it is added (no_fma), so that the SIMD kernels, which do
// the same float steps, give the same bits. A row's result depends on that row only.
#include "models/quant/block_codecs.h"
#include "models/quant/block_layouts.h"
#include "models/quant/quant_kernels.h"

namespace troupe {
namespace {

using blocks::Block32;
using blocks::BlockK;

template <void (*Decode)(const uint8_t*, Block32&), size_t Bytes>
void dequantize_32(const uint8_t* src, float* dst, int64_t n) {
  Block32 b;
  for (int64_t i = 0; i < n / 32; ++i, src += Bytes, dst += 32) {
    Decode(src, b);
    for (int j = 0; j < 32; ++j) dst[j] = b.d * static_cast<float>(b.q[j]) + b.m;
  }
}

template <void (*Decode)(const uint8_t*, BlockK&), size_t Bytes>
void dequantize_k(const uint8_t* src, float* dst, int64_t n) {
  BlockK b;
  for (int64_t i = 0; i < n / 256; ++i, src += Bytes) {
    Decode(src, b);
    for (int k = 0; k < 16; ++k, dst += 16) {
      const float dl = b.d * static_cast<float>(b.scale[k]), ml = b.dmin * static_cast<float>(b.min[k]);
      for (int l = 0; l < 16; ++l) dst[l] = dl * static_cast<float>(b.q[16 * k + l]) - ml;
    }
  }
}

}  // namespace

void dequantize_row_q4_1(const uint8_t* s, float* d, int64_t n) { dequantize_32<blocks::decode_q4_1, 20>(s, d, n); }
void dequantize_row_q5_0(const uint8_t* s, float* d, int64_t n) { dequantize_32<blocks::decode_q5_0, 22>(s, d, n); }
void dequantize_row_q5_1(const uint8_t* s, float* d, int64_t n) { dequantize_32<blocks::decode_q5_1, 24>(s, d, n); }
void dequantize_row_iq4_nl(const uint8_t* s, float* d, int64_t n) { dequantize_32<blocks::decode_iq4_nl, 18>(s, d, n); }
void dequantize_row_q2_k(const uint8_t* s, float* d, int64_t n) { dequantize_k<blocks::decode_q2_k, 84>(s, d, n); }
void dequantize_row_q3_k(const uint8_t* s, float* d, int64_t n) { dequantize_k<blocks::decode_q3_k, 110>(s, d, n); }
void dequantize_row_q4_k(const uint8_t* s, float* d, int64_t n) { dequantize_k<blocks::decode_q4_k, 144>(s, d, n); }
void dequantize_row_q5_k(const uint8_t* s, float* d, int64_t n) { dequantize_k<blocks::decode_q5_k, 176>(s, d, n); }
void dequantize_row_q6_k(const uint8_t* s, float* d, int64_t n) { dequantize_k<blocks::decode_q6_k, 210>(s, d, n); }
void dequantize_row_iq4_xs(const uint8_t* s, float* d, int64_t n) { dequantize_k<blocks::decode_iq4_xs, 136>(s, d, n); }

namespace kernels {
namespace {

// Q8_0 / Q8_1 activations, weights in blocks of 32. Each weight block is decoded once for all
// activation rows; y holds the running sums (each row's steps are the same whatever T).
template <void (*Decode)(const uint8_t*, Block32&), size_t Bytes, bool WithMin>
void gemm_32(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
             int64_t ldy) {
  Block32 b;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row(r);
    for (int64_t t = 0; t < x.n; ++t) y[t * ldy + r] = 0;
    for (int64_t i = 0; i < x.blocks; ++i) {
      Decode(row + i * Bytes, b);
      for (int64_t t = 0; t < x.n; ++t) {
        const int8_t* q = x.row_q(t) + 32 * i;
        int32_t sumi = 0;
        for (int j = 0; j < 32; ++j) sumi += static_cast<int32_t>(b.q[j]) * q[j];
        float acc = y[t * ldy + r];
        acc = acc + no_fma((b.d * x.row_d(t)[i]) * static_cast<float>(sumi));
        if constexpr (WithMin) acc = acc + no_fma(b.m * x.row_s(t)[i]);
        y[t * ldy + r] = acc;
      }
    }
    if (bias)
      for (int64_t t = 0; t < x.n; ++t) y[t * ldy + r] = y[t * ldy + r] + bias[r];
  }
}

// Q8_K activations, weights in super-blocks of 256, decoded once for all activation rows.
template <void (*Decode)(const uint8_t*, BlockK&), size_t Bytes>
void gemm_k(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
            int64_t ldy) {
  BlockK b;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row(r);
    for (int64_t t = 0; t < x.n; ++t) y[t * ldy + r] = 0;
    for (int64_t i = 0; i < x.blocks; ++i) {
      Decode(row + i * Bytes, b);
      for (int64_t t = 0; t < x.n; ++t) {
        const int8_t* q = x.row_q(t) + 256 * i;
        const int16_t* bsums = x.row_bsums(t) + 16 * i;
        const float d = x.row_d(t)[i];
        int32_t sumi = 0, summ = 0;
        for (int k = 0; k < 16; ++k) {
          int32_t s = 0;
          for (int l = 0; l < 16; ++l) s += static_cast<int32_t>(b.q[16 * k + l]) * q[16 * k + l];
          sumi += b.scale[k] * s;
          summ += b.min[k] * bsums[k];
        }
        float acc = y[t * ldy + r];
        acc = acc + no_fma((b.d * d) * static_cast<float>(sumi));
        if (b.has_min) acc = acc - no_fma((b.dmin * d) * static_cast<float>(summ));
        y[t * ldy + r] = acc;
      }
    }
    if (bias)
      for (int64_t t = 0; t < x.n; ++t) y[t * ldy + r] = y[t * ldy + r] + bias[r];
  }
}

}  // namespace

namespace portable {
#define TROUPE_GEMM(name, impl)                                                                                  \
  void name(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,        \
            int64_t ldy) {                                                                                       \
    impl(w, r0, r1, x, bias, y, ldy);                                                                            \
  }
TROUPE_GEMM(gemm_q4_1, (gemm_32<blocks::decode_q4_1, 20, true>))
TROUPE_GEMM(gemm_q5_0, (gemm_32<blocks::decode_q5_0, 22, false>))
TROUPE_GEMM(gemm_q5_1, (gemm_32<blocks::decode_q5_1, 24, true>))
TROUPE_GEMM(gemm_iq4_nl, (gemm_32<blocks::decode_iq4_nl, 18, false>))
TROUPE_GEMM(gemm_q2_k, (gemm_k<blocks::decode_q2_k, 84>))
TROUPE_GEMM(gemm_q3_k, (gemm_k<blocks::decode_q3_k, 110>))
TROUPE_GEMM(gemm_q4_k, (gemm_k<blocks::decode_q4_k, 144>))
TROUPE_GEMM(gemm_q5_k, (gemm_k<blocks::decode_q5_k, 176>))
TROUPE_GEMM(gemm_q6_k, (gemm_k<blocks::decode_q6_k, 210>))
TROUPE_GEMM(gemm_iq4_xs, (gemm_k<blocks::decode_iq4_xs, 136>))
#undef TROUPE_GEMM
}  // namespace portable

}  // namespace kernels
}  // namespace troupe
