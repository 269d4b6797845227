// AVX512-VNNI kernels for Q8_0 / Q4_0 weights (256-bit registers, AVX512VL encoding), as in
// kernels_avx2.cpp but with one _mm256_dpbusd_epi32 (u8 x s8, four products summed into each
// int32 lane, no intermediate saturation) where AVX2 needs maddubs + madd and sign tricks:
//   Q8_0: w + 128 is unsigned (w ^ 0x80); sum (w + 128) x - 128 sum x = sum w x. The int32
//         accumulator starts at -128 * (the lane's partial sums of x), so the result is exact.
//   Q4_0: the nibbles are unsigned; the accumulator starts at -8 * (partial sums of x).
// Everything else (activation rounding, F16 / BF16, conversions) is the AVX2 table's.
#include "models/quant/kernels_x86.h"
#include "models/quant/quant_kernels.h"

#define TROUPE_AVX512VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace troupe::kernels {
namespace {

using namespace x86;

// -c * (partial sums of x over each group of 4), the starting value of a dot product whose
// weights carry the offset c.
TROUPE_AVX512VNNI inline __m256i minus_offset_sums(__m256i x, __m256i c) {
  return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, x));
}

// Rows r + i * step (i < R) times activation rows [t, t+C).
template <int R, int C>
TROUPE_AVX512VNNI void tile_q8_0(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                                 const float* bias, float* y, int64_t ldy) {
  const __m256i offset = _mm256_set1_epi8(static_cast<char>(0x80));
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  const int8_t* xq[C];
  const float* xd[C];
  for (int c = 0; c < C; ++c) {
    xq[c] = x.row_q(t + c);
    xd[c] = x.row_d(t + c);
  }
  __m256 acc[R][C];
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) acc[i][c] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 8 <= x.blocks; b += 8) {
    __m256 scale[R][C];
    for (int i = 0; i < R; ++i) {
      const __m256 dw = block_scales8<kQ8_0Bytes>(rows[i] + b * kQ8_0Bytes);
      for (int c = 0; c < C; ++c) scale[i][c] = _mm256_mul_ps(dw, _mm256_loadu_ps(xd[c] + b));
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m256i xv[C], start[C];
      for (int c = 0; c < C; ++c) {
        xv[c] = load_x(xq[c] + 32 * (b + j));
        start[c] = minus_offset_sums(xv[c], offset);
      }
      const __m256i idx = _mm256_set1_epi32(j);
      for (int i = 0; i < R; ++i) {
        const __m256i wv = _mm256_xor_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[i] + (b + j) * kQ8_0Bytes + 2)), offset);
        for (int c = 0; c < C; ++c)
          acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start[c], wv, xv[c])),
                                      _mm256_permutevar8x32_ps(scale[i][c], idx), acc[i][c]);
      }
    }
  }
  for (; b < x.blocks; ++b) {
    __m256i xv[C], start[C];
    for (int c = 0; c < C; ++c) {
      xv[c] = load_x(xq[c] + 32 * b);
      start[c] = minus_offset_sums(xv[c], offset);
    }
    for (int i = 0; i < R; ++i) {
      const uint8_t* block_i = rows[i] + b * kQ8_0Bytes;
      const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block_i + 2)), offset);
      const float dw = block_scale(block_i);
      for (int c = 0; c < C; ++c)
        acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start[c], wv, xv[c])),
                                    _mm256_set1_ps(dw * xd[c][b]), acc[i][c]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i * step] = hsum(acc[i][c]) + (bias ? bias[r + i * step] : 0.0f);
}

