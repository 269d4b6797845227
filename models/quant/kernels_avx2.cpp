// AVX2 kernels (with FMA and F16C), compiled per function with target attributes so the
// library still runs on any x86-64; quant_matmul.cpp calls them only when the CPU has AVX2.
//
// Q8_0 / Q4_0 weights times Q8_0 activations, per block of 32 (as llama.cpp's AVX2 path):
//   an exact integer dot product: _mm256_maddubs_epi16 (u8 x s8 -> 16 int16 pair sums), then
//   _mm256_madd_epi16 with ones (-> 8 int32 partial sums);
//   acc += float(partial sums) * (d_w * d_x)   (8 fp32 lanes, summed at the end of the row).
// Q8_0 weights are signed: |w| and sign(x, w) make the product unsigned x signed (|w| <= 128,
// |x| <= 127: no saturation). Q4_0 nibbles (0..15) are unsigned already; their offset 8 is
// taken off as 8 * (pair sums of x), exact in int16.
// The fp16 weight scales are converted 8 blocks at a time.
//
// Tiles of R weight rows x C activation rows share each decoded weight block and each loaded
// activation block: R = 4, C = 1 for a single activation row (decode); R = 2, C <= 2 for batches.
#include <algorithm>

#include "models/quant/kernels_x86.h"
#include "models/quant/quant_formats.h"
#include "models/quant/quant_kernels.h"

namespace troupe::kernels {
namespace {

using namespace x86;

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

TROUPE_AVX2 void quantize_row_q8(const float* x, int64_t cols, int8_t* q, float* d) {
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
    const __m256i i8 = _mm256_packs_epi16(i16a, i16b);  // 128-bit lanes interleaved by the packs
    _mm256_store_si256(reinterpret_cast<__m256i*>(q),
                       _mm256_permutevar8x32_epi32(i8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    d[b] = _cvtsh_ss(_cvtss_sh(scale, _MM_FROUND_TO_NEAREST_INT));
  }
}

// ---- Q8_0 weights -------------------------------------------------------------------------

// One block of R weight rows and C activation rows; `scale` holds d_w * d_x in lane `lane`.
template <int R, int C>
TROUPE_AVX2 __attribute__((always_inline)) inline void q8_0_block(const uint8_t* const (&rows)[R],
                                                                  const int8_t* const (&xq)[C], int64_t b,
                                                                  const __m256 (&scale)[R][C], int lane,
                                                                  __m256 (&acc)[R][C]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i xv[C];
  for (int c = 0; c < C; ++c) xv[c] = load_x(xq[c] + 32 * b);
  const __m256i idx = _mm256_set1_epi32(lane);
  for (int i = 0; i < R; ++i) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[i] + b * kQ8_0Bytes + 2));
    const __m256i wabs = _mm256_sign_epi8(wv, wv);
    for (int c = 0; c < C; ++c) {
      const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv[c], wv)), ones);
      acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_permutevar8x32_ps(scale[i][c], idx), acc[i][c]);
    }
  }
}

// Rows r + i * step (i < R) times activation rows [t, t+C).
template <int R, int C>
TROUPE_AVX2 void tile_q8_0(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                           const float* bias, float* y, int64_t ldy) {
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
    for (int j = 0; j < 8; ++j) q8_0_block<R, C>(rows, xq, b + j, scale, j, acc);
  }
  for (; b < x.blocks; ++b) {
    __m256 scale[R][C];
    for (int i = 0; i < R; ++i)
      for (int c = 0; c < C; ++c) scale[i][c] = _mm256_set1_ps(block_scale(rows[i] + b * kQ8_0Bytes) * xd[c][b]);
    q8_0_block<R, C>(rows, xq, b, scale, 0, acc);
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i * step] = hsum(acc[i][c]) + (bias ? bias[r + i * step] : 0.0f);
}

// ---- Q4_0 weights -------------------------------------------------------------------------

