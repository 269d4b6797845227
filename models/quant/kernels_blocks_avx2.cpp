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
// kernels_avx2.cpp explains. Each (weight row, activation row) has its own accumulator (for the
// K formats a lane of one SSE register per activation row, lane i = weight row i, all lanes
// doing the same steps), so a row's result does not depend on the other rows of the batch.
#include <algorithm>
#include <type_traits>

#include "models/quant/block_layouts.h"
#include "models/quant/kernels_x86.h"
#include "models/quant/quant_kernels.h"

#define TROUPE_AVX2_INLINE TROUPE_AVX2 __attribute__((always_inline)) inline

namespace troupe::kernels {
namespace {

using namespace x86;

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

// ---- activations to Q8_K ----------------------------------------------------------------------

// As quantize_row_q8_k of activations.cpp, the same bits: the first value of largest magnitude
// m (NaNs skipped) gives iscale = -127 / m; q = round-half-even(iscale * x) (cvtps_epi32 in the
// default rounding mode, as nearbyint) capped at 127 and cut to its low byte (as the cast);
// the sums per 16 of those bytes; d = 1 / iscale.
TROUPE_AVX2 void quantize_q8_k(const float* x, int64_t cols, int8_t* q, float* d, int16_t* bsums) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i cap = _mm256_set1_epi32(127), low8 = _mm256_set1_epi32(0xff);
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < cols / 256; ++b, x += 256, q += 256, bsums += 16) {
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 32; ++i) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8 * i), abs_mask), m);  // NaN: m
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    if (amax == 0) {
      d[b] = 0;
      std::memset(q, 0, 256);
      std::memset(bsums, 0, 16 * sizeof(int16_t));
      continue;
    }
    int first = 0;
    const __m256 va = _mm256_set1_ps(amax);
    for (int i = 0; i < 32; ++i) {
      const int hit =
          _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8 * i), abs_mask), va, _CMP_EQ_OQ));
      if (hit) {
        first = 8 * i + __builtin_ctz(static_cast<unsigned>(hit));
        break;
      }
    }
    const float iscale = -127.0f / x[first];
    const __m256 vs = _mm256_set1_ps(iscale);
    __m256i quads[8];  // per 32 values: lane 0 the 4 sums of 4 of the first 16, lane 1 of the next 16
    for (int v = 0; v < 8; ++v) {
      __m256i i32[4];
      for (int k = 0; k < 4; ++k)
        i32[k] = _mm256_and_si256(
            _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + 32 * v + 8 * k))), cap), low8);
      const __m256i bytes = _mm256_permutevar8x32_epi32(
          _mm256_packus_epi16(_mm256_packus_epi32(i32[0], i32[1]), _mm256_packus_epi32(i32[2], i32[3])),
          _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * v), bytes);
      quads[v] = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, bytes), ones16);
    }
    // hadd twice: lane 0 holds the sums of the even sixteens, lane 1 of the odd ones.
    const __m256i even_odd_a = _mm256_hadd_epi32(_mm256_hadd_epi32(quads[0], quads[1]), _mm256_hadd_epi32(quads[2], quads[3]));
    const __m256i even_odd_b = _mm256_hadd_epi32(_mm256_hadd_epi32(quads[4], quads[5]), _mm256_hadd_epi32(quads[6], quads[7]));
    const __m256i sums = _mm256_packs_epi32(even_odd_a, even_odd_b);  // |sum| <= 2048
    const __m128i even = _mm256_castsi256_si128(sums), odd = _mm256_extracti128_si256(sums, 1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bsums), _mm_unpacklo_epi16(even, odd));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bsums + 8), _mm_unpackhi_epi16(even, odd));
    d[b] = 1 / iscale;
  }
}

// ---- 32-element blocks (Q8_0 / Q8_1 activations) ----------------------------------------------
// unpack: the block's 32 values as bytes; pairs: their 16 int16 pair sums with 32 activations.
// With kHasMin the block holds d then m, and the activations are Q8_1 (their scale x sum in s).

struct Q4_1 {
  static constexpr size_t kBytes = 20;
  static constexpr int kElems = 32;
  static constexpr bool kHasMin = true;
  TROUPE_AVX2_INLINE static __m256i unpack(const uint8_t* block) { return nibbles32(block + 4); }
  TROUPE_AVX2_INLINE static __m256i pairs(__m256i q, __m256i x) { return dot_unsigned(q, x); }
};

struct Q5_0 {
  static constexpr size_t kBytes = 22;
  static constexpr int kElems = 32;
  static constexpr bool kHasMin = false;
  TROUPE_AVX2_INLINE static __m256i unpack(const uint8_t* block) {
    return _mm256_sub_epi8(_mm256_or_si256(nibbles32(block + 6), high_bits32(block + 2)), _mm256_set1_epi8(16));
  }
  TROUPE_AVX2_INLINE static __m256i pairs(__m256i q, __m256i x) { return dot_signed(q, x); }
};