// Rows r + i * step (i < R) times activation rows [t, t+C), two blocks per step as in
// kernels_avx2.cpp.
template <int R, int C>
TROUPE_AVX512VNNI void tile_q4_0(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                                 const float* bias, float* y, int64_t ldy) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), eights = _mm256_set1_epi8(8);
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  const int8_t* xq[C];
  const float* xd[C];
  for (int c = 0; c < C; ++c) {
    xq[c] = x.row_q(t + c);
    xd[c] = x.row_d(t + c);
  }
  __m256 acc[R][C];
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) acc[i][c] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 8 <= x.blocks; b += 8) {
    __m256 scale[R][C];
    for (int i = 0; i < R; ++i) {
      const __m256 dw = block_scales8<kQ4_0Bytes>(rows[i] + b * kQ4_0Bytes);
      for (int c = 0; c < C; ++c) scale[i][c] = _mm256_mul_ps(dw, _mm256_loadu_ps(xd[c] + b));
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {  // blocks b+2k and b+2k+1
      __m256i xlo[C], xhi[C], start[C];
      for (int c = 0; c < C; ++c) {
        const __m256i xa = load_x(xq[c] + 32 * (b + 2 * k)), xb = load_x(xq[c] + 32 * (b + 2 * k + 1));
        xlo[c] = _mm256_permute2x128_si256(xa, xb, 0x20);
        xhi[c] = _mm256_permute2x128_si256(xa, xb, 0x31);
        start[c] = _mm256_sub_epi32(
            _mm256_setzero_si256(),
            _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), eights, xlo[c]), eights, xhi[c]));
      }
      for (int i = 0; i < R; ++i) {
        const __m256i packed = load_nibble_pair(rows[i] + (b + 2 * k) * kQ4_0Bytes);
        const __m256i lo = _mm256_and_si256(packed, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
        for (int c = 0; c < C; ++c) {
          const __m256i sums = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(start[c], lo, xlo[c]), hi, xhi[c]);
          acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), pair_scales(scale[i][c], k), acc[i][c]);
        }
      }
    }
  }
  for (; b < x.blocks; ++b) {  // the last blocks one at a time
    __m256i xv[C], start[C];
    for (int c = 0; c < C; ++c) {
      xv[c] = load_x(xq[c] + 32 * b);
      start[c] = minus_offset_sums(xv[c], eights);
    }
    for (int i = 0; i < R; ++i) {
      const uint8_t* block = rows[i] + b * kQ4_0Bytes;
      const __m256i wv = load_nibbles(block);
      const float dw = block_scale(block);
      for (int c = 0; c < C; ++c)
        acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start[c], wv, xv[c])),
                                    _mm256_set1_ps(dw * xd[c][b]), acc[i][c]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i * step] = hsum(acc[i][c]) + (bias ? bias[r + i * step] : 0.0f);
}

template <DType Type, int R, int C>
TROUPE_AVX512VNNI void tile_q(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                              const float* bias, float* y, int64_t ldy) {
  if constexpr (Type == DType::Q8_0)
    tile_q8_0<R, C>(w, r, step, x, t, bias, y, ldy);
  else
    tile_q4_0<R, C>(w, r, step, x, t, bias, y, ldy);
}

// As tile_q_all of kernels_avx2.cpp: four activation rows at a time, then two, then one.
template <DType Type, int R>
TROUPE_AVX512VNNI void tile_q_all(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, const float* bias,
                                  float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= x.n; t += 4) tile_q<Type, R, 4>(w, r, step, x, t, bias, y, ldy);
  for (; t + 2 <= x.n; t += 2) tile_q<Type, R, 2>(w, r, step, x, t, bias, y, ldy);
  if (t < x.n) tile_q<Type, R, 1>(w, r, step, x, t, bias, y, ldy);
}

// Strided row tiles, as gemm_q of kernels_avx2.cpp (which says why).
template <DType Type>
TROUPE_AVX512VNNI void gemm_q(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias,
                              float* y, int64_t ldy) {
  if (x.n == 1) {
    const int64_t step = (r1 - r0) / 4;
    for (int64_t k = 0; k < step; ++k) tile_q<Type, 4, 1>(w, r0 + k, step, x, 0, bias, y, ldy);
    for (int64_t r = r0 + 4 * step; r < r1; ++r) tile_q<Type, 1, 1>(w, r, 1, x, 0, bias, y, ldy);
    return;
  }
  const int64_t step = (r1 - r0) / 2;
  for (int64_t k = 0; k < step; ++k) tile_q_all<Type, 2>(w, r0 + k, step, x, bias, y, ldy);
  for (int64_t r = r0 + 2 * step; r < r1; ++r) tile_q_all<Type, 1>(w, r, 1, x, bias, y, ldy);
}

}  // namespace

const KernelTable& avx512vnni_kernels() { return avx2_kernels(); }

namespace avx512vnni {
void gemm_q8_0(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
               int64_t ldy) {
  kernels::gemm_q<DType::Q8_0>(w, r0, r1, x, bias, y, ldy);
}
void gemm_q4_0(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
               int64_t ldy) {
  kernels::gemm_q<DType::Q4_0>(w, r0, r1, x, bias, y, ldy);
}
}  // namespace avx512vnni

}  // namespace troupe::kernels
