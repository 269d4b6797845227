// AVX2 kernels (with FMA and F16C), compiled per function with target attributes so the
// library still runs on any x86-64; quant_matmul.cpp calls them only when the CPU has AVX2.
//
// Q8_0 / Q4_0 weights times Q8_0 activations, per block of 32 (as llama.cpp's AVX2 path):
//   w as 32 int8 (Q4_0: nibble - 8), x as 32 int8
//   _mm256_maddubs_epi16(|w|, sign(x, w))  -> 16 int16 pair sums (|w| <= 128, |x| <= 127: no saturation)
//   _mm256_madd_epi16(., 1)                -> 8 int32 partial sums (exact)
//   acc += float(partial sums) * (d_w * d_x)   (8 fp32 lanes, summed at the end of the row)
// Tiles of R weight rows x C activation rows share each decoded weight block and each loaded
// activation block: R = 4, C = 1 for a single row (decode); R = 2, C <= 4 for small batches.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "models/quant_formats.h"
#include "models/quant_kernels.h"

#define TROUPE_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace troupe::kernels {
namespace {

TROUPE_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

TROUPE_AVX2 inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

TROUPE_AVX2 inline float fp16_scale(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// ---- activations to Q8_0 ---------------------------------------------------------------

// round(p) with halves away from zero, as std::lround: trunc, then step away when |frac| >= 0.5.
TROUPE_AVX2 inline __m256i round_half_away(__m256 p) {
  const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_sub_ps(p, t);  // exact
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 away = _mm256_cmp_ps(_mm256_and_ps(frac, abs_mask), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 step = _mm256_or_ps(_mm256_and_ps(p, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));  // +-1
  return _mm256_cvtps_epi32(_mm256_add_ps(t, _mm256_and_ps(away, step)));
}

TROUPE_AVX2 void quantize_row_q8(const float* x, int64_t cols, int8_t* q, float* d, int32_t* sum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < cols / 32; ++b, x += 32, q += 32) {
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                             _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float scale = amax / 127.0f, inv = scale != 0 ? 1.0f / scale : 0.0f;
    const __m256 vinv = _mm256_set1_ps(inv);
    __m256i i32[4];
    for (int i = 0; i < 4; ++i) i32[i] = round_half_away(_mm256_mul_ps(v[i], vinv));
    const __m256i i16a = _mm256_packs_epi32(i32[0], i32[1]), i16b = _mm256_packs_epi32(i32[2], i32[3]);
    const __m256i i8 = _mm256_packs_epi16(i16a, i16b);  // lanes interleaved by the in-lane packs
    _mm256_store_si256(reinterpret_cast<__m256i*>(q),
                       _mm256_permutevar8x32_epi32(i8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    d[b] = _cvtsh_ss(_cvtss_sh(scale, _MM_FROUND_TO_NEAREST_INT));
    sum[b] = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3])));
  }
}

// ---- Q8_0 / Q4_0 weights ------------------------------------------------------------------

template <DType Type>
struct BlockFormat;
template <>
struct BlockFormat<DType::Q8_0> {
  static constexpr size_t kBytes = 34;
};
template <>
struct BlockFormat<DType::Q4_0> {
  static constexpr size_t kBytes = 18;
};

// The block's 32 weights as signed int8 (for dequantizing).
template <DType Type>
TROUPE_AVX2 inline __m256i load_weights(const uint8_t* block) {
  if constexpr (Type == DType::Q8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
  } else {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
    const __m256i nibbles =
        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0f));
    return _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8));
  }
}

// The fp16 scales of 8 consecutive blocks (gathered in integer registers, converted at once).
template <size_t kBytes>
TROUPE_AVX2 inline __m256 load_scales8(const uint8_t* block) {
  uint64_t lo = 0, hi = 0;
  for (int i = 0; i < 4; ++i) {
    uint16_t a, b;
    std::memcpy(&a, block + i * kBytes, 2);
    std::memcpy(&b, block + (4 + i) * kBytes, 2);
    lo |= static_cast<uint64_t>(a) << (16 * i);
    hi |= static_cast<uint64_t>(b) << (16 * i);
  }
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)));
}