struct Q5_1 {
  static constexpr size_t kBytes = 24;
  static constexpr int kElems = 32;
  static constexpr bool kHasMin = true;
  TROUPE_AVX2_INLINE static __m256i unpack(const uint8_t* block) {
    return _mm256_or_si256(nibbles32(block + 8), high_bits32(block + 4));
  }
  TROUPE_AVX2_INLINE static __m256i pairs(__m256i q, __m256i x) { return dot_unsigned(q, x); }
};

struct IQ4_NL {
  static constexpr size_t kBytes = 18;
  static constexpr int kElems = 32;
  static constexpr bool kHasMin = false;
  TROUPE_AVX2_INLINE static __m256i unpack(const uint8_t* block) { return iq4_levels(nibbles32(block + 2)); }
  TROUPE_AVX2_INLINE static __m256i pairs(__m256i q, __m256i x) { return dot_signed(q, x); }
};

// ---- 256-element super-blocks (Q8_K activations) ----------------------------------------------
// Per block and weight row a format gives the exact integer sums against each activation row:
// `sum` (8 int32 lanes whose total is sumi, an offset already taken off) and, with mins,
// `msum` (4 int32 lanes whose total is summ; Q2_K: 8, see tile_k_min8). Scales and mins are unpacked with vector
// shuffles into 16 int16 (one per 16 values), the mins x bsums term is one madd, and a pair of
// sub-block scales reaches its 32 values by one byte shuffle. tile_k then sums the lanes of
// the R rows together and does their fp32 steps side by side, one lane per row.

// Activation row t's block b: the 256 values and the 16 sums per 16 (and their 8 pair sums).
struct XBlock {
  const int8_t* q;
  __m256i bsums16;
  __m128i bsums8;
};

TROUPE_AVX2_INLINE XBlock x_block(const Q8Rows& x, int64_t t, int64_t b) {
  const __m256i s = load32(x.row_bsums(t) + 16 * b);
  return {x.row_q(t) + 256 * b, s, _mm_hadd_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1))};
}

// 16 int16 scales (of values 16k .. 16k + 15) as two vectors, each with 8 scales in both lanes.
struct Scales16 {
  __m256i half[2];
};
TROUPE_AVX2_INLINE Scales16 scales16(__m256i s) {
  return {{_mm256_permute2x128_si256(s, s, 0x00), _mm256_permute2x128_si256(s, s, 0x11)}};
}
// Scale k (low lane) and k + 1 (high lane), k even, broadcast over 8 int16 each.
TROUPE_AVX2_INLINE __m256i scale_pair(const Scales16& s, int k) {
  const int j = k % 8;  // int16 j, j + 1 of the half: bytes 2j, 2j + 1 | 2j + 2, 2j + 3
  const __m256i pick = _mm256_setr_epi8(2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1,
                                        2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1,
                                        2 * j + 2, 2 * j + 3, 2 * j + 2, 2 * j + 3, 2 * j + 2, 2 * j + 3, 2 * j + 2,
                                        2 * j + 3, 2 * j + 2, 2 * j + 3, 2 * j + 2, 2 * j + 3, 2 * j + 2, 2 * j + 3,
                                        2 * j + 2, 2 * j + 3);
  return _mm256_shuffle_epi8(s.half[k / 8], pick);
}
// 8 int16 scales (of values 32j .. 32j + 31) in both lanes: scale j broadcast over 16 int16.
TROUPE_AVX2_INLINE __m256i scale_of_32(__m256i s8, int j) {
  return _mm256_shuffle_epi8(s8, _mm256_set1_epi16(static_cast<int16_t>(((2 * j + 1) << 8) | (2 * j))));
}

// Bits `from`, from + 1 .. of every byte moved to bit 4 (and up), 16-bit lanes.
template <int kFrom>
TROUPE_AVX2_INLINE __m256i bit_to_4(__m256i v) {
  if constexpr (kFrom < 4) return _mm256_slli_epi16(v, 4 - kFrom);
  else if constexpr (kFrom > 4) return _mm256_srli_epi16(v, kFrom - 4);
  else return v;
}

// Q2_K: 2-bit values 0..3 (4 shifts of 32 bytes per half), 4-bit scale and min per 16.
struct Q2_K {
  static constexpr size_t kBytes = 84;
  static constexpr int kElems = 256;
  static constexpr bool kHasMin = true;
  static constexpr int kD = 80, kDmin = 82;
  template <int C>
  TROUPE_AVX2_INLINE static void sums(const uint8_t* block, const XBlock (&x)[C], __m256i (&sum)[C],
                                      __m256i (&msum)[C]) {
    const __m256i three = _mm256_set1_epi8(3);
    const __m256i packed = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block)));
    const __m256i mins = _mm256_srli_epi16(packed, 4);
    for (int c = 0; c < C; ++c) {
      msum[c] = _mm256_madd_epi16(mins, x[c].bsums16);
      sum[c] = _mm256_setzero_si256();
    }
    const Scales16 sc = scales16(_mm256_and_si256(packed, _mm256_set1_epi16(0x0f)));
