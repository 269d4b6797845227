#pragma once
// The per-instruction-set kernels behind quant_matmul.h (internal to the model library).
// Each set (kernels_portable.cpp, kernels_avx2.cpp, kernels_avx512.cpp) fills one table;
// quant_matmul.cpp picks a table at run time, quantizes the activations, splits the output
// rows over threads and calls the table. Torch-free.
#include <cstdint>

#include "models/quant/quant_matmul.h"

namespace troupe::kernels {

// Activation rows rounded to Q8_0, unpacked for the kernels. Row t's values are
// q[t * blocks * 32 ...] (32-byte aligned), block b's scale d[t * blocks + b] (the fp16 value
// the scale rounds to, widened).
struct Q8Rows {
  int64_t n = 0;       // rows (T)
  int64_t blocks = 0;  // blocks per row (cols / 32)
  const int8_t* q = nullptr;
  const float* d = nullptr;

  const int8_t* row_q(int64_t t) const { return q + t * blocks * 32; }
  const float* row_d(int64_t t) const { return d + t * blocks; }
};

struct KernelTable {
  // One activation row of `cols` (a multiple of 32) floats to Q8_0, bit-identical to
  // quantize(DType::Q8_0, ...) of quant_formats.h: d = max|x| / 127, q = round-half-away(x / d).
  void (*quantize_row_q8)(const float* x, int64_t cols, int8_t* q, float* d);

  // y[t * ldy + r] = dot(row r of w, activation row t) (+ bias[r]) for r in [r0, r1), t in [0, x.n).
  void (*gemm_q8_0)(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
                    int64_t ldy);
  void (*gemm_q4_0)(const PackedMatrix& w, int64_t r0, int64_t r1, const Q8Rows& x, const float* bias, float* y,
                    int64_t ldy);
  // The same for F16 / BF16 weights and fp32 activations x[T, w.cols] (any cols).
  void (*gemm_f16)(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, const float* bias, float* y,
                   int64_t ldy);
  void (*gemm_bf16)(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T, const float* bias,
                    float* y, int64_t ldy);

  // Rows [r0, r1) of w to fp32, row-major into out (for tiles and embedding lookups).
  void (*dequantize_rows)(const PackedMatrix& w, int64_t r0, int64_t r1, float* out);
};

const KernelTable& portable_kernels();
const KernelTable& avx2_kernels();        // call only when the CPU has AVX2, FMA and F16C
const KernelTable& avx512vnni_kernels();  // call only when the CPU has AVX512F/BW/VL and VNNI

}  // namespace troupe::kernels