TROUPE_AVX2 inline __m256i load_i8x32(const int8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

// Weight rows shorter than a page share pages, which the hardware prefetchers of some CPUs
// (Zen 4 here) do not follow when several rows are read side by side; so the tiles prefetch
// their rows' bytes `kPrefetchAhead` ahead themselves: the cache lines of [from, from + n).
constexpr size_t kPrefetchAhead = 1024;
TROUPE_AVX2 inline void prefetch_range(const uint8_t* from, size_t n) {
  for (size_t off = 0; off < n; off += 64) _mm_prefetch(reinterpret_cast<const char*>(from + off), _MM_HINT_T0);
}

// One Q8_0 block of R weight rows and C activation rows; `scale` holds d_w * d_x in lane
// `lane`. |w| and sign(x, w) make _mm256_maddubs_epi16 (unsigned x signed) give w * x pair sums.
template <int R, int C>
TROUPE_AVX2 __attribute__((always_inline)) inline void q8_0_block(const uint8_t* const (&rows)[R], const int8_t* const (&xq)[C], int64_t b,
                                   const __m256 (&scale)[R][C], int lane, __m256 (&acc)[R][C]) {
  constexpr size_t kB = 34;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i xv[C];
  for (int c = 0; c < C; ++c) xv[c] = load_i8x32(xq[c] + 32 * b);
  const __m256i idx = _mm256_set1_epi32(lane);
  for (int i = 0; i < R; ++i) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[i] + b * kB + 2));
    const __m256i wabs = _mm256_sign_epi8(wv, wv);
    for (int c = 0; c < C; ++c) {
      const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv[c], wv)), ones);
      acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_permutevar8x32_ps(scale[i][c], idx), acc[i][c]);
    }
  }
}

// Rows [r, r+R) of a Q8_0 matrix times activation rows [t, t+C), scales converted 8 blocks at a time.
template <int R, int C>
TROUPE_AVX2 void tile_q8_0(const PackedMatrix& w, int64_t r, const Q8Rows& x, int64_t t, const float* bias, float* y,
                           int64_t ldy) {
  constexpr size_t kB = 34;
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
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
      prefetch_range(rows[i] + b * kB + kPrefetchAhead, 8 * kB);
      const __m256 dw = load_scales8<kB>(rows[i] + b * kB);
      for (int c = 0; c < C; ++c) scale[i][c] = _mm256_mul_ps(dw, _mm256_loadu_ps(xd[c] + b));
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) q8_0_block<R, C>(rows, xq, b + j, scale, j, acc);
  }
  for (; b < x.blocks; ++b) {
    __m256 scale[R][C];
    for (int i = 0; i < R; ++i)
      for (int c = 0; c < C; ++c) scale[i][c] = _mm256_set1_ps(fp16_scale(rows[i] + b * kB) * xd[c][b]);
    q8_0_block<R, C>(rows, xq, b, scale, 0, acc);
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i] = hsum(acc[i][c]) + (bias ? bias[r + i] : 0.0f);
}

// Rows [r, r+R) of a Q4_0 matrix times activation rows [t, t+C), two blocks per step: the 16
// nibble bytes of blocks A and B fill one register; its low nibbles are A[0..15] B[0..15], its
// high nibbles A[16..31] B[16..31], and the activations are permuted to match. The nibbles
// (0..15) go into _mm256_maddubs_epi16 unsigned; the offset 8 is taken off as 8 * (pair sums
// of x), exact in int16 (|result| <= 4 * 15 * 127 + 4 * 8 * 127).
template <int R, int C>
TROUPE_AVX2 void tile_q4_0(const PackedMatrix& w, int64_t r, const Q8Rows& x, int64_t t, const float* bias, float* y,
                           int64_t ldy) {
  constexpr size_t kB = 18;
  const __m256i low4 = _mm256_set1_epi8(0x0f), eights = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
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
      prefetch_range(rows[i] + b * kB + kPrefetchAhead, 8 * kB);
      const __m256 dw = load_scales8<kB>(rows[i] + b * kB);
      for (int c = 0; c < C; ++c) scale[i][c] = _mm256_mul_ps(dw, _mm256_loadu_ps(xd[c] + b));
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {  // blocks b+2k and b+2k+1
      const __m256i idx = _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1);
      __m256i xlo[C], xhi[C], offset[C];
      for (int c = 0; c < C; ++c) {
        const __m256i a = load_i8x32(xq[c] + 32 * (b + 2 * k)), bb = load_i8x32(xq[c] + 32 * (b + 2 * k + 1));
        xlo[c] = _mm256_permute2x128_si256(a, bb, 0x20);
        xhi[c] = _mm256_permute2x128_si256(a, bb, 0x31);
        offset[c] = _mm256_add_epi16(_mm256_maddubs_epi16(eights, xlo[c]), _mm256_maddubs_epi16(eights, xhi[c]));
      }
      for (int i = 0; i < R; ++i) {
        const uint8_t* p = rows[i] + (b + 2 * k) * kB + 2;
        const __m256i packed =
            _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
                                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kB)), 1);
        const __m256i lo = _mm256_and_si256(packed, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
        for (int c = 0; c < C; ++c) {
          const __m256i pairs = _mm256_sub_epi16(
              _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo[c]), _mm256_maddubs_epi16(hi, xhi[c])), offset[c]);
          acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)),
                                      _mm256_permutevar8x32_ps(scale[i][c], idx), acc[i][c]);
        }
      }
    }
  }
  for (; b < x.blocks; ++b) {  // the last blocks one at a time
    __m256i xv[C], offset[C];
    for (int c = 0; c < C; ++c) {
      xv[c] = load_i8x32(xq[c] + 32 * b);
      offset[c] = _mm256_maddubs_epi16(eights, xv[c]);
    }
    for (int i = 0; i < R; ++i) {
      const uint8_t* p = rows[i] + b * kB;
      const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
      const __m256i wv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low4);
      const float dw = fp16_scale(p);
      for (int c = 0; c < C; ++c) {
        const __m256i pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(wv, xv[c]), offset[c]);
        acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)), _mm256_set1_ps(dw * xd[c][b]),
                                    acc[i][c]);
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i] = hsum(acc[i][c]) + (bias ? bias[r + i] : 0.0f);
}