#pragma GCC unroll 2
    for (int n = 0; n < 2; ++n) {
      __m256i bits = load32(block + 16 + 32 * n);
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m256i q = _mm256_and_si256(bits, three);
        bits = _mm256_srli_epi16(bits, 2);
        const __m256i scale = scale_pair(sc, 8 * n + 2 * s);
        for (int c = 0; c < C; ++c)
          sum[c] = _mm256_add_epi32(
              sum[c], _mm256_madd_epi16(dot_unsigned(q, load32(x[c].q + 128 * n + 32 * s)), scale));
      }
    }
  }
};

// sum[c] = -offset * sum_k scale_k * bsums_k: the offset of values stored as q + offset.
template <int kShift, int C>
TROUPE_AVX2_INLINE void start_with_offset(__m256i scales, const XBlock (&x)[C], __m256i (&sum)[C]) {
  for (int c = 0; c < C; ++c)
    sum[c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(scales, x[c].bsums16), kShift));
}

// Q3_K: 2 low bits plus a high bit (set: +0, clear: -4), taken as q + 4 in 0..7; 6-bit scales - 32.
struct Q3_K {
  static constexpr size_t kBytes = 110;
  static constexpr int kElems = 256;
  static constexpr bool kHasMin = false;
  static constexpr int kD = 108, kDmin = 0;
  template <int C>
  TROUPE_AVX2_INLINE static void sums(const uint8_t* block, const XBlock (&x)[C], __m256i (&sum)[C], __m128i (&)[C]) {
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    // Scale k: 4 low bits from byte k (k < 8, low nibble) or k - 8 (high nibble), 2 high bits
    // from byte 8 + k % 4 at bit 2 (k / 4); the 12 bytes end 2 bytes before the block does.
    const uint8_t* s6 = block + 96;
    uint64_t low_bytes;
    uint32_t high_bytes;
    std::memcpy(&low_bytes, s6, 8);
    std::memcpy(&high_bytes, s6 + 8, 4);
    const __m128i lo8 = _mm_cvtsi64_si128(static_cast<int64_t>(low_bytes));
    const __m128i low = _mm_and_si128(_mm_unpacklo_epi64(lo8, _mm_srli_epi16(lo8, 4)), _mm_set1_epi8(0x0f));
    const __m128i high = _mm_srlv_epi32(_mm_set1_epi32(static_cast<int32_t>(high_bytes)), _mm_setr_epi32(0, 2, 4, 6));
    const __m128i six = _mm_or_si128(low, _mm_and_si128(_mm_slli_epi16(high, 4), _mm_set1_epi8(0x30)));
    const __m256i scales = _mm256_cvtepi8_epi16(_mm_sub_epi8(six, _mm_set1_epi8(32)));
    start_with_offset<2, C>(scales, x, sum);
    const Scales16 sc = scales16(scales);
    __m256i hmask = load32(block);
#pragma GCC unroll 2
    for (int n = 0; n < 2; ++n) {
      __m256i bits = load32(block + 32 + 32 * n);
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m256i high_bit = _mm256_slli_epi16(_mm256_and_si256(hmask, one), 2);
        const __m256i q = _mm256_or_si256(_mm256_and_si256(bits, three), high_bit);
        bits = _mm256_srli_epi16(bits, 2);
        hmask = _mm256_srli_epi16(hmask, 1);
        const __m256i scale = scale_pair(sc, 8 * n + 2 * s);
        for (int c = 0; c < C; ++c)
          sum[c] = _mm256_add_epi32(
              sum[c], _mm256_madd_epi16(dot_unsigned(q, load32(x[c].q + 128 * n + 32 * s)), scale));
      }
    }
  }
};

// Q4_K / Q5_K's 12 bytes of 6-bit scales and mins (get_scale_min_k4) as 16 bytes: the 8 scales
// then the 8 mins. j < 4: scale s[j] & 63, min s[j + 4] & 63; j >= 4: scale s[j + 4] & 15 |
// (s[j - 4] >> 6) << 4, min s[j + 4] >> 4 | (s[j] >> 6) << 4.
TROUPE_AVX2_INLINE __m128i scales_mins_k4(const uint8_t* s) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));  // 4 bytes past: masked off
  const __m128i a = _mm_shuffle_epi8(raw, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  const __m128i b = _mm_shuffle_epi8(raw, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
  const __m128i low = _mm_or_si128(
      _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0)),
      _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15)));
  return _mm_or_si128(low, _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
}

