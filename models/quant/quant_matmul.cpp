#include "models/quant/quant_matmul.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "models/quant/parallel_range.h"
#include "models/quant/quant_kernels.h"
#include "models/quant/type_traits.h"

namespace troupe {
namespace {

// ---- instruction set ----------------------------------------------------------------------

std::atomic<int> g_forced_isa{-1};

KernelIsa detect_best() {
  if (kernel_isa_supported(KernelIsa::avx512vnni)) return KernelIsa::avx512vnni;
  if (kernel_isa_supported(KernelIsa::avx2)) return KernelIsa::avx2;
  return KernelIsa::portable;
}

const kernels::KernelTable& kernel_table(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::avx512vnni: return kernels::avx512vnni_kernels();
    case KernelIsa::avx2: return kernels::avx2_kernels();
    case KernelIsa::portable: break;
  }
  return kernels::portable_kernels();
}

// ---- thresholds and work split --------------------------------------------------------------

// From which batch size the fp32-tile + BLAS path beats the direct kernels, per instruction
// set, measured with tools/bench_kernels (W 5632 x 2048). AVX2: the batch kernels (Q4_0 on a
// prepared panel, Q8_0 with broadcast scales, the K formats' shared tile loop) are at least as
// fast as the tiles at every T from 1 to 512 (EPYC Zen 2/3, one thread, CPU time: Q4_0 43-56
// vs 37-44 GFLOP/s, Q8_0 33-42 vs 34-46 from T = 64 on), and F16 / BF16's 4 x 3 tiles match or
// beat them from T = 128 to 512 (F16 52-70 vs 42-62), so no type takes the tiles there and a
// row's bits never depend on its batch. AVX512-VNNI (Zen 4, 2 threads):
// Q8_0 190 vs 170 and Q4_0 193 vs 169 still at T = 512. F16 / BF16 136 vs 143 at T = 128
// (direct ahead up to 64). The portable direct kernels are scalar: BLAS from T = 2.
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
MatmulThresholds default_thresholds(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::avx512vnni: return {1024, 128};
    case KernelIsa::avx2: return {kNever, kNever};
    case KernelIsa::portable: break;
  }
  return {2, 2};
}

// Set by set_matmul_thresholds (tests, benchmarks); 0 = the defaults.
std::atomic<int64_t> g_quantized_min_T{0};
std::atomic<int64_t> g_half_min_T{0};

// A task should run for about 50 us, so that waking a thread (several us, far more when the
// cores are shared) stays small. A row costs about row_bytes / 20 ns to stream (decode) and
// T * cols / 40 ns of arithmetic (batches); measured on Zen 4 with tools/bench_kernels.
constexpr double kMinTaskNs = 50000;
constexpr int64_t kRowGroup = 4;  // output rows handed out together (the kernels' tile height)

// Batches: at least kMinBatchTaskRows rows, as each task reads the whole activation panel
// (T rows, up to 1 MiB) once per tile of weight rows.
constexpr int64_t kMinBatchTaskRows = 64;

int64_t grain_in_groups(const PackedMatrix& w, int64_t T) {
  const double row_ns = static_cast<double>(w.row_bytes()) / 20 + static_cast<double>(T * w.cols) / 40;
  auto rows = static_cast<int64_t>(kMinTaskNs / row_ns) + 1;
  if (T > 1) rows = std::max(rows, kMinBatchTaskRows);
  return std::max<int64_t>(1, (rows + kRowGroup - 1) / kRowGroup);
}

// 64-byte aligned scratch memory of the calling thread, kept between calls.
template <class T>
T* thread_scratch(std::vector<uint8_t>& buffer, size_t count) {
  const size_t bytes = count * sizeof(T) + 64;
  if (buffer.size() < bytes) buffer.resize(bytes);
  const auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return reinterpret_cast<T*>((address + 63) & ~uintptr_t{63});
}
thread_local std::vector<uint8_t> t_activations, t_panel, t_tile, t_tile_out;

// ---- kernels by type -----------------------------------------------------------------------

// The type's kernel for the active instruction set, or the next lower set's where it has none,
// and the set that kernel belongs to (its batch-size thresholds apply).
template <class Kernel>
std::pair<Kernel, KernelIsa> pick_kernel(const Kernel (&by_isa)[kIsaCount], KernelIsa isa) {
  for (int i = static_cast<int>(isa); i >= 0; --i)
    if (by_isa[i]) return {by_isa[i], static_cast<KernelIsa>(i)};
  return {nullptr, KernelIsa::portable};
}

