#include "models/quant/quant_matmul.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/quant/quant_kernels.h"

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

// ---- threads --------------------------------------------------------------------------------

// f(begin, end) over chunks of [0, n), as at::parallel_for splits it, on LibTorch's intra-op
// threads. at::parallel_for is a header template whose OpenMP pragmas only take effect in code
// compiled with -fopenmp; without it (troupe's build today) it silently runs on one thread. Then
// the split goes through ATen's own compiled loop, TensorIterator::for_each, over a byte per
// index: each task's data pointer minus the base is its first index.
void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
#ifdef _OPENMP
  at::parallel_for(0, n, grain, f);
#else
  if (n <= grain || at::get_num_threads() <= 1 || at::in_parallel_region()) return f(0, n);
  const at::Tensor index = at::empty({n}, at::kByte);
  const char* base = static_cast<const char*>(index.data_ptr());
  at::TensorIteratorConfig().add_input(index).check_all_same_dtype(false).build().for_each(
      [&](char** data, const int64_t* strides, int64_t size0, int64_t size1) {
        for (int64_t j = 0; j < size1; ++j) {  // one-dimensional: size1 is 1
          const int64_t begin = data[0] + j * strides[1] - base;
          f(begin, begin + size0);
        }
      },
      grain);
#endif
}

// ---- thresholds and work split --------------------------------------------------------------

// From which batch size the fp32-tile + BLAS path beats the direct kernels, per instruction
// set, measured with tools/bench_kernels (W 5632 x 2048, 2 threads, Zen 4; GFLOP/s direct vs
// tiles): AVX2 Q8_0 147 vs 162 and Q4_0 138 vs 161 at T = 256 (direct ahead up to 128);
// AVX512-VNNI Q8_0 190 vs 170 and Q4_0 193 vs 169 still at T = 512; F16 / BF16 136 vs 143 at
// T = 128 (direct ahead up to 64). The portable direct kernels are scalar: BLAS from T = 2.
MatmulThresholds default_thresholds(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::avx512vnni: return {1024, 128};
    case KernelIsa::avx2: return {256, 128};
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

int64_t grain_in_groups(const PackedMatrix& w, int64_t T) {
  const double row_ns = static_cast<double>(w.row_bytes()) / 20 + static_cast<double>(T * w.cols) / 40;
  const auto rows = static_cast<int64_t>(kMinTaskNs / row_ns) + 1;
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
thread_local std::vector<uint8_t> t_activations, t_tile, t_tile_out;

// ---- the two paths --------------------------------------------------------------------------

void direct_quantized(const kernels::KernelTable& k, const PackedMatrix& w, const float* x, int64_t T,
                      const float* bias, float* y) {
  const int64_t cols = w.cols, blocks = cols / 32;
  auto* q = thread_scratch<int8_t>(t_activations, static_cast<size_t>(T * cols + T * blocks * 4));
  auto* d = reinterpret_cast<float*>(q + T * cols);  // cols is a multiple of 32: stays aligned
  parallel_range(T, std::max<int64_t>(1, 65536 / cols), [&](int64_t t0, int64_t t1) {  // ~30 us a task
    for (int64_t t = t0; t < t1; ++t) k.quantize_row_q8(x + t * cols, cols, q + t * cols, d + t * blocks);
  });
  const kernels::Q8Rows rows{T, blocks, q, d};
  const auto gemm = w.dtype == DType::Q8_0 ? k.gemm_q8_0 : k.gemm_q4_0;
  const int64_t groups = (w.rows + kRowGroup - 1) / kRowGroup;
  parallel_range(groups, grain_in_groups(w, T), [&](int64_t g0, int64_t g1) {
    gemm(w, g0 * kRowGroup, std::min(w.rows, g1 * kRowGroup), rows, bias, y, w.rows);
  });
}

void direct_half(const kernels::KernelTable& k, const PackedMatrix& w, const float* x, int64_t T, const float* bias,
                 float* y) {
  const auto gemm = w.dtype == DType::F16 ? k.gemm_f16 : k.gemm_bf16;
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
  parallel_range(n_tiles, 1, [&](int64_t i0, int64_t i1) {
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

void check_matrix(const PackedMatrix& w) {
  if (!w.data) throw std::invalid_argument("packed matrix without data");
  switch (w.dtype) {
    case DType::Q8_0:
    case DType::Q4_0:
      if (w.cols % 32 != 0)
        throw std::invalid_argument("a " + dtype_name(static_cast<uint32_t>(w.dtype)) + " matrix needs rows of a multiple of 32 elements, not " +
                                    std::to_string(w.cols));
      return;
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return;
    case DType::I32:
      break;
  }
  throw std::invalid_argument("no matrix product for " + dtype_name(static_cast<uint32_t>(w.dtype)) + " weights");
}

}  // namespace

void packed_matmul(const PackedMatrix& w, const float* x, int64_t T, const float* bias, float* y) {
  check_matrix(w);
  if (T <= 0 || w.rows == 0) return;
  if (w.cols == 0) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < w.rows; ++r) y[t * w.rows + r] = bias ? bias[r] : 0.0f;
    return;
  }
  const auto& k = kernel_table(active_kernel_isa());
  const MatmulThresholds min_T = matmul_thresholds();
  switch (w.dtype) {
    case DType::Q8_0:
    case DType::Q4_0:
      if (T >= min_T.quantized_min_T) return tiled_fp32(k, w, x, T, bias, y);
      return direct_quantized(k, w, x, T, bias, y);
    case DType::F16:
    case DType::BF16:
      if (T >= min_T.half_min_T) return tiled_fp32(k, w, x, T, bias, y);
      return direct_half(k, w, x, T, bias, y);
    default:
      return tiled_fp32(k, w, x, T, bias, y);
  }
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
