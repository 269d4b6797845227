// AVX2 kernels for the block formats of block_layouts.h, bit-identical to the portable kernels
// of kernels_blocks_portable.cpp: per block the same exact integer sum (order does not matter
// for integers), then the same fp32 steps in the same order,
//   32-blocks:  acc = acc + (d_w * d_x) * sumi   (+ m_w * s_x for Q4_1 / Q5_1)
//   K formats:  acc = acc + (d_w * d_x) * sumi   (- (dmin_w * d_x) * summ with mins)
// with the products rounded before the sums (no_fma).
// The integer sums use _mm256_maddubs_epi16 (unsigned x signed bytes -> int16 pair sums), then
// _mm256_madd_epi16 with the sub-block's scale (or ones) -> int32:
//   unsigned values (Q4_1, Q5_1, Q2_K 0..3, Q4_K 0..15, Q5_K 0..31) go in as they are;
//   Q3_K (-4..3) and Q6_K (-32..31) go in as q + 4 / q + 32 and the offset is taken off as
//   4 (32) * sum_k scale_k * bsum_k; Q5_0 (-16..15) and the IQ4 levels (-127..113) are signed:
//   |q| and sign(x, q) (|q|, |x| <= 127: the pair sums stay below 2^15).
// Tiles of R weight rows x C activation rows share each unpacked block (R = 4, C = 1 for
// decode; R = 2, C <= 4 for batches), rows a quarter / half of the range apart as
// kernels_avx2.cpp explains. Each (weight row, activation row) has its own accumulator, so a
// row's result does not depend on the other rows of the batch.
#include "models/quant/block_layouts.h"
#include "models/quant/kernels_x86.h"
#include "models/quant/quant_kernels.h"

#define TROUPE_AVX2_INLINE TROUPE_AVX2 __attribute__((always_inline)) inline

namespace troupe::kernels {
namespace {

using namespace x86;

TROUPE_AVX2_INLINE int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

TROUPE_AVX2_INLINE __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 16 bytes of nibbles as 32 values 0..15 in element order (low nibbles first, as ggml's 32-blocks).
TROUPE_AVX2_INLINE __m256i nibbles32(const uint8_t* p) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0f));
}

// The 32 bits at p as 32 bytes 0x10 (bit set) or 0 (as llama.cpp's bytes_from_bits_32).
TROUPE_AVX2_INLINE __m256i high_bits32(const uint8_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, 4);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int32_t>(bits)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
                                        _mm256_set1_epi64x(-1));
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// The IQ4 levels of 32 nibble values.
TROUPE_AVX2_INLINE __m256i iq4_levels(__m256i nibbles) {
  const __m256i table =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks::kIq4Levels)));
  return _mm256_shuffle_epi8(table, nibbles);
}

// Pair sums (16 x int16) of unsigned u (0..127) times signed x.
TROUPE_AVX2_INLINE __m256i dot_unsigned(__m256i u, __m256i x) { return _mm256_maddubs_epi16(u, x); }
// The same for signed q (|q| <= 127).
TROUPE_AVX2_INLINE __m256i dot_signed(__m256i q, __m256i x) {
  return _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
}

// int16 pair sums of values 16k .. 16k+31 times scale k (low lane) and k + 1 (high lane).
TROUPE_AVX2_INLINE __m256i times_scales16(__m256i pairs, int32_t scale_lo, int32_t scale_hi) {
  return _mm256_madd_epi16(pairs, _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(scale_hi)),
                                                   _mm_set1_epi16(static_cast<int16_t>(scale_lo))));
}

// ---- 32-element blocks (Q8_0 / Q8_1 activations) ----------------------------------------------
// unpack: the block's 32 values for dot(); step: the fp32 steps after the integer sum.