// From which T the fp32-tile + BLAS path is taken for w's type (0: always).
int64_t tiles_from_T(const TypeTraits& traits, KernelIsa isa) {
  switch (traits.activations) {
    case ActivationFormat::none: return 0;
    case ActivationFormat::f32: {
      const auto [gemm, kernel_isa] = pick_kernel(traits.gemm_f, isa);
      if (!gemm) return 0;
      const int64_t set = g_half_min_T.load(std::memory_order_relaxed);
      return set > 0 ? set : default_thresholds(kernel_isa).half_min_T;
    }
    default: {
      const auto [gemm, kernel_isa] = pick_kernel(traits.gemm_q, isa);
      if (!gemm) return 0;
      const int64_t set = g_quantized_min_T.load(std::memory_order_relaxed);
      // Q8_1 types (Q4_1, Q5_1) stay on the direct kernel up to batches of 256 whatever kernel
      // it is: fp32 tiles cannot reproduce the rounded activation sums (s) their offsets are
      // multiplied with, and llama.cpp's greedy tokens differ early without them.
      if (traits.activations == ActivationFormat::q8_1)
        return set > 0 ? set : std::max<int64_t>(256, default_thresholds(kernel_isa).quantized_min_T);
      return set > 0 ? set : default_thresholds(kernel_isa).quantized_min_T;
    }
  }
}

// ---- the two paths --------------------------------------------------------------------------

// Values per scale of an activation format (Q8_K: super-blocks of 256).
int64_t activation_block(ActivationFormat format) { return format == ActivationFormat::q8_k ? 256 : 32; }

// One activation row rounded to `format` (q, d per block; s for Q8_1, sums per 16 for Q8_K).
void quantize_activation_row(const kernels::KernelTable& k, ActivationFormat format, const float* x, int64_t cols,
                             int8_t* q, float* d, float* s, int16_t* bsums) {
  switch (format) {
    case ActivationFormat::q8_1: kernels::quantize_row_q8_1(x, cols, q, d, s); break;
    case ActivationFormat::q8_k: k.quantize_row_q8_k(x, cols, q, d, bsums); break;
    default: k.quantize_row_q8(x, cols, q, d);
  }
}

// Rounds the activation rows to the type's Q8 format, then the type's kernel on groups of rows.
void direct_quantized(const kernels::KernelTable& k, const TypeTraits& traits, KernelIsa isa, const PackedMatrix& w,
                      const float* x, int64_t T, const float* bias, float* y) {
  const int64_t cols = w.cols;
  const ActivationFormat format = traits.activations;
  const int64_t block = activation_block(format), blocks = cols / block;
  // q: T * cols int8 (32-byte aligned rows: cols is a multiple of 32), then d, s and their
  // block-major copies: T * blocks floats each, then the sums per 16: T * cols / 16 int16.
  auto* q = thread_scratch<int8_t>(t_activations, static_cast<size_t>(T * cols + 4 * T * blocks * 4 + T * cols / 8));
  auto* d = reinterpret_cast<float*>(q + T * cols);
  float* s = d + T * blocks;
  float* d_by_block = s + T * blocks;
  float* s_by_block = d_by_block + T * blocks;
  auto* bsums = reinterpret_cast<int16_t*>(s_by_block + T * blocks);
  parallel_range(T, std::max<int64_t>(1, 65536 / cols), [&](int64_t t0, int64_t t1) {  // ~30 us a task
    for (int64_t t = t0; t < t1; ++t) {
      quantize_activation_row(k, format, x + t * cols, cols, q + t * cols, d + t * blocks, s + t * blocks,
                              bsums + t * blocks * 16);
      for (int64_t b = 0; b < blocks; ++b) d_by_block[b * T + t] = d[t * blocks + b];
      if (format == ActivationFormat::q8_1)  // the only format with s
        for (int64_t b = 0; b < blocks; ++b) s_by_block[b * T + t] = s[t * blocks + b];
    }
  });
  kernels::Q8Rows rows{T, blocks, q, d, block, s, bsums};
  rows.d_by_block = d_by_block;
  rows.s_by_block = s_by_block;
  const auto [gemm, kernel_isa] = pick_kernel(traits.gemm_q, isa);
  const BatchPanel& panel = traits.panel[static_cast<int>(kernel_isa)];
  if (T >= panel.min_T && panel.prepare_row) {
    rows.panel_row_bytes = blocks * panel.bytes_per_block;
    const int64_t panel_rows = (T + panel.row_group - 1) / panel.row_group * panel.row_group;
    uint8_t* out = thread_scratch<uint8_t>(t_panel, static_cast<size_t>(panel_rows * rows.panel_row_bytes));
    parallel_range(T, std::max<int64_t>(1, 65536 / cols), [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) panel.prepare_row(rows, t, out);
    });
    rows.panel = out;
  }
  const int64_t groups = (w.rows + kRowGroup - 1) / kRowGroup;
  parallel_range(groups, grain_in_groups(w, T), [&](int64_t g0, int64_t g1) {
    gemm(w, g0 * kRowGroup, std::min(w.rows, g1 * kRowGroup), rows, bias, y, w.rows);
  });
}