// Q4_K: nibbles 0..15, 6-bit scale and min per 32. Q5_K: the same plus a fifth bit from 32
// bytes of high bits (bits 2m, 2m + 1 for the m-th 64 values), 0..31.
template <bool kFifthBit>
struct Q4_K_or_Q5_K {
  static constexpr size_t kBytes = kFifthBit ? 176 : 144;
  static constexpr int kElems = 256;
  static constexpr bool kHasMin = true;
  static constexpr int kD = 0, kDmin = 2;
  template <int C>
  TROUPE_AVX2_INLINE static void sums(const uint8_t* block, const XBlock (&x)[C], __m256i (&sum)[C],
                                      __m128i (&msum)[C]) {
    const __m256i scales_mins = _mm256_cvtepu8_epi16(scales_mins_k4(block + 4));
    const __m128i mins = _mm256_extracti128_si256(scales_mins, 1);
    for (int c = 0; c < C; ++c) {
      msum[c] = _mm_madd_epi16(mins, x[c].bsums8);  // each min covers 32 values: two bsums
      sum[c] = _mm256_setzero_si256();
    }
    const __m256i scales = _mm256_permute2x128_si256(scales_mins, scales_mins, 0x00);
    const uint8_t* qs = block + (kFifthBit ? 48 : 16);
    const __m256i qh = kFifthBit ? load32(block + 16) : _mm256_setzero_si256();
    quarter<0, C>(qs, qh, scales, x, sum);
    quarter<1, C>(qs, qh, scales, x, sum);
    quarter<2, C>(qs, qh, scales, x, sum);
    quarter<3, C>(qs, qh, scales, x, sum);
  }
  // Values 64m .. 64m + 63: the low nibbles (scale 2m), then the high ones (2m + 1).
  template <int m, int C>
  TROUPE_AVX2_INLINE static void quarter(const uint8_t* qs, __m256i qh, __m256i scales, const XBlock (&x)[C],
                                         __m256i (&sum)[C]) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    const __m256i packed = load32(qs + 32 * m);
    __m256i lo = _mm256_and_si256(packed, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
    if constexpr (kFifthBit) {
      lo = _mm256_or_si256(lo, _mm256_and_si256(bit_to_4<2 * m>(qh), bit4));
      hi = _mm256_or_si256(hi, _mm256_and_si256(bit_to_4<2 * m + 1>(qh), bit4));
    }
    const __m256i s_lo = scale_of_32(scales, 2 * m), s_hi = scale_of_32(scales, 2 * m + 1);
    for (int c = 0; c < C; ++c) {
      const __m256i p_lo = _mm256_madd_epi16(dot_unsigned(lo, load32(x[c].q + 64 * m)), s_lo);
      const __m256i p_hi = _mm256_madd_epi16(dot_unsigned(hi, load32(x[c].q + 64 * m + 32)), s_hi);
      sum[c] = _mm256_add_epi32(sum[c], _mm256_add_epi32(p_lo, p_hi));
    }
  }
};
using Q4_K = Q4_K_or_Q5_K<false>;
using Q5_K = Q4_K_or_Q5_K<true>;

// Q6_K: 4 low bits plus 2 high bits, 0..63 (the stored q + 32); int8 scale per 16.
struct Q6_K {
  static constexpr size_t kBytes = 210;
  static constexpr int kElems = 256;
  static constexpr bool kHasMin = false;
  static constexpr int kD = 208, kDmin = 0;
  template <int C>
  TROUPE_AVX2_INLINE static void sums(const uint8_t* block, const XBlock (&x)[C], __m256i (&sum)[C], __m128i (&)[C]) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
    const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 192)));
    start_with_offset<5, C>(scales, x, sum);
    const Scales16 sc = scales16(scales);
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
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m256i scale = scale_pair(sc, 8 * n + 2 * s);
        for (int c = 0; c < C; ++c)
          sum[c] = _mm256_add_epi32(
              sum[c], _mm256_madd_epi16(dot_unsigned(q[s], load32(x[c].q + 128 * n + 32 * s)), scale));
      }
    }
  }
};

// IQ4_XS: IQ4 levels, 6-bit scale - 32 per 32.
struct IQ4_XS {
  static constexpr size_t kBytes = 136;
  static constexpr int kElems = 256;
  static constexpr bool kHasMin = false;
  static constexpr int kD = 0, kDmin = 0;
  template <int C>
  TROUPE_AVX2_INLINE static void sums(const uint8_t* block, const XBlock (&x)[C], __m256i (&sum)[C], __m128i (&)[C]) {
    uint16_t scales_h;
    uint32_t scales_l;
    std::memcpy(&scales_h, block + 2, 2);
    std::memcpy(&scales_l, block + 4, 4);
    // Scale j: nibble j of scales_l (low nibble of byte j / 2 first) | bits 2j, 2j + 1 of
    // scales_h << 4, minus 32. The high bits: scales_h << (14 - 2j) keeps them on top of 16.
    const __m128i l8 = _mm_cvtsi32_si128(static_cast<int32_t>(scales_l));
    const __m128i low = _mm_and_si128(_mm_unpacklo_epi8(l8, _mm_srli_epi16(l8, 4)), _mm_set1_epi8(0x0f));
    const __m128i high = _mm_srli_epi16(
        _mm_mullo_epi16(_mm_set1_epi16(static_cast<int16_t>(scales_h)),
                        _mm_setr_epi16(1 << 14, 1 << 12, 1 << 10, 1 << 8, 1 << 6, 1 << 4, 1 << 2, 1)),
        14);
    const __m128i scales8 =
        _mm_sub_epi16(_mm_or_si128(_mm_cvtepu8_epi16(low), _mm_slli_epi16(high, 4)), _mm_set1_epi16(32));
    const __m256i scales = _mm256_broadcastsi128_si256(scales8);
    for (int c = 0; c < C; ++c) sum[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int ib = 0; ib < 8; ++ib) {
      const __m256i scale = scale_of_32(scales, ib);
      const __m256i q = iq4_levels(nibbles32(block + 8 + 16 * ib));
      for (int c = 0; c < C; ++c)
        sum[c] = _mm256_add_epi32(sum[c], _mm256_madd_epi16(dot_signed(q, load32(x[c].q + 32 * ib)), scale));
    }
  }
};