// Rows r + i * step (i < R) times activation rows [t, t+C), two blocks per step: the nibble
// bytes of blocks A and B fill one register, whose low nibbles are A[0..15] B[0..15] and high
// nibbles A[16..31] B[16..31]; the activations are permuted to match.
template <int R, int C>
TROUPE_AVX2 void tile_q4_0(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                           const float* bias, float* y, int64_t ldy) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), eights = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);
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
      __m256i xlo[C], xhi[C], offset[C];
      for (int c = 0; c < C; ++c) {
        const __m256i xa = load_x(xq[c] + 32 * (b + 2 * k)), xb = load_x(xq[c] + 32 * (b + 2 * k + 1));
        xlo[c] = _mm256_permute2x128_si256(xa, xb, 0x20);
        xhi[c] = _mm256_permute2x128_si256(xa, xb, 0x31);
        offset[c] = _mm256_add_epi16(_mm256_maddubs_epi16(eights, xlo[c]), _mm256_maddubs_epi16(eights, xhi[c]));
      }
      for (int i = 0; i < R; ++i) {
        const __m256i packed = load_nibble_pair(rows[i] + (b + 2 * k) * kQ4_0Bytes);
        const __m256i lo = _mm256_and_si256(packed, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
        for (int c = 0; c < C; ++c) {
          // |pair sum| <= 2 * 2 * 15 * 127 + 4 * 8 * 127: no int16 overflow.
          const __m256i pairs = _mm256_sub_epi16(
              _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo[c]), _mm256_maddubs_epi16(hi, xhi[c])), offset[c]);
          acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)), pair_scales(scale[i][c], k),
                                      acc[i][c]);
        }
      }
    }
  }
  for (; b < x.blocks; ++b) {  // the last blocks one at a time
    __m256i xv[C], offset[C];
    for (int c = 0; c < C; ++c) {
      xv[c] = load_x(xq[c] + 32 * b);
      offset[c] = _mm256_maddubs_epi16(eights, xv[c]);
    }
    for (int i = 0; i < R; ++i) {
      const uint8_t* block = rows[i] + b * kQ4_0Bytes;
      const __m256i wv = load_nibbles(block);
      const float dw = block_scale(block);
      for (int c = 0; c < C; ++c) {
        const __m256i pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(wv, xv[c]), offset[c]);
        acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)), _mm256_set1_ps(dw * xd[c][b]),
                                    acc[i][c]);
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i * step] = hsum(acc[i][c]) + (bias ? bias[r + i * step] : 0.0f);
}

// ---- batches: Q4_0 on a prepared panel, Q8_0 with broadcast scales ------------------------------
// The tiles above hold a scale vector per (weight row, activation row) across 8 blocks, which
// spills at C = 4. The batch kernels below keep only the accumulators in registers: the
// activation side of Q4_0 (blocks permuted into pairs, their offsets, the pair's scales) is
// prepared once per call in a panel (prepare_q4_0_panel_row) and read as memory operands; the
// weight scales of 8 blocks go to the stack. Every output gets the same integer lane sums, the
// same fp32 products d_w * d_x and the same fmadd sequence as tile_q8_0 / tile_q4_0 with C = 1,
// so a row's bits do not depend on the batch.

// One pair of Q4_0-sized activation blocks (2k, 2k+1 of the 8-block groups) in the panel.
struct alignas(32) Q4_0PanelPair {
  __m256i xlo, xhi;  // as tile_q4_0's xlo / xhi
  __m256i offset;    // 8 * their pair sums (int16)
  __m256 dx;         // d_x of block 2k in lanes 0-3, of 2k+1 in lanes 4-7
};
static_assert(sizeof(Q4_0PanelPair) == 128);

// The rows one batch kernel call reads (Q4_0 and Q8_0 alike), and the panel's row group.
constexpr int kPanelRows = 8;

// The panel holds activation rows in groups of kPanelRows (the rows one kernel call reads), each
// group pair by pair, the group's rows side by side within a pair: pair p of row t at
// ((t / 8 * pairs + p) * 8 + t % 8). A call's slice of 16 pairs is then 16 contiguous KiB,
// which stay in L1 (rows a fixed stride apart would all fall into the same L1 sets: 4 KiB at
// 2048 columns, halving the kernel's speed).
TROUPE_AVX2 void prepare_q4_0_panel_row(const Q8Rows& x, int64_t t, uint8_t* out) {
  const __m256i eights = _mm256_set1_epi8(8);
  const int8_t* q = x.row_q(t);
  const float* d = x.row_d(t);
  const int64_t n_pairs = x.blocks / 8 * 4;
  Q4_0PanelPair* pair = reinterpret_cast<Q4_0PanelPair*>(out) + t / kPanelRows * n_pairs * kPanelRows + t % kPanelRows;
  for (int64_t k = 0; k < n_pairs; ++k, pair += kPanelRows) {
    const __m256i xa = load_x(q + 64 * k), xb = load_x(q + 64 * k + 32);
    pair->xlo = _mm256_permute2x128_si256(xa, xb, 0x20);
    pair->xhi = _mm256_permute2x128_si256(xa, xb, 0x31);
    pair->offset = _mm256_add_epi16(_mm256_maddubs_epi16(eights, pair->xlo), _mm256_maddubs_epi16(eights, pair->xhi));
    pair->dx = _mm256_set_m128(_mm_set1_ps(d[2 * k + 1]), _mm_set1_ps(d[2 * k]));
  }
}