template <int C>
TROUPE_AVX2_INLINE void step_32(const uint8_t* block, __m256i (&pairs)[C], const Q8Rows& x, int64_t t, int64_t b,
                                bool with_min, float* acc) {
  const __m256i ones = _mm256_set1_epi16(1);
  const float d = block_scale(block), m = with_min ? block_scale(block + 2) : 0.0f;
  for (int c = 0; c < C; ++c) {
    const int32_t sumi = hsum_i32(_mm256_madd_epi16(pairs[c], ones));
    acc[c] = acc[c] + no_fma((d * x.row_d(t + c)[b]) * static_cast<float>(sumi));
    if (with_min) acc[c] = acc[c] + no_fma(m * x.row_s(t + c)[b]);
  }
}

struct Q4_1 {
  static constexpr size_t kBytes = 20;
  static constexpr int kElems = 32;
  template <int C>
  TROUPE_AVX2_INLINE static void accumulate(const uint8_t* block, const Q8Rows& x, int64_t t, int64_t b, float* acc) {
    const __m256i q = nibbles32(block + 4);
    __m256i pairs[C];
    for (int c = 0; c < C; ++c) pairs[c] = dot_unsigned(q, load32(x.row_q(t + c) + 32 * b));
    step_32<C>(block, pairs, x, t, b, true, acc);
  }
};

struct Q5_0 {
  static constexpr size_t kBytes = 22;
  static constexpr int kElems = 32;
  template <int C>
  TROUPE_AVX2_INLINE static void accumulate(const uint8_t* block, const Q8Rows& x, int64_t t, int64_t b, float* acc) {
    const __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles32(block + 6), high_bits32(block + 2)),
                                      _mm256_set1_epi8(16));
    __m256i pairs[C];
    for (int c = 0; c < C; ++c) pairs[c] = dot_signed(q, load32(x.row_q(t + c) + 32 * b));
    step_32<C>(block, pairs, x, t, b, false, acc);
  }
};

struct Q5_1 {
  static constexpr size_t kBytes = 24;
  static constexpr int kElems = 32;
  template <int C>
  TROUPE_AVX2_INLINE static void accumulate(const uint8_t* block, const Q8Rows& x, int64_t t, int64_t b, float* acc) {
    const __m256i q = _mm256_or_si256(nibbles32(block + 8), high_bits32(block + 4));
    __m256i pairs[C];
    for (int c = 0; c < C; ++c) pairs[c] = dot_unsigned(q, load32(x.row_q(t + c) + 32 * b));
    step_32<C>(block, pairs, x, t, b, true, acc);
  }
};

struct IQ4_NL {
  static constexpr size_t kBytes = 18;
  static constexpr int kElems = 32;
  template <int C>
  TROUPE_AVX2_INLINE static void accumulate(const uint8_t* block, const Q8Rows& x, int64_t t, int64_t b, float* acc) {
    const __m256i q = iq4_levels(nibbles32(block + 2));
    __m256i pairs[C];
    for (int c = 0; c < C; ++c) pairs[c] = dot_signed(q, load32(x.row_q(t + c) + 32 * b));
    step_32<C>(block, pairs, x, t, b, false, acc);
  }
};

// ---- 256-element super-blocks (Q8_K activations) ----------------------------------------------

// acc = acc + (d * d_x) * sumi, then - (dmin * d_x) * summ where the format has mins.
template <int C>
TROUPE_AVX2_INLINE void step_k(float d, const __m256i (&sums)[C], const int32_t (&offset)[C], const Q8Rows& x,
                               int64_t t, int64_t b, float* acc) {
  for (int c = 0; c < C; ++c)
    acc[c] = acc[c] + no_fma((d * x.row_d(t + c)[b]) * static_cast<float>(hsum_i32(sums[c]) - offset[c]));
}
template <int C>
TROUPE_AVX2_INLINE void step_k_min(float d, float dmin, const __m256i (&sums)[C], const int32_t (&summ)[C],
                                   const Q8Rows& x, int64_t t, int64_t b, float* acc) {
  for (int c = 0; c < C; ++c) {
    const float dx = x.row_d(t + c)[b];
    acc[c] = acc[c] + no_fma((d * dx) * static_cast<float>(hsum_i32(sums[c])));
    acc[c] = acc[c] - no_fma((dmin * dx) * static_cast<float>(summ[c]));
  }
}

