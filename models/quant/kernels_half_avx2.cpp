// AVX2 kernels for F16 and BF16 weights times fp32 activations (F16C converts 8 weights per step;
// BF16 is a shift). Each (weight row, activation row) output has one 8-lane fp32 accumulator
// that takes an fmadd per 8 columns, in column order; its lanes are summed by hsum (a prompt's
// blocks use hsum8, the same additions for 8 rows at once) and the columns after the last
// multiple of 8 added one by one. Decode and batches run that same sequence, so a row's bits do
// not depend on its batch.
//
// Decode and small batches stream the weights once, in whole-row tiles whose rows lie far apart
// (as gemm_q in kernels_avx2.cpp explains): 4 rows for one activation row, 2 rows x 4 activation
// rows below kHalfMinBlockT. A prompt is limited by the arithmetic instead: tiles of 4 weight rows
// x 3 activation rows hold 12 accumulators, the 3 activation vectors and one converted weight
// vector in AVX2's 16 registers (each conversion feeds 3 fmadds, each activation load 4), over
// blocks of 16 weight rows that stay in L2 while every group of 3 activation rows passes.
#include <algorithm>

#include "models/quant/kernels_x86.h"
#include "models/quant/quant_kernels.h"

namespace troupe::kernels {
namespace {

using namespace x86;

// ---- whole-row tiles: decode, small batches -----------------------------------------------

// Columns [0, vector_cols) (a multiple of 8) of weight rows rows[0..R) times activation rows
// xr[0..C): the 8-lane accumulators, stored in acc_mem[i * C + c].
template <DType Type, int R, int C>
TROUPE_AVX2 void half_tile_sums(const uint8_t* const (&rows)[R], const float* const (&xr)[C], int64_t vector_cols,
                                __m256* acc_mem) {
  __m256 acc[R][C];
  #pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[i][c] = _mm256_setzero_ps();
  for (int64_t j = 0; j < vector_cols; j += 8) {
    __m256 xv[C];
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) xv[c] = _mm256_loadu_ps(xr[c] + j);
    #pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 wv = load8_half<Type>(rows[i] + 2 * j);
      #pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[i][c] = _mm256_fmadd_ps(wv, xv[c], acc[i][c]);
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc_mem[i * C + c] = acc[i][c];
}

// One output from its accumulator's lane sum: the columns after the last multiple of 8 added one
// by one, then the bias. Decode and batches both end here, so their bits agree.
template <DType Type>
TROUPE_AVX2 inline float finish_sum(float s, const uint8_t* row, const float* x, int64_t cols, float bias) {
  for (int64_t k = cols / 8 * 8; k < cols; ++k) s += half_at<Type>(row + 2 * k) * x[k];
  return s + bias;
}
template <DType Type>
TROUPE_AVX2 inline float finish_half(__m256 acc, const uint8_t* row, const float* x, int64_t cols, float bias) {
  return finish_sum<Type>(hsum(acc), row, x, cols, bias);
}

// Rows r + i * step (i < R) times activation rows [t, t+C), whole rows at a time, finished into y.
template <DType Type, int R, int C>
TROUPE_AVX2 void tile_half(const PackedMatrix& w, int64_t r, int64_t step, const float* x, int64_t t,
                           const float* bias, float* y, int64_t ldy) {
  const int64_t cols = w.cols;
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = w.row(r + i * step);
  const float* xr[C];
  for (int c = 0; c < C; ++c) xr[c] = x + (t + c) * cols;
  __m256 acc[R * C];
  half_tile_sums<Type, R, C>(rows, xr, cols / 8 * 8, acc);
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c)
      y[(t + c) * ldy + r + i * step] =
          finish_half<Type>(acc[i * C + c], rows[i], xr[c], cols, bias ? bias[r + i * step] : 0.0f);
}

// Rows r + i * step (i < R) times all T activation rows, four at a time.
template <DType Type, int R>
TROUPE_AVX2 void tile_half_all(const PackedMatrix& w, int64_t r, int64_t step, const float* x, int64_t T,
                               const float* bias, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) tile_half<Type, R, 4>(w, r, step, x, t, bias, y, ldy);
  switch (T - t) {
    case 3: return tile_half<Type, R, 3>(w, r, step, x, t, bias, y, ldy);
    case 2: return tile_half<Type, R, 2>(w, r, step, x, t, bias, y, ldy);
    case 1: return tile_half<Type, R, 1>(w, r, step, x, t, bias, y, ldy);
    default: return;
  }
}

// Strided tiles of R rows (the range split in R parts) times all T activation rows.
template <DType Type, int R>
TROUPE_AVX2 void strided_half(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T,
                              const float* bias, float* y, int64_t ldy) {
  const int64_t step = (r1 - r0) / R;
  for (int64_t k = 0; k < step; ++k) tile_half_all<Type, R>(w, r0 + k, step, x, T, bias, y, ldy);
  for (int64_t r = r0 + R * step; r < r1; ++r) tile_half_all<Type, 1>(w, r, 1, x, T, bias, y, ldy);
}

// ---- prompts: blocks of 4 x 3 tiles -----------------------------------------------------