template <DType Type, int R, int C>
TROUPE_AVX2 void tile_q(const PackedMatrix& w, int64_t r, const Q8Rows& x, int64_t t, const float* bias, float* y,
                        int64_t ldy) {
  if constexpr (Type == DType::Q8_0)
    tile_q8_0<R, C>(w, r, x, t, bias, y, ldy);
  else
    tile_q4_0<R, C>(w, r, x, t, bias, y, ldy);
}

template <DType Type, int R>
TROUPE_AVX2 void tile_q_cols(const PackedMatrix& w, int64_t r, const Q8Rows& x, int64_t t, int64_t n,
                             const float* bias, float* y, int64_t ldy) {
  if (n == 1) return tile_q<Type, R, 1>(w, r, x, t, bias, y, ldy);
  return tile_q<Type, R, 2>(w, r, x, t, bias, y, ldy);
}

// Decode (one activation row): 4 weight rows per tile. Batches: 2 x 2 tiles, weight rows
// outermost so a tile's rows stay in L1 while all activation rows pass.
template <DType Type>
TROUPE_AVX2 void gemm_q(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
                        int64_t ldy) {
  int64_t r = r0;
  if (x.n == 1) {
    for (; r + 4 <= r1; r += 4) tile_q<Type, 4, 1>(w, r, x, 0, bias, y, ldy);
    for (; r < r1; ++r) tile_q<Type, 1, 1>(w, r, x, 0, bias, y, ldy);
    return;
  }
  for (; r + 2 <= r1; r += 2)
    for (int64_t t = 0; t < x.n; t += 2) tile_q_cols<Type, 2>(w, r, x, t, std::min<int64_t>(2, x.n - t), bias, y, ldy);
  for (; r < r1; ++r)
    for (int64_t t = 0; t < x.n; t += 2) tile_q_cols<Type, 1>(w, r, x, t, std::min<int64_t>(2, x.n - t), bias, y, ldy);
}

// ---- F16 / BF16 weights -------------------------------------------------------------------