// One pair of Q4_0 weight blocks (nibbles split into lo and hi, their scales dw_pair) times a
// panel pair of one activation row, added to acc.
TROUPE_AVX2 __attribute__((always_inline)) inline __m256 q4_0_pair_step(__m256i lo, __m256i hi, const Q4_0PanelPair& p,
                                                                      __m256 dw_pair, __m256 acc) {
  // |pair sum| <= 2 * 2 * 15 * 127 + 4 * 8 * 127: no int16 overflow.
  const __m256i pairs =
      _mm256_sub_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo, p.xlo), _mm256_maddubs_epi16(hi, p.xhi)), p.offset);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1))), _mm256_mul_ps(dw_pair, p.dx),
                         acc);
}

// Q4_0 batches: one weight row against C <= 8 activation rows per call, so that the 8
// accumulators, the row's unpacked nibbles and the temporaries fit AVX2's 16 registers and every
// panel value is a memory operand (4 loads and 8 vector operations per 64 products). The panel is
// read in slices of kQ4_0SliceGroups groups of 8 blocks (8 rows: 16 KiB, in L1) while a tile of
// weight rows (about kQ4_0TileBytes, in L2) passes; between slices a row's accumulators wait in
// memory, so each output's fmadd chain runs on unchanged.
constexpr int64_t kQ4_0SliceGroups = 4;

// Groups [g0, g1) of 8 blocks of one weight row times activation rows [t, t+C) (t a multiple
// of kPanelRows); `acc` holds the C accumulators between calls.
template <int C>
TROUPE_AVX2 void q4_0_row_slice(const uint8_t* row, size_t row_bytes, const Q8Rows& x, int64_t t, int64_t g0, int64_t g1,
                                __m256* acc_mem) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc[C];
  #pragma GCC unroll 8
  for (int c = 0; c < C; ++c) acc[c] = _mm256_load_ps(reinterpret_cast<const float*>(acc_mem + c));
  const int64_t n_pairs = x.blocks / 8 * 4;
  const auto* panel = reinterpret_cast<const Q4_0PanelPair*>(x.panel) + (t / kPanelRows * n_pairs + 4 * g0) * kPanelRows;
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* blocks = row + g * 8 * kQ4_0Bytes;
    // The next row's same blocks (the next call's), which come from L3 or DRAM on the first pass.
    for (int line = 0; line < 3; ++line) _mm_prefetch(reinterpret_cast<const char*>(blocks + row_bytes + 64 * line), _MM_HINT_T0);
    const __m256 dw = block_scales8<kQ4_0Bytes>(blocks);
    for (int k = 0; k < 4; ++k, panel += kPanelRows) {  // blocks 8g+2k and 8g+2k+1
      const __m256 dw_pair = pair_scales(dw, k);
      const __m256i packed = load_nibble_pair(blocks + 2 * k * kQ4_0Bytes);
      const __m256i lo = _mm256_and_si256(packed, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
      #pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[c] = q4_0_pair_step(lo, hi, panel[c], dw_pair, acc[c]);
    }
  }
  #pragma GCC unroll 8
  for (int c = 0; c < C; ++c) _mm256_store_ps(reinterpret_cast<float*>(acc_mem + c), acc[c]);
}

// The blocks after the last group of 8 one at a time, as tile_q4_0, then the sums into y.
template <int C>
TROUPE_AVX2 void q4_0_row_finish(const uint8_t* row, int64_t r, const Q8Rows& x, int64_t t, const __m256* acc_mem,
                                 const float* bias, float* y, int64_t ldy) {
  const __m256i eights = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);
  __m256 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = acc_mem[c];
  for (int64_t b = x.blocks / 8 * 8; b < x.blocks; ++b) {
    const uint8_t* block = row + b * kQ4_0Bytes;
    const __m256i wv = load_nibbles(block);
    const float dw = block_scale(block);
    for (int c = 0; c < C; ++c) {
      const __m256i xv = load_x(x.row_q(t + c) + 32 * b);
      const __m256i pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(wv, xv), _mm256_maddubs_epi16(eights, xv));
      acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)),
                               _mm256_set1_ps(dw * x.row_d(t + c)[b]), acc[c]);
    }
  }
  for (int c = 0; c < C; ++c) y[(t + c) * ldy + r] = hsum(acc[c]) + (bias ? bias[r] : 0.0f);
}