constexpr int kHalfTileRows = 4;  // weight rows per step
constexpr int kHalfTileCols = 3;  // activation rows per step
// Weight rows per block: 16, 64 KiB of F16 at 2048 columns, which stay in L2 while every group
// of 3 activation rows passes, so each weight is read from DRAM once per call. Each tile runs
// its whole rows in one pass: cutting them into 2048-column slices (accumulators parked in
// memory between slices) was slower (bench_kernels --cpu-time --types f16 --shape ..., 3
// alternating runs, GFLOP/s whole rows vs slices): 2048x5632 T = 32 75-79 vs 69-74, T = 128
// 84-86 vs 76-82; 4096x4096 T = 32 76-82 vs 70-76, T = 128 86-88 vs 76-84.
constexpr int64_t kHalfBlockRows = 16;

// Weight rows [r0, r1) (at most kHalfBlockRows) times activation rows [t, t+C), tile by tile,
// then each output finished.
template <DType Type, int C>
TROUPE_AVX2 void half_block(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t t,
                            const float* bias, float* y, int64_t ldy) {
  constexpr int R = kHalfTileRows;
  const int64_t cols = w.cols, vector_cols = cols / 8 * 8;
  const float* xr[C];
  for (int c = 0; c < C; ++c) xr[c] = x + (t + c) * cols;
  // The outputs' lines are fetched now, long before the stores at the end: otherwise those
  // stores miss together and stall the next block.
  for (int c = 0; c < C; ++c) {
    __builtin_prefetch(y + (t + c) * ldy + r0, 1);
    __builtin_prefetch(y + (t + c) * ldy + r1 - 1, 1);
  }
  alignas(32) __m256 acc[kHalfBlockRows * C];
  const int64_t full_tiles_end = r0 + (r1 - r0) / R * R;
  int64_t tile_row = r0;
  for (; tile_row < full_tiles_end; tile_row += R) {
    const uint8_t* rows[R] = {w.row(tile_row), w.row(tile_row + 1), w.row(tile_row + 2), w.row(tile_row + 3)};
    half_tile_sums<Type, R, C>(rows, xr, vector_cols, acc + (tile_row - r0) * C);
  }
  for (; tile_row < r1; ++tile_row) {
    const uint8_t* rows[1] = {w.row(tile_row)};
    half_tile_sums<Type, 1, C>(rows, xr, vector_cols, acc + (tile_row - r0) * C);
  }
  // Eight rows' sums at a time (hsum8 has hsum's bits), stored as one vector when no column is
  // left after the last multiple of 8.
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8)
    for (int c = 0; c < C; ++c) {
      __m256 v[8];
      for (int k = 0; k < 8; ++k) v[k] = acc[(r + k - r0) * C + c];
      const __m256 sums = hsum8(v);
      float* out = y + (t + c) * ldy + r;
      if (cols % 8 == 0) {
        _mm256_storeu_ps(out, bias ? _mm256_add_ps(sums, _mm256_loadu_ps(bias + r)) : sums);
        continue;
      }
      alignas(32) float s[8];
      _mm256_store_ps(s, sums);
      for (int k = 0; k < 8; ++k) out[k] = finish_sum<Type>(s[k], w.row(r + k), xr[c], cols, bias ? bias[r + k] : 0.0f);
    }
  for (; r < r1; ++r)
    for (int c = 0; c < C; ++c)
      y[(t + c) * ldy + r] = finish_half<Type>(acc[(r - r0) * C + c], w.row(r), xr[c], cols, bias ? bias[r] : 0.0f);
}

// Decode: strided tiles of 4 rows. Batches below kHalfMinBlockT (a speculative verification
// pass, a few sessions): strided tiles of 2 rows x 4 activation rows, which stream the weights
// from DRAM faster than blocks of adjacent rows (measured with bench_kernels --cpu-time, T = 4-8:
// 37-53 vs 28-42 GFLOP/s; T = 16 about even). From there blocks of 4 x 3 tiles (T = 64: 67-70 vs
// 43-46, T = 256: 64-73 vs 43-45).
constexpr int64_t kHalfMinBlockT = 16;

template <DType Type>
TROUPE_AVX2 void gemm_half(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T,
                           const float* bias, float* y, int64_t ldy) {
  if (T == 1) return strided_half<Type, 4>(w, r0, r1, x, T, bias, y, ldy);
  if (T < kHalfMinBlockT) return strided_half<Type, 2>(w, r0, r1, x, T, bias, y, ldy);
  for (int64_t b = r0; b < r1; b += kHalfBlockRows) {
    const int64_t b1 = std::min(r1, b + kHalfBlockRows);
    int64_t t = 0;
    for (; t + kHalfTileCols <= T; t += kHalfTileCols) half_block<Type, kHalfTileCols>(w, b, b1, x, t, bias, y, ldy);
    if (T - t == 2) half_block<Type, 2>(w, b, b1, x, t, bias, y, ldy);
    if (T - t == 1) half_block<Type, 1>(w, b, b1, x, t, bias, y, ldy);
  }
}

}  // namespace

namespace avx2 {
void gemm_f16(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, const float* bias, float* y,
              int64_t ldy) {
  kernels::gemm_half<DType::F16>(w, r0, r1, x, T, bias, y, ldy);
}
void gemm_bf16(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, const float* bias, float* y,
               int64_t ldy) {
  kernels::gemm_half<DType::BF16>(w, r0, r1, x, T, bias, y, ldy);
}
}  // namespace avx2

}  // namespace troupe::kernels