// The lane totals of R (<= 4) rows' vectors as one vector, lane i = row i.
template <int R, int C>
TROUPE_AVX2_INLINE __m128i row_totals(const __m256i (&v)[R][C], int c) {
  __m256i r[4];
  for (int i = 0; i < 4; ++i) r[i] = i < R ? v[i][c] : _mm256_setzero_si256();
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(r[0], r[1]), _mm256_hadd_epi32(r[2], r[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}
template <int R, int C>
TROUPE_AVX2_INLINE __m128i row_totals(const __m128i (&v)[R][C], int c) {
  __m128i r[4];
  for (int i = 0; i < 4; ++i) r[i] = i < R ? v[i][c] : _mm_setzero_si128();
  return _mm_hadd_epi32(_mm_hadd_epi32(r[0], r[1]), _mm_hadd_epi32(r[2], r[3]));
}

// The fp16 at byte `offset` of each of R blocks, lane i = block i.
template <int R>
TROUPE_AVX2_INLINE __m128 halves(const uint8_t* const (&block)[R], int offset) {
  uint64_t bits = 0;
  for (int i = 0; i < R; ++i) {
    uint16_t h;
    std::memcpy(&h, block[i] + offset, 2);
    bits |= static_cast<uint64_t>(h) << (16 * i);
  }
  return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<int64_t>(bits)));
}

// How far ahead of the block being computed decode asks for the weights (bench_kernels, 2
// threads: Q6_K 11-17 -> 19-21 GB/s, Q2_K 13.4-14.2 -> 13.8-15.9; Q4_K was already at 17-18).
constexpr int kAheadBytes = 512;

// A product that the compiler must not fuse into the following add (as no_fma, per lane).
TROUPE_AVX2_INLINE __m128 no_fma4(__m128 v) {
  asm("" : "+x"(v));
  return v;
}

// Touches the lines of the block `kAheadBytes` past `block` (decode, small batches): a K block costs more
// arithmetic than the out-of-order window covers, so without it the next lines are requested
// only when the current block is done and the stream waits on DRAM between blocks.
template <class F>
TROUPE_AVX2_INLINE void prefetch_ahead(const uint8_t* block) {
  const char* ahead = reinterpret_cast<const char*>(block) + kAheadBytes;
  for (size_t offset = 0; offset < F::kBytes; offset += 64) _mm_prefetch(ahead + offset, _MM_HINT_T0);
}

// Block b of activation rows [t, t + C) into `xb`, and of each of the R weight rows: its address
// in `block`, its sums against those activation rows (decode also asks for the lines ahead).
template <class F, int R, int C, class MinSums>
TROUPE_AVX2_INLINE void tile_block_sums(const uint8_t* const (&rows)[R], const Q8Rows& x, int64_t t, int64_t b,
                                        XBlock (&xb)[C], const uint8_t* (&block)[R], __m256i (&sum)[R][C],
                                        MinSums (&msum)[R][C]) {
  for (int c = 0; c < C; ++c) xb[c] = x_block(x, t + c, b);
  for (int i = 0; i < R; ++i) {
    block[i] = rows[i] + b * F::kBytes;
    if constexpr (C == 1) prefetch_ahead<F>(block[i]);
    F::template sums<C>(block[i], xb, sum[i], msum[i]);
  }
}

// Rows r + i * step (i < R <= 4) times activation rows [t, t + C) of a K format. Per block and
// row the steps of kernels_blocks_portable.cpp, lane i doing row i's:
//   acc = acc + (d * d_x) * sumi, then acc = acc - (dmin * d_x) * summ with mins.
template <class F, int R, int C>
TROUPE_AVX2 void tile_k(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                        const float* bias, float* y, int64_t ldy) {
  static_assert(R <= 4);
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  __m128 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm_setzero_ps();
  for (int64_t b = 0; b < x.blocks; ++b) {
    XBlock xb[C];
    const uint8_t* block[R];
    __m256i sum[R][C];
    __m128i msum[R][C];
    tile_block_sums<F>(rows, x, t, b, xb, block, sum, msum);
    const __m128 d = halves<R>(block, F::kD);
    for (int c = 0; c < C; ++c) {
      const __m128 dx = _mm_set1_ps(x.row_d(t + c)[b]);
      acc[c] = _mm_add_ps(acc[c], no_fma4(_mm_mul_ps(_mm_mul_ps(d, dx), _mm_cvtepi32_ps(row_totals<R, C>(sum, c)))));
      if constexpr (F::kHasMin) {
        const __m128 dmin = halves<R>(block, F::kDmin);
        acc[c] = _mm_sub_ps(acc[c],
                            no_fma4(_mm_mul_ps(_mm_mul_ps(dmin, dx), _mm_cvtepi32_ps(row_totals<R, C>(msum, c)))));
      }
    }
  }
  for (int c = 0; c < C; ++c) {
    float out[4];
    _mm_storeu_ps(out, acc[c]);
    for (int i = 0; i < R; ++i) y[(t + c) * ldy + r + i * step] = out[i] + (bias ? bias[r + i * step] : 0.0f);
  }
}