void direct_float(const TypeTraits& traits, KernelIsa isa, const PackedMatrix& w, const float* x, int64_t T,
                  const float* bias, float* y) {
  const FloatGemm gemm = pick_kernel(traits.gemm_f, isa).first;
  const int64_t groups = (w.rows + kRowGroup - 1) / kRowGroup;
  parallel_range(groups, grain_in_groups(w, T), [&](int64_t g0, int64_t g1) {
    gemm(w, g0 * kRowGroup, std::min(w.rows, g1 * kRowGroup), x, T, bias, y, w.rows);
  });
}

// Each task converts tiles of W (about 256 KiB of fp32, so they stay in L2) and multiplies
// them with BLAS; the tile is the task's scratch, never the whole matrix.
void tiled_fp32(const kernels::KernelTable& k, const PackedMatrix& w, const float* x, int64_t T, const float* bias,
                float* y) {
  const int64_t cols = w.cols;
  const int64_t tile_rows = std::clamp<int64_t>((256 * 1024 / (4 * cols)) / 16 * 16, 16, 512);
  const int64_t n_tiles = (w.rows + tile_rows - 1) / tile_rows;
  const at::Tensor xt = at::from_blob(const_cast<float*>(x), {T, cols});
  parallel_range_aten(n_tiles, 1, [&](int64_t i0, int64_t i1) {  // the tiles call BLAS
    float* tile = thread_scratch<float>(t_tile, static_cast<size_t>(tile_rows * cols));
    float* out = thread_scratch<float>(t_tile_out, static_cast<size_t>(T * tile_rows));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r0 = i * tile_rows, n = std::min(tile_rows, w.rows - r0);
      if (w.dtype == DType::F32)
        std::memcpy(tile, w.row(r0), static_cast<size_t>(n * cols) * sizeof(float));
      else
        k.dequantize_rows(w, r0, r0 + n, tile);
      at::Tensor o = at::from_blob(out, {T, n});
      at::mm_out(o, xt, at::from_blob(tile, {n, cols}).t());
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < n; ++j) y[t * w.rows + r0 + j] = out[t * n + j] + (bias ? bias[r0 + j] : 0.0f);
    }
  });
}

// Q8_0 and Q4_0 tiles multiply the fp32 activations, as they always have (their direct kernels
// cover batches up to 256 / 1024 rows on AVX2 / AVX512); the other block formats round them.
bool rounds_activations_in_tiles(const TypeTraits& traits) {
  switch (traits.activations) {
    case ActivationFormat::q8_0: return traits.type != DType::Q8_0 && traits.type != DType::Q4_0;
    case ActivationFormat::q8_1:
    case ActivationFormat::q8_k: return true;
    default: return false;
  }
}

thread_local std::vector<uint8_t> t_rounded, t_rounding;

// x[T, cols] rounded to `format` and back to fp32 (d * q), row by row.
void round_activations(const kernels::KernelTable& k, ActivationFormat format, const float* x, int64_t T,
                       int64_t cols, float* out) {
  const int64_t block = activation_block(format), blocks = cols / block;
  auto* q = thread_scratch<int8_t>(t_rounding, static_cast<size_t>(cols + 2 * blocks * 4 + cols / 8));
  auto* d = reinterpret_cast<float*>(q + cols);
  float* s = d + blocks;
  auto* bsums = reinterpret_cast<int16_t*>(s + blocks);
  for (int64_t t = 0; t < T; ++t) {
    quantize_activation_row(k, format, x + t * cols, cols, q, d, s, bsums);
    for (int64_t j = 0; j < cols; ++j) out[t * cols + j] = d[j / block] * static_cast<float>(q[j]);
  }
}

