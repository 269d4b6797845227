#pragma once
// The per-instruction-set kernels behind quant_matmul.h (internal to the model library).
// Each set (kernels_portable.cpp, kernels_avx2.cpp, kernels_avx512.cpp and the block-format
// files kernels_blocks_{portable,avx2}.cpp) provides functions that type_traits.cpp puts in its
// table; quant_matmul.cpp picks one at run time, rounds the activations, splits the output
// rows over threads and calls it.
// Torch-free.
#include <cstdint>

#include "models/quant/quant_matmul.h"

namespace troupe::kernels {

// Activation rows rounded to a Q8 format, unpacked for the kernels. Row t's values are
// q[t * blocks * block_elems ...] (32-byte aligned), block b's scale d[t * blocks + b].
//   Q8_0 (block_elems 32): d is the fp16 value the scale rounds to, widened.
//   Q8_1 (32): as Q8_0, and s[t * blocks + b] = fp16(sum(q) * scale), widened.
//   Q8_K (256): d is fp32; bsums[(t * blocks + b) * 16 + k] = sum of q[16k .. 16k+15].
struct Q8Rows {
  int64_t n = 0;       // rows (T)
  int64_t blocks = 0;  // blocks per row
  const int8_t* q = nullptr;
  const float* d = nullptr;
  int64_t block_elems = 32;
  const float* s = nullptr;
  const int16_t* bsums = nullptr;
  // The weight type's batch panel (TypeTraits::panel) of all rows when it has one, else null;
  // panel_row_bytes of it per row, laid out as the kernel wants.
  const uint8_t* panel = nullptr;
  int64_t panel_row_bytes = 0;
  // d and s again, block-major ([blocks][n]): the scales of one block for 8 consecutive rows in
  // one load (the batch kernels that take 8 rows per pass; gathering them one by one into a
  // vector stalled on store forwarding).
  const float* d_by_block = nullptr;
  const float* s_by_block = nullptr;

  const int8_t* row_q(int64_t t) const { return q + t * blocks * block_elems; }
  const float* row_d(int64_t t) const { return d + t * blocks; }
  const float* row_s(int64_t t) const { return s + t * blocks; }
  const int16_t* row_bsums(int64_t t) const { return bsums + t * blocks * 16; }
  const float* block_d(int64_t b) const { return d_by_block + b * n; }
  const float* block_s(int64_t b) const { return s_by_block + b * n; }
};

struct KernelTable {
  // One activation row of `cols` (a multiple of 32) floats to Q8_0, bit-identical to
  // quantize(DType::Q8_0, ...) of quant_formats.h: d = max|x| / 127, q = round-half-away(x / d).
  void (*quantize_row_q8)(const float* x, int64_t cols, int8_t* q, float* d);
  // Rows [r0, r1) of w to fp32, row-major into out (for tiles and embedding lookups).
  void (*dequantize_rows)(const PackedMatrix& w, int64_t r0, int64_t r1, float* out);
  // One activation row to Q8_K, bit-identical to quantize_row_q8_k below (the reference).
  void (*quantize_row_q8_k)(const float* x, int64_t cols, int8_t* q, float* d, int16_t* bsums);
};

const KernelTable& portable_kernels();
const KernelTable& avx2_kernels();        // call only when the CPU has AVX2, FMA and F16C
const KernelTable& avx512vnni_kernels();  // call only when the CPU has AVX512F/BW/VL and VNNI

// Activation rounding for the Q8_1 and Q8_K formats (activations.cpp), as llama.cpp's
// quantize_row_q8_1_ref / quantize_row_q8_K_ref; the same on every instruction set.
void quantize_row_q8_1(const float* x, int64_t cols, int8_t* q, float* d, float* s);
void quantize_row_q8_k(const float* x, int64_t cols, int8_t* q, float* d, int16_t* bsums);

// x + y*z - u*v... with the products rounded before the sums, whatever -ffp-contract says, so
// that a SIMD kernel that does a block's float steps with this helper gives the portable bits.
inline float no_fma(float v) {
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+x"(v));
#endif
  return v;
}

// Kernels by instruction set and type, gathered into the table by type_traits.cpp.
namespace portable {
void gemm_q8_0(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q4_0(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q4_1(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q5_0(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q5_1(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_iq4_nl(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q2_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q3_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q4_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q5_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q6_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_iq4_xs(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_f16(const PackedMatrix&, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t);
void gemm_bf16(const PackedMatrix&, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t);
}  // namespace portable

namespace avx2 {
void quantize_row_q8_k(const float* x, int64_t cols, int8_t* q, float* d, int16_t* bsums);
void gemm_q8_0(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q4_0(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q4_1(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q5_0(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q5_1(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_iq4_nl(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q2_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q3_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q4_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q5_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q6_k(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_iq4_xs(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_f16(const PackedMatrix&, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t);
void gemm_bf16(const PackedMatrix&, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t);
void prepare_q4_0_panel_row(const Q8Rows& x, int64_t t, uint8_t* out);
void prepare_q8_0_panel_row(const Q8Rows& x, int64_t t, uint8_t* out);
}  // namespace avx2

namespace avx512vnni {
void gemm_q8_0(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
void gemm_q4_0(const PackedMatrix&, int64_t, int64_t, const Q8Rows&, const float*, float*, int64_t);
}  // namespace avx512vnni

}  // namespace troupe::kernels
