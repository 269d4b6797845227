#pragma once
// One table of what troupe knows about each tensor type: name, block size and bytes, the
// conversions to and from fp32, the activation format its dot product wants and its matrix
// kernel per instruction set. Every other place (loading, byte counts, the matrix product,
// `synth`, `plan`) asks this table; adding a type means a row here and its kernel file.
// Torch-free.
#include <cstddef>
#include <cstdint>
#include <string>

#include "models/quant/dtype.h"
#include "models/quant/quant_matmul.h"

namespace troupe {

namespace kernels {
struct Q8Rows;
}

// How the activation rows are rounded before a direct kernel multiplies them with the weights
// (as llama.cpp rounds them for that weight type): blocks of 32 int8 with an fp16 scale (Q8_0),
// the same plus the fp16 of scale * sum (Q8_1), blocks of 256 int8 with an fp32 scale and sums
// per 16 (Q8_K); fp32 as they are (F16 / BF16 weights); none: no direct kernel (fp32 tiles + BLAS).
enum class ActivationFormat { none, f32, q8_0, q8_1, q8_k };

// y[t * ldy + r] = dot(row r of w, activation row t) (+ bias[r]) for r in [r0, r1), t < rows.
using QuantGemm = void (*)(const PackedMatrix& w, int64_t r0, int64_t r1, const kernels::Q8Rows& x,
                           const float* bias, float* y, int64_t ldy);
using FloatGemm = void (*)(const PackedMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t T,
                           const float* bias, float* y, int64_t ldy);

constexpr int kIsaCount = 3;  // KernelIsa::portable, avx2, avx512vnni

// What a batch kernel wants prepared once per call from the rounded activation rows (kept in
// Q8Rows::panel), so that it is not redone for every tile of weight rows. prepare_row writes row
// t's part of the panel that starts at `out`, in the kernel's own layout: rows in groups of
// `row_group` (the panel is allocated for T rounded up to it), bytes_per_block per block and row.
struct BatchPanel {
  int64_t bytes_per_block = 0;  // 0: no panel
  int64_t row_group = 1;
  int64_t min_T = 2;  // below, the kernel runs without the panel
  void (*prepare_row)(const kernels::Q8Rows& x, int64_t t, uint8_t* out) = nullptr;
};

struct TypeTraits {
  DType type;
  const char* name;
  int64_t block_elems;
  size_t block_bytes;
  ActivationFormat activations;
  // n elements (a multiple of block_elems) to fp32; nullptr where the type holds no numbers (I32).
  void (*dequantize_row)(const uint8_t* src, float* dst, int64_t n);
  // fp32 to the type, as llama.cpp's reference quantizer; nullptr where troupe has none yet.
  void (*quantize_row)(const float* x, void* dst, int64_t n);
  // Kernels indexed by KernelIsa; nullptr: use the next lower instruction set's.
  QuantGemm gemm_q[kIsaCount];
  FloatGemm gemm_f[kIsaCount];
  // The panel the batch kernel of gemm_q[isa] reads when T > 1.
  BatchPanel panel[kIsaCount] = {};
};

// nullptr for a type troupe does not know (the caller names the tensor and the type).
const TypeTraits* find_type_traits(uint32_t ggml_type);
// Throws std::invalid_argument naming the type when troupe does not know it.
const TypeTraits& type_traits(DType t);
// "F32, F16, BF16, Q8_0, ..." for error messages.
std::string supported_type_names();
// The lowercase names (`q4_k`) to a type, for command lines; throws naming the choices.
DType parse_type_name(const std::string& name);

}  // namespace troupe
