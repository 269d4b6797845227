#pragma once
// Matrix products with weights kept in their checkpoint format (the block formats of
// type_traits.h, F16, BF16): no fp32 copy of a weight matrix is ever kept.
//
//   y[T, rows] = x[T, cols] · W[rows, cols]^T (+ bias)
//
// Block formats: as llama.cpp does it, the activation rows are first rounded to the Q8 format the
// weight type wants (Q8_0, Q8_1: blocks of 32 int8 with an fp16 scale; Q8_K: blocks of 256 with
// an fp32 scale), then each block pair is an exact integer dot product scaled by the two scales
// and summed in fp32. F16 / BF16: converted on the fly, fp32 accumulation.
// Above a batch size where that is faster (see matmul_thresholds), tiles of W are converted to
// fp32 and multiplied with BLAS instead; a tile is per task and transient.
// Kernels: AVX512-VNNI or AVX2 (+FMA, F16C) picked at run time, else portable C++
// (kernels_*.cpp). Output rows are split over LibTorch's intra-op threads (at::set_num_threads).
#include <cstddef>
#include <cstdint>

#include "models/quant/dtype.h"

namespace troupe {

// A row-major matrix in one of the checkpoint formats, not owned (it usually points into the
// mapped checkpoint file). `cols` must be a multiple of the type's block (32 or 256).
// The row size is worked out once here: the kernels ask for a row's address per tile, hundreds
// of thousands of times a token (a type-table look-up each was ~5% of decode).
struct PackedMatrix {
  PackedMatrix() = default;
  PackedMatrix(DType type, int64_t n_rows, int64_t n_cols, const uint8_t* bytes)
      : dtype(type), rows(n_rows), cols(n_cols), data(bytes), row_bytes_(dtype_row_bytes(type, n_cols)) {}

  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;

  size_t row_bytes() const { return row_bytes_; }
  size_t bytes() const { return static_cast<size_t>(rows) * row_bytes_; }
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes_; }

 private:
  size_t row_bytes_ = 0;
};

// y[T, w.rows] = x[T, w.cols] · w^T (+ bias[w.rows] when not null); all row-major, fp32.
void packed_matmul(const PackedMatrix& w, const float* x, int64_t T, const float* bias, float* y);

// Whether packed_matmul gives each of T activation rows the bits it would give that row alone
// (the direct kernels do; the fp32-tile + BLAS path, taken from a batch size on, may not).
bool packed_matmul_rows_independent(DType type, int64_t T);

// out[n, w.cols] = rows ids[0..n) of w, converted to fp32 (an embedding lookup). Throws
// std::out_of_range for an id outside [0, w.rows).
void packed_rows(const PackedMatrix& w, const int64_t* ids, int64_t n, float* out);

// The instruction set the kernels use. The best one the CPU supports is picked at first use;
// tests and benchmarks may force another (a forced ISA the CPU lacks is refused).
enum class KernelIsa { portable, avx2, avx512vnni };
const char* kernel_isa_name(KernelIsa isa);
bool kernel_isa_supported(KernelIsa isa);
KernelIsa best_kernel_isa();
KernelIsa active_kernel_isa();
void force_kernel_isa(KernelIsa isa);  // throws std::invalid_argument when unsupported
void reset_kernel_isa();               // back to best_kernel_isa()

// Batch sizes T from which the fp32-tile + BLAS path is used instead of the direct kernels.
// The defaults depend on the active instruction set; tests and benchmarks override them to
// exercise both paths.
struct MatmulThresholds {
  int64_t quantized_min_T;  // block formats
  int64_t half_min_T;       // F16 / BF16
};
MatmulThresholds matmul_thresholds();   // in effect now
void set_matmul_thresholds(MatmulThresholds t);
void reset_matmul_thresholds();         // back to the defaults

}  // namespace troupe