// ---- Q8_0 weights, small batches: broadcast scales ----------------------------------------------
// Rows r + i * step (i < R) times activation rows [t, t+C): per block, the weight scale and the
// activation scale are broadcast from memory and multiplied, as tile_q8_0's lane of d_w * d_x.
template <int R, int C>
TROUPE_AVX2 void batch_tile_q8_0(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                                 const float* bias, float* y, int64_t ldy) {
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* rows[R];
  #pragma GCC unroll 8
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  const int8_t* xq[C];
  const float* xd[C];
  #pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
    xq[c] = x.row_q(t + c);
    xd[c] = x.row_d(t + c);
  }
  __m256 acc[R][C];
  #pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[i][c] = _mm256_setzero_ps();
  alignas(32) float dw[R][8];
  for (int64_t b = 0; b < x.blocks; b += 8) {
    const int n = static_cast<int>(std::min<int64_t>(8, x.blocks - b));
    #pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      if (n == 8)
        _mm256_store_ps(dw[i], block_scales8<kQ8_0Bytes>(rows[i] + b * kQ8_0Bytes));
      else
        #pragma GCC unroll 8
        for (int j = 0; j < n; ++j) dw[i][j] = block_scale(rows[i] + (b + j) * kQ8_0Bytes);
    }
    #pragma GCC unroll 8
    for (int j = 0; j < n; ++j) {
      #pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[i] + (b + j) * kQ8_0Bytes + 2));
        const __m256i wabs = _mm256_sign_epi8(wv, wv);
        const __m256 dwb = _mm256_broadcast_ss(&dw[i][j]);
        #pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
          const __m256i sums =
              _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(load_x(xq[c] + 32 * (b + j)), wv)), ones);
          acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(dwb, _mm256_broadcast_ss(xd[c] + b + j)),
                                      acc[i][c]);
        }
      }
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i * step] = hsum(acc[i][c]) + (bias ? bias[r + i * step] : 0.0f);
}

// ---- Q8_0 weights on a panel -----------------------------------------------------------------
// As Q4_0 above: one weight row against 8 activation rows per call. Per block and output the
// multiply port does a maddubs and a madd (2 of them per 32 products: the bound of this path);
// everything else is taken out of the inner loop or moved to other ports. The panel regroups
// the rounded activations in groups of 8 blocks (Q8_0PanelGroup): the 8 rows' values block by
// block, then each row's 8 activation scales as one vector, so that a call multiplies the
// weight row's 8 scales (block_scales8) by them once per group and row, and the inner loop
// only broadcasts the product from the stack. Blocks after the last whole group keep one scale
// per row and block (Q8_0PanelBlock, the same 288 bytes per block). Per block and output:
// sign, maddubs, madd, convert and fmadd with the same d_w * d_x as tile_q8_0 with C = 1.
struct alignas(32) Q8_0PanelGroup {
  int8_t q[8][kPanelRows][32];  // block j of the group, activation row c
  float d[kPanelRows][8];       // row c's scales of the group's 8 blocks
};
struct alignas(32) Q8_0PanelBlock {
  int8_t q[kPanelRows][32];
  float d[kPanelRows];
};
static_assert(sizeof(Q8_0PanelGroup) == 8 * sizeof(Q8_0PanelBlock) && sizeof(Q8_0PanelBlock) == 288);

// A call's slice of the panel: kQ8_0SliceGroups groups (8 rows: 18 KiB, in L1; 2 and 4 groups
// measured 2-4% slower).
constexpr int64_t kQ8_0SliceGroups = 8;

// The panel of the row group that holds row t: blocks x 288 bytes, block b at b * 288.
TROUPE_AVX2 inline const uint8_t* q8_0_panel_rows(const Q8Rows& x, int64_t t) {
  return x.panel + t / kPanelRows * x.blocks * static_cast<int64_t>(sizeof(Q8_0PanelBlock));
}

TROUPE_AVX2 void prepare_q8_0_panel_row(const Q8Rows& x, int64_t t, uint8_t* out) {
  uint8_t* rows = out + t / kPanelRows * x.blocks * static_cast<int64_t>(sizeof(Q8_0PanelBlock));
  const int64_t c = t % kPanelRows, groups = x.blocks / 8;
  const int8_t* q = x.row_q(t);
  const float* d = x.row_d(t);
  auto* group = reinterpret_cast<Q8_0PanelGroup*>(rows);
  for (int64_t g = 0; g < groups; ++g, ++group)
    for (int j = 0; j < 8; ++j) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(group->q[j][c]), load_x(q + 32 * (8 * g + j)));
      group->d[c][j] = d[8 * g + j];
    }
  auto* block = reinterpret_cast<Q8_0PanelBlock*>(rows) + 8 * groups;
  for (int64_t b = 8 * groups; b < x.blocks; ++b, ++block) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(block->q[c]), load_x(q + 32 * b));
    block->d[c] = d[b];
  }
}