// The lane totals of R (<= 4) rows' vectors `v` in the low half, of `m` in the high half.
template <int R, int C>
TROUPE_AVX2_INLINE __m256i row_totals(const __m256i (&v)[R][C], const __m256i (&m)[R][C], int c) {
  __m256i r[4], q[4];
  for (int i = 0; i < 4; ++i) {
    r[i] = i < R ? v[i][c] : _mm256_setzero_si256();
    q[i] = i < R ? m[i][c] : _mm256_setzero_si256();
  }
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(r[0], r[1]), _mm256_hadd_epi32(r[2], r[3]));
  const __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(q[0], q[1]), _mm256_hadd_epi32(q[2], q[3]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(s, t, 0x20), _mm256_permute2x128_si256(s, t, 0x31));
}

// The fp16 pair d, dmin at byte `offset` of each of R blocks: lane i = block i's d, lane 4 + i
// its dmin.
template <int R>
TROUPE_AVX2_INLINE __m256 half_pairs(const uint8_t* const (&block)[R], int offset) {
  uint32_t pair[4] = {};
  for (int i = 0; i < R; ++i) std::memcpy(&pair[i], block[i] + offset, 4);
  const __m128i interleaved = _mm_set_epi64x(static_cast<int64_t>(pair[2] | static_cast<uint64_t>(pair[3]) << 32),
                                             static_cast<int64_t>(pair[0] | static_cast<uint64_t>(pair[1]) << 32));
  return _mm256_cvtph_ps(
      _mm_shuffle_epi8(interleaved, _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15)));
}

TROUPE_AVX2_INLINE __m256 no_fma8(__m256 v) {
  asm("" : "+x"(v));
  return v;
}

// tile_k for a format whose min sums fill 8 lanes (Q2_K's 16 mins): the sum and min lanes of
// the R rows reduced in one tree and both products of a block one 256-bit multiply, lanes 0-3
// the d terms and 4-7 the dmin terms (d and dmin adjacent); the same steps, rounding and order.
// (For Q4_K / Q5_K, 4 lanes of mins, tile_k's two 128-bit steps measured faster.)
template <class F, int R, int C>
TROUPE_AVX2 void tile_k_min8(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                             const float* bias, float* y, int64_t ldy) {
  static_assert(R <= 4 && F::kHasMin && F::kDmin == F::kD + 2);
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  __m128 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm_setzero_ps();
  for (int64_t b = 0; b < x.blocks; ++b) {
    XBlock xb[C];
    const uint8_t* block[R];
    __m256i sum[R][C], msum[R][C];
    tile_block_sums<F>(rows, x, t, b, xb, block, sum, msum);
    const __m256 d = half_pairs<R>(block, F::kD);
    for (int c = 0; c < C; ++c) {
      const __m256 p = no_fma8(_mm256_mul_ps(_mm256_mul_ps(d, _mm256_set1_ps(x.row_d(t + c)[b])),
                                             _mm256_cvtepi32_ps(row_totals<R, C>(sum, msum, c))));
      acc[c] = _mm_sub_ps(_mm_add_ps(acc[c], _mm256_castps256_ps128(p)), _mm256_extractf128_ps(p, 1));
    }
  }
  for (int c = 0; c < C; ++c) {
    float out[4];
    _mm_storeu_ps(out, acc[c]);
    for (int i = 0; i < R; ++i) y[(t + c) * ldy + r + i * step] = out[i] + (bias ? bias[r + i * step] : 0.0f);
  }
}

// ---- batches: one weight row x up to 8 activation rows ---------------------------------------
// The tiles reduce each (weight row, activation row) block sum on its own and hold R x C sums,
// which spill from C = 4: a prompt ran at half Q4_0's speed (the 32-element formats at a
// quarter). Here one weight row meets up to 8 activation rows: its block is unpacked once for
// all 8, their 8 block sums (and min sums) are reduced together into one vector, lane c =
// activation row c, and the fp steps run on those 8 lanes. Each lane does the steps of tile_k /
// tile_32 (and kernels_blocks_portable.cpp) in their order, so every row gets the bits it
// gets alone.
constexpr int kRowsPerPass = 8;

// Lane c = the total of v[c]'s lanes (exact integer sums: the order does not matter).
TROUPE_AVX2_INLINE __m256i lane_totals(const __m256i (&v)[kRowsPerPass]) {
  const __m256i u0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i u1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}
TROUPE_AVX2_INLINE __m256i lane_totals(const __m128i (&v)[kRowsPerPass]) {
  const __m128i a = _mm_hadd_epi32(_mm_hadd_epi32(v[0], v[1]), _mm_hadd_epi32(v[2], v[3]));
  const __m128i b = _mm_hadd_epi32(_mm_hadd_epi32(v[4], v[5]), _mm_hadd_epi32(v[6], v[7]));
  return _mm256_set_m128i(b, a);
}