// sum_k weight[k] * bsums[k] over the 16 sums of the activation row's block b.
template <int C>
TROUPE_AVX2_INLINE void weighted_bsums(const int32_t (&weight)[16], const Q8Rows& x, int64_t t, int64_t b,
                                       int32_t (&out)[C]) {
  for (int c = 0; c < C; ++c) {
    const int16_t* bsums = x.row_bsums(t + c) + 16 * b;
    int32_t s = 0;
    for (int k = 0; k < 16; ++k) s += weight[k] * bsums[k];
    out[c] = s;
  }
}

// Q2_K: 2-bit values 0..3 (4 shifts of 32 bytes per half), 4-bit scale and min per 16.
struct Q2_K {
  static constexpr size_t kBytes = 84;
  static constexpr int kElems = 256;
  template <int C>
  TROUPE_AVX2_INLINE static void accumulate(const uint8_t* block, const Q8Rows& x, int64_t t, int64_t b, float* acc) {
    const __m256i three = _mm256_set1_epi8(3);
    int32_t sc[16], mn[16];
    for (int k = 0; k < 16; ++k) {
      sc[k] = block[k] & 0x0f;
      mn[k] = block[k] >> 4;
    }
    __m256i sums[C];
    for (int c = 0; c < C; ++c) sums[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int n = 0; n < 2; ++n) {
      __m256i bits = load32(block + 16 + 32 * n);
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m256i q = _mm256_and_si256(bits, three);
        bits = _mm256_srli_epi16(bits, 2);
        const int k = 8 * n + 2 * s;
        for (int c = 0; c < C; ++c)
          sums[c] = _mm256_add_epi32(
              sums[c], times_scales16(dot_unsigned(q, load32(x.row_q(t + c) + 256 * b + 128 * n + 32 * s)), sc[k],
                                      sc[k + 1]));
      }
    }
    int32_t summ[C];
    weighted_bsums<C>(mn, x, t, b, summ);
    step_k_min<C>(block_scale(block + 80), block_scale(block + 82), sums, summ, x, t, b, acc);
  }
};

// Q3_K: 2 low bits plus a high bit (set: +0, clear: -4), taken as q + 4 in 0..7; 6-bit scales - 32.
struct Q3_K {
  static constexpr size_t kBytes = 110;
  static constexpr int kElems = 256;
  template <int C>
  TROUPE_AVX2_INLINE static void accumulate(const uint8_t* block, const Q8Rows& x, int64_t t, int64_t b, float* acc) {
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    const uint8_t* s6 = block + 96;
    int32_t sc[16];
    for (int k = 0; k < 16; ++k) {
      const int low = k < 8 ? (s6[k] & 0x0f) : (s6[k - 8] >> 4);
      const int high = (s6[8 + (k % 4)] >> (2 * (k / 4))) & 3;
      sc[k] = (low | (high << 4)) - 32;
    }
    __m256i hmask = load32(block);
    __m256i sums[C];
    for (int c = 0; c < C; ++c) sums[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int n = 0; n < 2; ++n) {
      __m256i bits = load32(block + 32 + 32 * n);
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m256i high = _mm256_slli_epi16(_mm256_and_si256(hmask, one), 2);
        const __m256i q = _mm256_or_si256(_mm256_and_si256(bits, three), high);
        bits = _mm256_srli_epi16(bits, 2);
        hmask = _mm256_srli_epi16(hmask, 1);
        const int k = 8 * n + 2 * s;
        for (int c = 0; c < C; ++c)
          sums[c] = _mm256_add_epi32(
              sums[c], times_scales16(dot_unsigned(q, load32(x.row_q(t + c) + 256 * b + 128 * n + 32 * s)), sc[k],
                                      sc[k + 1]));
      }
    }
    int32_t offset[C];
    weighted_bsums<C>(sc, x, t, b, offset);
    for (int c = 0; c < C; ++c) offset[c] *= 4;
    step_k<C>(block_scale(block + 108), sums, offset, x, t, b, acc);
  }
};

