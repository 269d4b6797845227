// AVX2 kernels for the Q4_K and Q6_K super-blocks (the Q4_K_M mix) times Q8_K activations,
// bit-identical to the portable kernels of kernels_blocks_portable.cpp: per super-block the
// same exact integer sums (order does not matter for integers), then the same fp32 steps
//   acc = acc + (d_w * d_x) * sumi   (- (dmin_w * d_x) * summ for Q4_K)
// with the products rounded before the sums (no_fma).
//   Q4_K: nibbles 0..15 (unsigned) x int8 activations with _mm256_maddubs_epi16 (pair sums
//         <= 2 * 15 * 127), times the sub-block's 6-bit scale with _mm256_madd_epi16 -> int32;
//         the mins against the activations' sums per 16 as integers.
//   Q6_K: q in 0..63 (unsigned, the stored value before - 32) the same way, times the int8
//         scale per 16; the - 32 is taken off as 32 * sum_k scale_k * bsum_k.
// Tiles of R weight rows x C activation rows share each unpacked block (R = 4, C = 1 for
// decode; R = 2, C <= 4 for batches), rows a quarter / half of the range apart as
// kernels_avx2.cpp explains.
#include "models/quant/block_layouts.h"
#include "models/quant/kernels_x86.h"
#include "models/quant/quant_kernels.h"

namespace troupe::kernels {
namespace {

using namespace x86;

constexpr size_t kQ4_KBytes = 144, kQ6_KBytes = 210;

TROUPE_AVX2 inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

TROUPE_AVX2 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// ---- Q4_K -----------------------------------------------------------------------------------

template <int R, int C>
TROUPE_AVX2 void tile_q4_k(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                           const float* bias, float* y, int64_t ldy) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  float acc[R][C] = {};
  for (int64_t b = 0; b < x.blocks; ++b) {
    const int8_t* xq[C];
    for (int c = 0; c < C; ++c) xq[c] = x.row_q(t + c) + b * 256;
    for (int i = 0; i < R; ++i) {
      const uint8_t* block = rows[i] + b * kQ4_KBytes;
      int32_t sc[8], mn[8];
      for (int j = 0; j < 8; ++j) blocks::scale_min_k4(j, block + 4, sc[j], mn[j]);
      __m256i sums[C];
      for (int c = 0; c < C; ++c) sums[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int m = 0; m < 4; ++m) {
        const __m256i packed = load32(block + 16 + 32 * m);
        const __m256i lo = _mm256_and_si256(packed, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
        const __m256i s_lo = _mm256_set1_epi16(static_cast<int16_t>(sc[2 * m]));
        const __m256i s_hi = _mm256_set1_epi16(static_cast<int16_t>(sc[2 * m + 1]));
        for (int c = 0; c < C; ++c) {
          const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load32(xq[c] + 64 * m)), s_lo);
          const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load32(xq[c] + 64 * m + 32)), s_hi);
          sums[c] = _mm256_add_epi32(sums[c], _mm256_add_epi32(p_lo, p_hi));
        }
      }
      const float d = block_scale(block), dmin = block_scale(block + 2);
      for (int c = 0; c < C; ++c) {
        const int16_t* bsums = x.row_bsums(t + c) + b * 16;
        int32_t summ = 0;
        for (int j = 0; j < 8; ++j) summ += mn[j] * (bsums[2 * j] + bsums[2 * j + 1]);
        const float dx = x.row_d(t + c)[b];
        acc[i][c] = acc[i][c] + no_fma((d * dx) * static_cast<float>(hsum_i32(sums[c])));
        acc[i][c] = acc[i][c] - no_fma((dmin * dx) * static_cast<float>(summ));
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i * step] = acc[i][c] + (bias ? bias[r + i * step] : 0.0f);
}

// ---- Q6_K -----------------------------------------------------------------------------------