// The activation scales of C <= 8 consecutive rows (from Q8Rows' block-major copy), zero past C.
template <int C>
TROUPE_AVX2_INLINE __m256 block_scales(const float* scales) {
  if constexpr (C == kRowsPerPass) return _mm256_loadu_ps(scales);
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(scales, _mm256_cmpgt_epi32(_mm256_set1_epi32(C), lanes));
}

// Weight row r times activation rows [t, t + C), C <= 8 (lanes past C stay zero).
template <class F, int C>
TROUPE_AVX2 void row_times(const PackedMatrix& w, int64_t r, const Q8Rows& x, int64_t t, const float* bias, float* y,
                           int64_t ldy) {
  static_assert(C >= 1 && C <= kRowsPerPass);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // the vector types' alignment, kept by the arrays below
  using MinSums = std::conditional_t<std::is_same_v<F, Q2_K>, __m256i, __m128i>;  // as F::sums takes them
#pragma GCC diagnostic pop
  const uint8_t* row = w.row(r);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < x.blocks; ++b) {
    XBlock xb[C];
    for (int c = 0; c < C; ++c) xb[c] = x_block(x, t + c, b);
    const uint8_t* block = row + b * F::kBytes;
    prefetch_ahead<F>(block);
    __m256i row_sum[C];
    MinSums row_msum[C];
    F::template sums<C>(block, xb, row_sum, row_msum);
    __m256i sum[kRowsPerPass];
    MinSums msum[kRowsPerPass];
    for (int c = 0; c < kRowsPerPass; ++c) {
      sum[c] = c < C ? row_sum[c] : _mm256_setzero_si256();
      msum[c] = c < C ? row_msum[c] : MinSums{};
    }
    const __m256 vdx = block_scales<C>(x.block_d(b) + t);
    const __m256 d = _mm256_set1_ps(block_scale(block + F::kD));
    acc = _mm256_add_ps(acc, no_fma8(_mm256_mul_ps(_mm256_mul_ps(d, vdx), _mm256_cvtepi32_ps(lane_totals(sum)))));
    if constexpr (F::kHasMin) {
      const __m256 dmin = _mm256_set1_ps(block_scale(block + F::kDmin));
      acc = _mm256_sub_ps(acc,
                          no_fma8(_mm256_mul_ps(_mm256_mul_ps(dmin, vdx), _mm256_cvtepi32_ps(lane_totals(msum)))));
    }
  }
  alignas(32) float out[kRowsPerPass];
  _mm256_store_ps(out, acc);
  for (int c = 0; c < C; ++c) y[(t + c) * ldy + r] = out[c] + (bias ? bias[r] : 0.0f);
}

// The same for a 32-element format: lane c's steps are tile_32's for activation row c.
template <class F, int C>
TROUPE_AVX2 void row_times_32(const PackedMatrix& w, int64_t r, const Q8Rows& x, int64_t t, const float* bias,
                              float* y, int64_t ldy) {
  static_assert(C >= 1 && C <= kRowsPerPass);
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* row = w.row(r);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < x.blocks; ++b) {
    const uint8_t* block = row + b * F::kBytes;
    const __m256i q = F::unpack(block);
    __m256i sum[kRowsPerPass];
    for (int c = 0; c < kRowsPerPass; ++c)
      sum[c] = c < C ? _mm256_madd_epi16(F::pairs(q, load32(x.row_q(t + c) + 32 * b)), ones) : _mm256_setzero_si256();
    const __m256 d = _mm256_set1_ps(block_scale(block));
    acc = _mm256_add_ps(acc, no_fma8(_mm256_mul_ps(_mm256_mul_ps(d, block_scales<C>(x.block_d(b) + t)),
                                                   _mm256_cvtepi32_ps(lane_totals(sum)))));
    if constexpr (F::kHasMin)
      acc = _mm256_add_ps(acc, no_fma8(_mm256_mul_ps(_mm256_set1_ps(block_scale(block + 2)),
                                                     block_scales<C>(x.block_s(b) + t))));
  }
  alignas(32) float out[kRowsPerPass];
  _mm256_store_ps(out, acc);
  for (int c = 0; c < C; ++c) y[(t + c) * ldy + r] = out[c] + (bias ? bias[r] : 0.0f);
}

// Weight rows [r0, r1) times activation rows [t, t + C).
template <class F, int C>
TROUPE_AVX2 void rows_times(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, int64_t t,
                            const float* bias, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    if constexpr (F::kElems == 256)
      row_times<F, C>(w, r, x, t, bias, y, ldy);
    else
      row_times_32<F, C>(w, r, x, t, bias, y, ldy);
  }
}

// Weight rows [r0, r1) times the activation rows of whole groups of 8: tiles of weight rows
// that stay in L2 while every group passes (the first group streams them from DRAM).
constexpr size_t kRowsTileBytes = 192 * 1024;

template <class F>
TROUPE_AVX2 void gemm_rows_8(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias,
                             float* y, int64_t ldy) {
  const int64_t tile_rows = std::max<int64_t>(1, static_cast<int64_t>(kRowsTileBytes / w.row_bytes()));
  for (int64_t ra = r0; ra < r1; ra += tile_rows) {
    const int64_t rb = std::min(r1, ra + tile_rows);
    for (int64_t t = 0; t + kRowsPerPass <= x.n; t += kRowsPerPass)
      rows_times<F, kRowsPerPass>(w, ra, rb, x, t, bias, y, ldy);
  }
}