// Groups [g0, g1) of 8 blocks of one weight row times activation rows [t, t+C) (t a multiple
// of kPanelRows); `acc` holds the C accumulators between calls.
template <int C>
TROUPE_AVX2 void q8_0_row_slice(const uint8_t* row, size_t row_bytes, const Q8Rows& x, int64_t t, int64_t g0,
                                int64_t g1, __m256* acc_mem) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[C];
  #pragma GCC unroll 8
  for (int c = 0; c < C; ++c) acc[c] = _mm256_load_ps(reinterpret_cast<const float*>(acc_mem + c));
  const auto* group = reinterpret_cast<const Q8_0PanelGroup*>(q8_0_panel_rows(x, t)) + g0;
  alignas(32) float scale_mem[C * 8];  // d_w * d_x of row c and block j, broadcast from memory
  for (int64_t g = g0; g < g1; ++g, ++group) {
    // Opaque to GCC, which would otherwise keep the 64 addresses scale_mem + 8c + j in spilled
    // registers and load each one before its broadcast (measured: 25% slower).
    float* scale = scale_mem;
    asm("" : "+r"(scale));
    const uint8_t* blocks = row + g * 8 * kQ8_0Bytes;
    // The next row's same 272 bytes (the next call's), which come from L3 or DRAM on the first pass.
    for (int line = 0; line < 5; ++line) _mm_prefetch(reinterpret_cast<const char*>(blocks + row_bytes + 64 * line), _MM_HINT_T0);
    const __m256 dw = block_scales8<kQ8_0Bytes>(blocks);
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) _mm256_store_ps(scale + 8 * c, _mm256_mul_ps(dw, _mm256_load_ps(group->d[c])));
    #pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const uint8_t* block = blocks + j * kQ8_0Bytes;
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
      const __m256i wabs = _mm256_sign_epi8(wv, wv);
      #pragma GCC unroll 8
      for (int c = 0; c < C; ++c) {
        const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(group->q[j][c]));
        const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv, wv)), ones);
        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_broadcast_ss(scale + 8 * c + j), acc[c]);
      }
    }
  }
  #pragma GCC unroll 8
  for (int c = 0; c < C; ++c) _mm256_store_ps(reinterpret_cast<float*>(acc_mem + c), acc[c]);
}

// The blocks after the last group of 8 one at a time, as tile_q8_0, then the sums into y.
template <int C>
TROUPE_AVX2 void q8_0_row_finish(const uint8_t* row, int64_t r, const Q8Rows& x, int64_t t, const __m256* acc_mem,
                                 const float* bias, float* y, int64_t ldy) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = acc_mem[c];
  const auto* panel = reinterpret_cast<const Q8_0PanelBlock*>(q8_0_panel_rows(x, t));
  for (int64_t b = x.blocks / 8 * 8; b < x.blocks; ++b) {
    const uint8_t* block = row + b * kQ8_0Bytes;
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
    const __m256i wabs = _mm256_sign_epi8(wv, wv);
    const float dw = block_scale(block);
    for (int c = 0; c < C; ++c) {
      const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(panel[b].q[c]));
      const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv, wv)), ones);
      acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(dw * panel[b].d[c]), acc[c]);
    }
  }
  for (int c = 0; c < C; ++c) y[(t + c) * ldy + r] = hsum(acc[c]) + (bias ? bias[r] : 0.0f);
}