template <DType Type>
TROUPE_AVX2 inline __m256 load8_half(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (Type == DType::F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

template <DType Type>
TROUPE_AVX2 inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  if constexpr (Type == DType::F16) return _cvtsh_ss(h);
  return bf16_to_fp32(h);
}

template <DType Type, int R, int C>
TROUPE_AVX2 void tile_half(const PackedMatrix& w, int64_t r, const float* x, int64_t t, const float* bias, float* y,
                           int64_t ldy) {
  const int64_t cols = w.cols;
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
  const float* xr[C];
  for (int c = 0; c < C; ++c) xr[c] = x + (t + c) * cols;
  __m256 acc[R][C];
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) acc[i][c] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= cols; j += 8) {
    __m256 xv[C];
    for (int c = 0; c < C; ++c) xv[c] = _mm256_loadu_ps(xr[c] + j);
    for (int i = 0; i < R; ++i) {
      const __m256 wv = load8_half<Type>(rows[i] + 2 * j);
      for (int c = 0; c < C; ++c) acc[i][c] = _mm256_fmadd_ps(wv, xv[c], acc[i][c]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) {
      float s = hsum(acc[i][c]);
      for (int64_t k = j; k < cols; ++k) s += half_at<Type>(rows[i] + 2 * k) * xr[c][k];
      y[(t + c) * ldy + r + i] = s + (bias ? bias[r + i] : 0.0f);
    }
}

template <DType Type, int R>
TROUPE_AVX2 void tile_half_cols(const PackedMatrix& w, int64_t r, const float* x, int64_t t, int64_t n,
                                const float* bias, float* y, int64_t ldy) {
  switch (n) {
    case 1: return tile_half<Type, R, 1>(w, r, x, t, bias, y, ldy);
    case 2: return tile_half<Type, R, 2>(w, r, x, t, bias, y, ldy);
    case 3: return tile_half<Type, R, 3>(w, r, x, t, bias, y, ldy);
    default: return tile_half<Type, R, 4>(w, r, x, t, bias, y, ldy);
  }
}

template <DType Type>
TROUPE_AVX2 void gemm_half(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T,
                           const float* bias, float* y, int64_t ldy) {
  int64_t r = r0;
  if (T == 1) {
    for (; r + 4 <= r1; r += 4) tile_half<Type, 4, 1>(w, r, x, 0, bias, y, ldy);
    for (; r < r1; ++r) tile_half<Type, 1, 1>(w, r, x, 0, bias, y, ldy);
    return;
  }
  for (; r + 2 <= r1; r += 2)
    for (int64_t t = 0; t < T; t += 4) tile_half_cols<Type, 2>(w, r, x, t, std::min<int64_t>(4, T - t), bias, y, ldy);
  for (; r < r1; ++r)
    for (int64_t t = 0; t < T; t += 4) tile_half_cols<Type, 1>(w, r, x, t, std::min<int64_t>(4, T - t), bias, y, ldy);
}

// ---- to fp32 ------------------------------------------------------------------------------

TROUPE_AVX2 void store_block(const __m256i w8, float d, float* out) {
  const __m256 vd = _mm256_set1_ps(d);
  const __m128i lo = _mm256_castsi256_si128(w8), hi = _mm256_extracti128_si256(w8, 1);
  _mm256_storeu_ps(out + 0, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
  _mm256_storeu_ps(out + 8, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
  _mm256_storeu_ps(out + 16, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
  _mm256_storeu_ps(out + 24, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

template <DType Type>
TROUPE_AVX2 void dequantize_blocks(const uint8_t* src, int64_t n_blocks, float* out) {
  for (int64_t b = 0; b < n_blocks; ++b, src += BlockFormat<Type>::kBytes, out += 32)
    store_block(load_weights<Type>(src), fp16_scale(src), out);
}

template <DType Type>
TROUPE_AVX2 void convert_half(const uint8_t* src, int64_t n, float* out) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(out + j, load8_half<Type>(src + 2 * j));
  for (; j < n; ++j) out[j] = half_at<Type>(src + 2 * j);
}

TROUPE_AVX2 void dequantize_rows(const PackedMatrix& w, int64_t r0, int64_t r1, float* out) {
  const int64_t n = (r1 - r0) * w.cols;
  switch (w.dtype) {
    case DType::Q8_0: return dequantize_blocks<DType::Q8_0>(w.row(r0), n / 32, out);
    case DType::Q4_0: return dequantize_blocks<DType::Q4_0>(w.row(r0), n / 32, out);
    case DType::F16: return convert_half<DType::F16>(w.row(r0), n, out);
    case DType::BF16: return convert_half<DType::BF16>(w.row(r0), n, out);
    default: return dequantize(w.dtype, w.row(r0), out, n);
  }
}

}  // namespace

const KernelTable& avx2_kernels() {
  static const KernelTable table{quantize_row_q8,
                                 gemm_q<DType::Q8_0>,
                                 gemm_q<DType::Q4_0>,
                                 gemm_half<DType::F16>,
                                 gemm_half<DType::BF16>,
                                 dequantize_rows};
  return table;
}

}  // namespace troupe::kernels
