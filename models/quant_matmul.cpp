#include "models/quant_matmul.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/quant_kernels.h"

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

// Measured with tools/bench_kernels on a Zen 4 (AVX2 and AVX512-VNNI paths, 1-2 threads):
// see the comments at the defaults in matmul_thresholds().
std::atomic<int64_t> g_quantized_min_T{32};
std::atomic<int64_t> g_half_min_T{8};

// A task should carry enough work to pay for waking a thread (a few microseconds): about
// 256 KiB of weight bytes, counting the arithmetic of T activation rows too.
constexpr int64_t kMinTaskWork = 256 * 1024;
constexpr int64_t kRowGroup = 4;  // output rows handed out together (the kernels' tile height)

int64_t grain_in_groups(const PackedMatrix& w, int64_t T) {
  const int64_t row_work = static_cast<int64_t>(w.row_bytes()) + T * w.cols / 2;
  const int64_t rows = (kMinTaskWork + row_work - 1) / row_work;
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
  auto* q = thread_scratch<int8_t>(t_activations, static_cast<size_t>(T * cols + T * blocks * 8));
  auto* d = reinterpret_cast<float*>(q + T * cols);  // cols is a multiple of 32: stays aligned
  auto* sum = reinterpret_cast<int32_t*>(d + T * blocks);
  at::parallel_for(0, T, std::max<int64_t>(1, 16384 / cols), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) k.quantize_row_q8(x + t * cols, cols, q + t * cols, d + t * blocks, sum + t * blocks);
  });
  const kernels::Q8Rows rows{T, blocks, q, d, sum};
  const auto gemm = w.dtype == DType::Q8_0 ? k.gemm_q8_0 : k.gemm_q4_0;
  const int64_t groups = (w.rows + kRowGroup - 1) / kRowGroup;
  at::parallel_for(0, groups, grain_in_groups(w, T), [&](int64_t g0, int64_t g1) {
    gemm(w, g0 * kRowGroup, std::min(w.rows, g1 * kRowGroup), rows, bias, y, w.rows);
  });
}

void direct_half(const kernels::KernelTable& k, const PackedMatrix& w, const float* x, int64_t T, const float* bias,
                 float* y) {
  const auto gemm = w.dtype == DType::F16 ? k.gemm_f16 : k.gemm_bf16;
  const int64_t groups = (w.rows + kRowGroup - 1) / kRowGroup;
  at::parallel_for(0, groups, grain_in_groups(w, T), [&](int64_t g0, int64_t g1) {
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
  at::parallel_for(0, n_tiles, 1, [&](int64_t i0, int64_t i1) {
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
  switch (w.dtype) {
    case DType::Q8_0:
    case DType::Q4_0:
      if (T >= g_quantized_min_T.load(std::memory_order_relaxed)) return tiled_fp32(k, w, x, T, bias, y);
      return direct_quantized(k, w, x, T, bias, y);
    case DType::F16:
    case DType::BF16:
      if (T >= g_half_min_T.load(std::memory_order_relaxed)) return tiled_fp32(k, w, x, T, bias, y);
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

MatmulThresholds matmul_thresholds() { return {g_quantized_min_T.load(), g_half_min_T.load()}; }

void set_matmul_thresholds(MatmulThresholds t) {
  g_quantized_min_T.store(std::max<int64_t>(1, t.quantized_min_T));
  g_half_min_T.store(std::max<int64_t>(1, t.half_min_T));
}

}  // namespace troupe