// Q4_K: nibbles 0..15, 6-bit scale and min per 32. Q5_K: the same plus a fifth bit from 32
// bytes of high bits (bits 2m, 2m + 1 for the m-th 64 values), 0..31.
template <bool kFifthBit>
struct Q4_K_or_Q5_K {
  static constexpr size_t kBytes = kFifthBit ? 176 : 144;
  static constexpr int kElems = 256;
  template <int C>
  TROUPE_AVX2_INLINE static void accumulate(const uint8_t* block, const Q8Rows& x, int64_t t, int64_t b, float* acc) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    int32_t sc[8], mn[16];
    for (int j = 0; j < 8; ++j) {
      blocks::scale_min_k4(j, block + 4, sc[j], mn[2 * j]);
      mn[2 * j + 1] = mn[2 * j];
    }
    const uint8_t* qs = block + (kFifthBit ? 48 : 16);
    __m256i qh = kFifthBit ? load32(block + 16) : _mm256_setzero_si256();
    __m256i sums[C];
    for (int c = 0; c < C; ++c) sums[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) {
      const __m256i packed = load32(qs + 32 * m);
      __m256i lo = _mm256_and_si256(packed, low4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
      if constexpr (kFifthBit) {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), one), 4));
        qh = _mm256_srli_epi16(qh, 2);
      }
      const __m256i s_lo = _mm256_set1_epi16(static_cast<int16_t>(sc[2 * m]));
      const __m256i s_hi = _mm256_set1_epi16(static_cast<int16_t>(sc[2 * m + 1]));
      for (int c = 0; c < C; ++c) {
        const int8_t* xq = x.row_q(t + c) + 256 * b + 64 * m;
        const __m256i p_lo = _mm256_madd_epi16(dot_unsigned(lo, load32(xq)), s_lo);
        const __m256i p_hi = _mm256_madd_epi16(dot_unsigned(hi, load32(xq + 32)), s_hi);
        sums[c] = _mm256_add_epi32(sums[c], _mm256_add_epi32(p_lo, p_hi));
      }
    }
    int32_t summ[C];
    weighted_bsums<C>(mn, x, t, b, summ);
    step_k_min<C>(block_scale(block), block_scale(block + 2), sums, summ, x, t, b, acc);
  }
};
using Q4_K = Q4_K_or_Q5_K<false>;
using Q5_K = Q4_K_or_Q5_K<true>;

// Q6_K: 4 low bits plus 2 high bits, 0..63 (the stored q + 32); int8 scale per 16.
struct Q6_K {
  static constexpr size_t kBytes = 210;
  static constexpr int kElems = 256;
  template <int C>
  TROUPE_AVX2_INLINE static void accumulate(const uint8_t* block, const Q8Rows& x, int64_t t, int64_t b, float* acc) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
    const auto* s8 = reinterpret_cast<const int8_t*>(block + 192);
    int32_t sc[16];
    for (int k = 0; k < 16; ++k) sc[k] = s8[k];
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
      for (int s = 0; s < 4; ++s) {
        const int k = 8 * n + 2 * s;  // scales of values 16k .. 16k + 31
        for (int c = 0; c < C; ++c)
          sums[c] = _mm256_add_epi32(
              sums[c], times_scales16(dot_unsigned(q[s], load32(x.row_q(t + c) + 256 * b + 128 * n + 32 * s)), sc[k],
                                      sc[k + 1]));
      }
    }
    int32_t offset[C];
    weighted_bsums<C>(sc, x, t, b, offset);
    for (int c = 0; c < C; ++c) offset[c] *= 32;
    step_k<C>(block_scale(block + 208), sums, offset, x, t, b, acc);
  }
};