template <int R, int C>
TROUPE_AVX2 void tile_q6_k(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                           const float* bias, float* y, int64_t ldy) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  float acc[R][C] = {};
  for (int64_t b = 0; b < x.blocks; ++b) {
    const int8_t* xq[C];
    for (int c = 0; c < C; ++c) xq[c] = x.row_q(t + c) + b * 256;
    for (int i = 0; i < R; ++i) {
      const uint8_t* block = rows[i] + b * kQ6_KBytes;
      const auto* sc = reinterpret_cast<const int8_t*>(block + 192);
      __m256i sums[C];
      for (int c = 0; c < C; ++c) sums[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
      for (int n = 0; n < 2; ++n) {  // halves of 128 values
        const __m256i ql0 = load32(block + 64 * n), ql1 = load32(block + 64 * n + 32);
        const __m256i qh = load32(block + 128 + 32 * n);
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
        q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
        for (int k = 0; k < 4; ++k) {
          const int s = 8 * n + 2 * k;  // scales of values 16 * s .. 16 * s + 31
          const __m256i scale = _mm256_set_m128i(_mm_set1_epi16(sc[s + 1]), _mm_set1_epi16(sc[s]));
          for (int c = 0; c < C; ++c)
            sums[c] = _mm256_add_epi32(
                sums[c], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], load32(xq[c] + 128 * n + 32 * k)), scale));
        }
      }
      const float d = block_scale(block + 208);
      for (int c = 0; c < C; ++c) {
        const int16_t* bsums = x.row_bsums(t + c) + b * 16;
        int32_t offset = 0;
        for (int k = 0; k < 16; ++k) offset += sc[k] * bsums[k];
        const float dx = x.row_d(t + c)[b];
        acc[i][c] = acc[i][c] + no_fma((d * dx) * static_cast<float>(hsum_i32(sums[c]) - 32 * offset));
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i * step] = acc[i][c] + (bias ? bias[r + i * step] : 0.0f);
}

// ---- row tiles ------------------------------------------------------------------------------

template <DType Type, int R, int C>
TROUPE_AVX2 void tile(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t, const float* bias,
                      float* y, int64_t ldy) {
  if constexpr (Type == DType::Q4_K)
    tile_q4_k<R, C>(w, r, step, x, t, bias, y, ldy);
  else
    tile_q6_k<R, C>(w, r, step, x, t, bias, y, ldy);
}

template <DType Type, int R>
TROUPE_AVX2 void tile_all(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, const float* bias, float* y,
                          int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= x.n; t += 4) tile<Type, R, 4>(w, r, step, x, t, bias, y, ldy);
  for (; t + 2 <= x.n; t += 2) tile<Type, R, 2>(w, r, step, x, t, bias, y, ldy);
  if (t < x.n) tile<Type, R, 1>(w, r, step, x, t, bias, y, ldy);
}

template <DType Type>
TROUPE_AVX2 void gemm(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
                      int64_t ldy) {
  if (x.n == 1) {
    const int64_t step = (r1 - r0) / 4;
    for (int64_t k = 0; k < step; ++k) tile<Type, 4, 1>(w, r0 + k, step, x, 0, bias, y, ldy);
    for (int64_t r = r0 + 4 * step; r < r1; ++r) tile<Type, 1, 1>(w, r, 1, x, 0, bias, y, ldy);
    return;
  }
  const int64_t step = (r1 - r0) / 2;
  for (int64_t k = 0; k < step; ++k) tile_all<Type, 2>(w, r0 + k, step, x, bias, y, ldy);
  for (int64_t r = r0 + 2 * step; r < r1; ++r) tile_all<Type, 1>(w, r, 1, x, bias, y, ldy);
}

}  // namespace

namespace avx2 {
void gemm_q4_k(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
               int64_t ldy) {
  gemm<DType::Q4_K>(w, r0, r1, x, bias, y, ldy);
}
void gemm_q6_k(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
               int64_t ldy) {
  gemm<DType::Q6_K>(w, r0, r1, x, bias, y, ldy);
}
}  // namespace avx2

}  // namespace troupe::kernels