// ---- Q4_0 weights, small batches on the panel -------------------------------------------------
// For 2 or 3 activation rows (a short speculative verify pass, two or three sessions) the 8-row
// kernel above would stream the weights for too little work. Instead R weight rows (half the range
// apart, as gemm_q explains) meet all C rows of the panel's first group in one pass: the panel
// is read as memory operands, the 8 blocks' weight scales wait on the stack, only the R x C
// accumulators stay in registers. Same sums, products and fmadd order as tile_q4_0 with C = 1.
template <int R, int C>
TROUPE_AVX2 void small_batch_tile_q4_0(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                                       const float* bias, float* y, int64_t ldy) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), eights = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);
  const uint8_t* rows[R];
  #pragma GCC unroll 8
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  // Row t + c's pair p sits at panel[p * kPanelRows + c] (all rows are in the panel's first group).
  const auto* panel = reinterpret_cast<const Q4_0PanelPair*>(x.panel) + t;
  __m256 acc[R][C];
  #pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[i][c] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 8 <= x.blocks; b += 8) {
    __m256 dw_pairs[R][4];  // spilled to the stack on purpose: read as memory operands
    #pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 dw = block_scales8<kQ4_0Bytes>(rows[i] + b * kQ4_0Bytes);
      #pragma GCC unroll 8
      for (int k = 0; k < 4; ++k) dw_pairs[i][k] = pair_scales(dw, k);
    }
    #pragma GCC unroll 8
    for (int k = 0; k < 4; ++k) {  // blocks b+2k and b+2k+1
      const Q4_0PanelPair* pair = panel + (b / 2 + k) * kPanelRows;
      #pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m256i packed = load_nibble_pair(rows[i] + (b + 2 * k) * kQ4_0Bytes);
        const __m256i lo = _mm256_and_si256(packed, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
        #pragma GCC unroll 8
        for (int c = 0; c < C; ++c) acc[i][c] = q4_0_pair_step(lo, hi, pair[c], dw_pairs[i][k], acc[i][c]);
      }
    }
  }
  for (; b < x.blocks; ++b) {  // the last blocks one at a time, as tile_q4_0
    #pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const uint8_t* block = rows[i] + b * kQ4_0Bytes;
      const __m256i wv = load_nibbles(block);
      const float dw = block_scale(block);
      #pragma GCC unroll 8
      for (int c = 0; c < C; ++c) {
        const __m256i xv = load_x(x.row_q(t + c) + 32 * b);
        const __m256i pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(wv, xv), _mm256_maddubs_epi16(eights, xv));
        acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)),
                                    _mm256_set1_ps(dw * x.row_d(t + c)[b]), acc[i][c]);
      }
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) y[(t + c) * ldy + r + i * step] = hsum(acc[i][c]) + (bias ? bias[r + i * step] : 0.0f);
}

// ---- small batches: the driver ----------------------------------------------------------------

template <DType Type, int R, int C>
TROUPE_AVX2 void small_batch_tile(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t,
                                  const float* bias, float* y, int64_t ldy) {
  if constexpr (Type == DType::Q8_0)
    batch_tile_q8_0<R, C>(w, r, step, x, t, bias, y, ldy);
  else
    small_batch_tile_q4_0<R, C>(w, r, step, x, t, bias, y, ldy);
}

// Weight rows [r0, r1) times a few activation rows [t, t + C) (where the 8-row panel kernel
// does not pay: a verification pass of speculative decoding, a few sessions' decode): tiles of
// two weight rows half the range apart, as gemm_q explains (the weights stream from DRAM), the
// last row alone when the count is odd.
template <DType Type, int C>
TROUPE_AVX2 void small_batch_rows(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, int64_t t,
                                  const float* bias, float* y, int64_t ldy) {
  const int64_t step = (r1 - r0) / 2;
  for (int64_t k = 0; k < step; ++k) small_batch_tile<Type, 2, C>(w, r0 + k, step, x, t, bias, y, ldy);
  if (r0 + 2 * step < r1) small_batch_tile<Type, 1, C>(w, r1 - 1, 1, x, t, bias, y, ldy);
}

// Q8_0 below 8 activation rows: four at a time, then the rest.
TROUPE_AVX2 void gemm_small_batch_q8_0(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x,
                                       const float* bias, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= x.n; t += 4) small_batch_rows<DType::Q8_0, 4>(w, r0, r1, x, t, bias, y, ldy);
  switch (x.n - t) {
    case 3: return small_batch_rows<DType::Q8_0, 3>(w, r0, r1, x, t, bias, y, ldy);
    case 2: return small_batch_rows<DType::Q8_0, 2>(w, r0, r1, x, t, bias, y, ldy);
    case 1: return small_batch_rows<DType::Q8_0, 1>(w, r0, r1, x, t, bias, y, ldy);
    default: return;
  }
}

// Q4_0 with 2 or 3 activation rows (bench_kernels --cpu-time, one thread: 49-56 GFLOP/s at
// T = 2 and 42-53 at T = 3 against 37-50 and 36-38 on the decode tiles; from T = 4 the decode
// tiles measured as fast or faster).
constexpr int64_t kSmallBatchMaxT = 3;

TROUPE_AVX2 void gemm_small_batch_q4_0(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x,
                                       const float* bias, float* y, int64_t ldy) {
  if (x.n == 3) return small_batch_rows<DType::Q4_0, 3>(w, r0, r1, x, 0, bias, y, ldy);
  small_batch_rows<DType::Q4_0, 2>(w, r0, r1, x, 0, bias, y, ldy);
}

// ---- batch driver ---------------------------------------------------------------------------