// ---- row tiles ------------------------------------------------------------------------------

// Rows r + i * step (i < R <= 4) times activation rows [t, t + C) of a 32-element format. Per
// block and row the steps of kernels_blocks_portable.cpp, lane i doing row i's (the R rows'
// integer sums reduced together, as tile_k; one horizontal sum per row and block, and scalar
// fp steps, kept decode at 2-3x its bandwidth bound):
//   acc = acc + (d * d_x) * sumi, then acc = acc + m * s_x with a min.
template <class F, int R, int C>
TROUPE_AVX2 void tile_32(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t, const float* bias,
                         float* y, int64_t ldy) {
  static_assert(R <= 4);
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  __m128 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm_setzero_ps();
  for (int64_t b = 0; b < x.blocks; ++b) {
    const uint8_t* block[R];
    __m256i sum[R][C];
    for (int i = 0; i < R; ++i) {
      block[i] = rows[i] + b * F::kBytes;
      const __m256i q = F::unpack(block[i]);
      for (int c = 0; c < C; ++c) sum[i][c] = _mm256_madd_epi16(F::pairs(q, load32(x.row_q(t + c) + 32 * b)), ones);
    }
    const __m128 d = halves<R>(block, 0);
    for (int c = 0; c < C; ++c) {
      const __m128 sumi = _mm_cvtepi32_ps(row_totals<R, C>(sum, c));
      acc[c] = _mm_add_ps(acc[c], no_fma4(_mm_mul_ps(_mm_mul_ps(d, _mm_set1_ps(x.row_d(t + c)[b])), sumi)));
      if constexpr (F::kHasMin)
        acc[c] = _mm_add_ps(acc[c], no_fma4(_mm_mul_ps(halves<R>(block, 2), _mm_set1_ps(x.row_s(t + c)[b]))));
    }
  }
  for (int c = 0; c < C; ++c) {
    alignas(16) float out[4];
    _mm_store_ps(out, acc[c]);
    for (int i = 0; i < R; ++i) y[(t + c) * ldy + r + i * step] = out[i] + (bias ? bias[r + i * step] : 0.0f);
  }
}

// A tile of a 32-element block format or of a K format (super-blocks of 256).
template <class F, int R, int C>
TROUPE_AVX2_INLINE void tile(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                             const float* bias, float* y, int64_t ldy) {
  if constexpr (std::is_same_v<F, Q2_K>)
    tile_k_min8<F, R, C>(w, r, step, x, t, bias, y, ldy);
  else if constexpr (F::kElems == 256)
    tile_k<F, R, C>(w, r, step, x, t, bias, y, ldy);
  else
    tile_32<F, R, C>(w, r, step, x, t, bias, y, ldy);
}

// Activation rows [t0, x.n).
template <class F, int R>
TROUPE_AVX2 void tile_all(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t0,
                          const float* bias, float* y, int64_t ldy) {
  int64_t t = t0;
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
  // Groups of 8 activation rows, then the rest in one more pass (a speculative verification
  // pass, a few sessions: one pass over the weights instead of 2-3 passes of the 4/2/1-row
  // tiles), down to 3 rows for the K formats and 4 for the 32-element formats; fewer on the
  // tiles. bench_kernels --cpu-time: K formats at T = 3-7 as fast or faster (T = 2 faster on
  // the 2 x 2 tile); 32-element formats T = 8 / 64 1.6-2.1x the tiles, T = 4 even, T = 3 slower.
  constexpr int kMinRowsPass = F::kElems == 256 ? 3 : 4;
  int64_t t0 = 0;
  if (x.n >= kRowsPerPass) {
    gemm_rows_8<F>(w, r0, r1, x, bias, y, ldy);
    t0 = x.n / kRowsPerPass * kRowsPerPass;
  }
  switch (x.n - t0) {
    case 0: return;
    case 7: return rows_times<F, 7>(w, r0, r1, x, t0, bias, y, ldy);
    case 6: return rows_times<F, 6>(w, r0, r1, x, t0, bias, y, ldy);
    case 5: return rows_times<F, 5>(w, r0, r1, x, t0, bias, y, ldy);
    case 4: return rows_times<F, 4>(w, r0, r1, x, t0, bias, y, ldy);
    case 3:
      if constexpr (kMinRowsPass <= 3) return rows_times<F, 3>(w, r0, r1, x, t0, bias, y, ldy);
      break;
    default: break;
  }
  const int64_t step = (r1 - r0) / 2;
  for (int64_t k = 0; k < step; ++k) tile_all<F, 2>(w, r0 + k, step, x, t0, bias, y, ldy);
  for (int64_t r = r0 + 2 * step; r < r1; ++r) tile_all<F, 1>(w, r, 1, x, t0, bias, y, ldy);
}

}  // namespace

namespace avx2 {
void quantize_row_q8_k(const float* x, int64_t cols, int8_t* q, float* d, int16_t* bsums) {
  quantize_q8_k(x, cols, q, d, bsums);
}

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