const TypeTraits& check_matrix(const PackedMatrix& w) {
  if (!w.data) throw std::invalid_argument("packed matrix without data");
  const TypeTraits* traits = find_type_traits(static_cast<uint32_t>(w.dtype));
  if (!traits || !traits->dequantize_row)
    throw std::invalid_argument("no matrix product for " + dtype_name(static_cast<uint32_t>(w.dtype)) + " weights");
  if (w.cols % traits->block_elems != 0)
    throw std::invalid_argument(std::string("a ") + traits->name + " matrix needs rows of a multiple of " +
                                std::to_string(traits->block_elems) + " elements, not " + std::to_string(w.cols));
  return *traits;
}

}  // namespace

void packed_matmul(const PackedMatrix& w, const float* x, int64_t T, const float* bias, float* y) {
  const TypeTraits& traits = check_matrix(w);
  if (T <= 0 || w.rows == 0) return;
  if (w.cols == 0) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < w.rows; ++r) y[t * w.rows + r] = bias ? bias[r] : 0.0f;
    return;
  }
  const KernelIsa isa = active_kernel_isa();
  const auto& k = kernel_table(isa);
  const int64_t tiles_from = tiles_from_T(traits, isa);
  if (tiles_from == 0 || T >= tiles_from) {
    if (!rounds_activations_in_tiles(traits)) return tiled_fp32(k, w, x, T, bias, y);
    // The tiles multiply the activations as the direct kernel would see them (rounded to the
    // type's Q8 format, then widened), as llama.cpp does in every batch: otherwise a prompt
    // takes another path through the model than its decode steps and llama.cpp's.
    auto* rounded = thread_scratch<float>(t_rounded, static_cast<size_t>(T * w.cols));
    round_activations(k, traits.activations, x, T, w.cols, rounded);
    return tiled_fp32(k, w, rounded, T, bias, y);
  }
  if (traits.activations == ActivationFormat::f32) return direct_float(traits, isa, w, x, T, bias, y);
  return direct_quantized(k, traits, isa, w, x, T, bias, y);
}

bool packed_matmul_rows_independent(DType type, int64_t T) {
  const TypeTraits* traits = find_type_traits(static_cast<uint32_t>(type));
  if (T <= 1) return true;
  if (!traits) return false;
  return T < tiles_from_T(*traits, active_kernel_isa());
}

void packed_rows(const PackedMatrix& w, const int64_t* ids, int64_t n, float* out) {
  check_matrix(w);
  const auto& k = kernel_table(active_kernel_isa());
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= w.rows)
      throw std::out_of_range("row " + std::to_string(ids[i]) + " of a matrix of " + std::to_string(w.rows) + " rows");
    if (w.dtype == DType::F32)
      std::memcpy(out + i * w.cols, w.row(ids[i]), static_cast<size_t>(w.cols) * sizeof(float));
    else
      k.dequantize_rows(w, ids[i], ids[i] + 1, out + i * w.cols);
  }
}

const char* kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::portable: return "portable";
    case KernelIsa::avx2: return "avx2";
    case KernelIsa::avx512vnni: return "avx512vnni";
  }
  return "?";
}

bool kernel_isa_supported(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::portable: return true;
#if defined(__x86_64__) || defined(__i386__)
    case KernelIsa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case KernelIsa::avx512vnni:
      return kernel_isa_supported(KernelIsa::avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni");
#else
    default: return false;
#endif
  }
  return false;
}

KernelIsa best_kernel_isa() {
  static const KernelIsa best = detect_best();
  return best;
}

KernelIsa active_kernel_isa() {
  const int forced = g_forced_isa.load(std::memory_order_relaxed);
  return forced < 0 ? best_kernel_isa() : static_cast<KernelIsa>(forced);
}

void force_kernel_isa(KernelIsa isa) {
  if (!kernel_isa_supported(isa))
    throw std::invalid_argument(std::string("this CPU cannot run the ") + kernel_isa_name(isa) + " kernels");
  g_forced_isa.store(static_cast<int>(isa));
}

void reset_kernel_isa() { g_forced_isa.store(-1); }

MatmulThresholds matmul_thresholds() {
  const MatmulThresholds defaults = default_thresholds(active_kernel_isa());
  const int64_t q = g_quantized_min_T.load(std::memory_order_relaxed), h = g_half_min_T.load(std::memory_order_relaxed);
  return {q > 0 ? q : defaults.quantized_min_T, h > 0 ? h : defaults.half_min_T};
}

void set_matmul_thresholds(MatmulThresholds t) {
  g_quantized_min_T.store(std::max<int64_t>(1, t.quantized_min_T));
  g_half_min_T.store(std::max<int64_t>(1, t.half_min_T));
}

void reset_matmul_thresholds() {
  g_quantized_min_T.store(0);
  g_half_min_T.store(0);
}

}  // namespace troupe