// Weight rows [ra, rb) (at most kBatchTileRows) times activation rows [t, t+C): the panel slice
// by slice, each slice against every row of the tile, then the sums.
template <DType Type, int C>
TROUPE_AVX2 void batch_tile(const PackedMatrix& w, size_t row_bytes, int64_t ra, int64_t rb, const Q8Rows& x,
                            int64_t t, const float* bias, float* y, int64_t ldy, __m256* acc) {
  for (int64_t i = 0; i < (rb - ra) * C; ++i) acc[i] = _mm256_setzero_ps();
  if constexpr (Type == DType::Q4_0) {
    const int64_t groups = x.blocks / 8;
    for (int64_t g0 = 0; g0 < groups; g0 += kQ4_0SliceGroups) {
      const int64_t g1 = std::min(groups, g0 + kQ4_0SliceGroups);
      for (int64_t r = ra; r < rb; ++r)
        q4_0_row_slice<C>(w.data + r * row_bytes, row_bytes, x, t, g0, g1, acc + (r - ra) * C);
    }
    for (int64_t r = ra; r < rb; ++r)
      q4_0_row_finish<C>(w.data + r * row_bytes, r, x, t, acc + (r - ra) * C, bias, y, ldy);
  } else {
    const int64_t groups = x.blocks / 8;
    for (int64_t g0 = 0; g0 < groups; g0 += kQ8_0SliceGroups) {
      const int64_t g1 = std::min(groups, g0 + kQ8_0SliceGroups);
      for (int64_t r = ra; r < rb; ++r)
        q8_0_row_slice<C>(w.data + r * row_bytes, row_bytes, x, t, g0, g1, acc + (r - ra) * C);
    }
    for (int64_t r = ra; r < rb; ++r)
      q8_0_row_finish<C>(w.data + r * row_bytes, r, x, t, acc + (r - ra) * C, bias, y, ldy);
  }
}

// Weight rows [r0, r1) times all activation rows on the panel: tiles of weight rows (streamed
// from DRAM once, then read from L2 for every 8 activation rows), activation rows 8 at a time.
constexpr int64_t kBatchTileRows = 128;
constexpr size_t kBatchTileBytes = 192 * 1024;

template <DType Type>
TROUPE_AVX2 void gemm_batch(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias,
                            float* y, int64_t ldy) {
  const size_t row_bytes = w.row_bytes();
  const int64_t tile_rows = std::clamp<int64_t>(static_cast<int64_t>(kBatchTileBytes / row_bytes), 1, kBatchTileRows);
  alignas(32) __m256 acc[kBatchTileRows * kPanelRows];
  for (int64_t ra = r0; ra < r1; ra += tile_rows) {
    const int64_t rb = std::min(r1, ra + tile_rows);
    int64_t t = 0;
    for (; t + kPanelRows <= x.n; t += kPanelRows) batch_tile<Type, kPanelRows>(w, row_bytes, ra, rb, x, t, bias, y, ldy, acc);
    switch (x.n - t) {
      case 7: batch_tile<Type, 7>(w, row_bytes, ra, rb, x, t, bias, y, ldy, acc); break;
      case 6: batch_tile<Type, 6>(w, row_bytes, ra, rb, x, t, bias, y, ldy, acc); break;
      case 5: batch_tile<Type, 5>(w, row_bytes, ra, rb, x, t, bias, y, ldy, acc); break;
      case 4: batch_tile<Type, 4>(w, row_bytes, ra, rb, x, t, bias, y, ldy, acc); break;
      case 3: batch_tile<Type, 3>(w, row_bytes, ra, rb, x, t, bias, y, ldy, acc); break;
      case 2: batch_tile<Type, 2>(w, row_bytes, ra, rb, x, t, bias, y, ldy, acc); break;
      case 1: batch_tile<Type, 1>(w, row_bytes, ra, rb, x, t, bias, y, ldy, acc); break;
      default: break;
    }
  }
}

// ---- row tiles ------------------------------------------------------------------------------

template <DType Type, int R, int C>
TROUPE_AVX2 void tile_q(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, int64_t t, const float* bias,
                        float* y, int64_t ldy) {
  if constexpr (Type == DType::Q8_0)
    tile_q8_0<R, C>(w, r, step, x, t, bias, y, ldy);
  else
    tile_q4_0<R, C>(w, r, step, x, t, bias, y, ldy);
}

// Rows r + i * step (i < R) times all activation rows, four at a time (a weight block is
// unpacked once for four rows: batches of sessions gain ~15% over pairs), then two, then one.
// Each output is the same sequence of operations whatever C, so a row's bits do not depend on
// the batch it is in.
template <DType Type, int R>
TROUPE_AVX2 void tile_q_all(const PackedMatrix& w, int64_t r, int64_t step, const Q8Rows& x, const float* bias,
                            float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= x.n; t += 4) tile_q<Type, R, 4>(w, r, step, x, t, bias, y, ldy);
  for (; t + 2 <= x.n; t += 2) tile_q<Type, R, 2>(w, r, step, x, t, bias, y, ldy);
  if (t < x.n) tile_q<Type, R, 1>(w, r, step, x, t, bias, y, ldy);
}