// IQ4_XS: IQ4 levels, 6-bit scale - 32 per 32.
struct IQ4_XS {
  static constexpr size_t kBytes = 136;
  static constexpr int kElems = 256;
  template <int C>
  TROUPE_AVX2_INLINE static void accumulate(const uint8_t* block, const Q8Rows& x, int64_t t, int64_t b, float* acc) {
    uint16_t scales_h;
    std::memcpy(&scales_h, block + 2, 2);
    const uint8_t* scales_l = block + 4;
    __m256i sums[C];
    for (int c = 0; c < C; ++c) sums[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | (((scales_h >> (2 * ib)) & 3) << 4);
      const __m256i scale = _mm256_set1_epi16(static_cast<int16_t>(ls - 32));
      const __m256i q = iq4_levels(nibbles32(block + 8 + 16 * ib));
      for (int c = 0; c < C; ++c)
        sums[c] = _mm256_add_epi32(
            sums[c], _mm256_madd_epi16(dot_signed(q, load32(x.row_q(t + c) + 256 * b + 32 * ib)), scale));
    }
    const int32_t none[C] = {};
    step_k<C>(block_scale(block), sums, none, x, t, b, acc);
  }
};

// ---- row tiles ------------------------------------------------------------------------------

template <class F, int R, int C>
TROUPE_AVX2 void tile(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t, const float* bias,
                      float* y, int64_t ldy) {
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  float acc[R][C] = {};
  for (int64_t b = 0; b < x.blocks; ++b)
    for (int i = 0; i < R; ++i) F::template accumulate<C>(rows[i] + b * F::kBytes, x, t, b, acc[i]);
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i * step] = acc[i][c] + (bias ? bias[r + i * step] : 0.0f);
}

template <class F, int R>
TROUPE_AVX2 void tile_all(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, const float* bias, float* y,
                          int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= x.n; t += 4) tile<F, R, 4>(w, r, step, x, t, bias, y, ldy);
  for (; t + 2 <= x.n; t += 2) tile<F, R, 2>(w, r, step, x, t, bias, y, ldy);
  if (t < x.n) tile<F, R, 1>(w, r, step, x, t, bias, y, ldy);
}

template <class F>
TROUPE_AVX2 void gemm(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
                      int64_t ldy) {
  if (x.n == 1) {
    const int64_t step = (r1 - r0) / 4;
    for (int64_t k = 0; k < step; ++k) tile<F, 4, 1>(w, r0 + k, step, x, 0, bias, y, ldy);
    for (int64_t r = r0 + 4 * step; r < r1; ++r) tile<F, 1, 1>(w, r, 1, x, 0, bias, y, ldy);
    return;
  }
  const int64_t step = (r1 - r0) / 2;
  for (int64_t k = 0; k < step; ++k) tile_all<F, 2>(w, r0 + k, step, x, bias, y, ldy);
  for (int64_t r = r0 + 2 * step; r < r1; ++r) tile_all<F, 1>(w, r, 1, x, bias, y, ldy);
}

}  // namespace

namespace avx2 {
#define TROUPE_GEMM(name, format)                                                                                \
  void name(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,        \
            int64_t ldy) {                                                                                       \
    gemm<format>(w, r0, r1, x, bias, y, ldy);                                                                    \
  }
TROUPE_GEMM(gemm_q4_1, Q4_1)
TROUPE_GEMM(gemm_q5_0, Q5_0)
TROUPE_GEMM(gemm_q5_1, Q5_1)
TROUPE_GEMM(gemm_iq4_nl, IQ4_NL)
TROUPE_GEMM(gemm_q2_k, Q2_K)
TROUPE_GEMM(gemm_q3_k, Q3_K)
TROUPE_GEMM(gemm_q4_k, Q4_K)
TROUPE_GEMM(gemm_q5_k, Q5_K)
TROUPE_GEMM(gemm_q6_k, Q6_K)
TROUPE_GEMM(gemm_iq4_xs, IQ4_XS)
#undef TROUPE_GEMM
}  // namespace avx2

}  // namespace troupe::kernels