// Rows [r0, r1) in tiles of R rows that lie a quarter (R = 4) or half (R = 2) of the range
// apart: tile k holds rows r0 + k + i (r1 - r0) / R. Rows read side by side must not share
// 4 KiB pages: Zen 4's prefetchers lose track of several streams within one page (measured:
// 4 adjacent Q8_0 rows of 2 KiB stream from DRAM at 8 GB/s, the same 4 rows a quarter of the
// matrix apart at 29 GB/s).
template <DType Type>
TROUPE_AVX2 void gemm_q(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
                        int64_t ldy) {
  if (x.n == 1) {
    const int64_t step = (r1 - r0) / 4;
    for (int64_t k = 0; k < step; ++k) tile_q<Type, 4, 1>(w, r0 + k, step, x, 0, bias, y, ldy);
    for (int64_t r = r0 + 4 * step; r < r1; ++r) tile_q<Type, 1, 1>(w, r, 1, x, 0, bias, y, ldy);
    return;
  }
  // Batches: 8 rows and more on the panel, 8 at a time. Below 8, Q8_0 its broadcast-scale tiles;
  // Q4_0 2-3 rows on the panel, 4-7 (where the panel is prepared but not read) on the decode tiles.
  if (x.panel && x.n >= kPanelRows) return gemm_batch<Type>(w, r0, r1, x, bias, y, ldy);
  if constexpr (Type == DType::Q8_0) {
    gemm_small_batch_q8_0(w, r0, r1, x, bias, y, ldy);
  } else {
    if (x.panel && x.n <= kSmallBatchMaxT) return gemm_small_batch_q4_0(w, r0, r1, x, bias, y, ldy);
    const int64_t step = (r1 - r0) / 2;
    for (int64_t k = 0; k < step; ++k) tile_q_all<Type, 2>(w, r0 + k, step, x, bias, y, ldy);
    for (int64_t r = r0 + 2 * step; r < r1; ++r) tile_q_all<Type, 1>(w, r, 1, x, bias, y, ldy);
  }
}

// ---- to fp32 ------------------------------------------------------------------------------

TROUPE_AVX2 void store_block(__m256i w8, float d, float* out) {
  const __m256 vd = _mm256_set1_ps(d);
  const __m128i lo = _mm256_castsi256_si128(w8), hi = _mm256_extracti128_si256(w8, 1);
  _mm256_storeu_ps(out + 0, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
  _mm256_storeu_ps(out + 8, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
  _mm256_storeu_ps(out + 16, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
  _mm256_storeu_ps(out + 24, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

TROUPE_AVX2 void dequantize_q8_0(const uint8_t* src, int64_t n_blocks, float* out) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kQ8_0Bytes, out += 32)
    store_block(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2)), block_scale(src), out);
}

TROUPE_AVX2 void dequantize_q4_0(const uint8_t* src, int64_t n_blocks, float* out) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kQ4_0Bytes, out += 32)
    store_block(_mm256_sub_epi8(load_nibbles(src), _mm256_set1_epi8(8)), block_scale(src), out);
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
    case DType::Q8_0: return dequantize_q8_0(w.row(r0), n / 32, out);
    case DType::Q4_0: return dequantize_q4_0(w.row(r0), n / 32, out);
    case DType::F16: return convert_half<DType::F16>(w.row(r0), n, out);
    case DType::BF16: return convert_half<DType::BF16>(w.row(r0), n, out);
    default: return dequantize(w.dtype, w.row(r0), out, n);
  }
}

}  // namespace

const KernelTable& avx2_kernels() {
  static const KernelTable table{quantize_row_q8, dequantize_rows, avx2::quantize_row_q8_k};
  return table;
}

namespace avx2 {
void gemm_q8_0(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
               int64_t ldy) {
  kernels::gemm_q<DType::Q8_0>(w, r0, r1, x, bias, y, ldy);
}
void gemm_q4_0(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
               int64_t ldy) {
  kernels::gemm_q<DType::Q4_0>(w, r0, r1, x, bias, y, ldy);
}
void prepare_q4_0_panel_row(const Q8Rows& x, int64_t t, uint8_t* out) { kernels::prepare_q4_0_panel_row(x, t, out); }
void prepare_q8_0_panel_row(const Q8Rows& x, int64_t t, uint8_t* out) { kernels::prepare_q8_0_panel_row(x, t, out); }
}  // namespace avx2

}  // namespace troupe::kernels
