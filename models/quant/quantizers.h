#pragma once
// Reference quantizers for the GGUF block formats: fp32 rows in, llama.cpp's block layouts
// out, following llama.cpp's reference algorithms (the ones `llama-quantize` uses when it has
// no importance matrix) so that the same input gives the same blocks. `n` is the number of
// values, a multiple of the type's block size. Torch-free.
//   32-value blocks:  Q4_1 (d, m, 16 nibbles), Q5_0 (d, 32 high bits, 16 nibbles),
//                     Q5_1 (d, m, 32 high bits, 16 nibbles), IQ4_NL (d, 16 nibbles into a
//                     non-linear table)
//   256-value super-blocks: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS
#include <cstddef>
#include <cstdint>
#include <string>

namespace troupe {

void quantize_row_q4_1(const float* x, void* dst, int64_t n);
void quantize_row_q5_0(const float* x, void* dst, int64_t n);
void quantize_row_q5_1(const float* x, void* dst, int64_t n);
void quantize_row_q2_k(const float* x, void* dst, int64_t n);
void quantize_row_q3_k(const float* x, void* dst, int64_t n);
void quantize_row_q4_k(const float* x, void* dst, int64_t n);
void quantize_row_q5_k(const float* x, void* dst, int64_t n);
void quantize_row_q6_k(const float* x, void* dst, int64_t n);
void quantize_row_iq4_nl(const float* x, void* dst, int64_t n);
void quantize_row_iq4_xs(const float* x, void* dst, int64_t n);

// GGUF type numbers (ggml_type) of the block formats above, as plain integers for code that
// reads them from files. Block sizes, bytes and the quantizer of each type are in the one type
// table (models/quant/type_traits.h).
namespace ggml_type {
constexpr uint32_t F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q2_K = 10, Q3_K = 11,
                   Q4_K = 12, Q5_K = 13, Q6_K = 14, IQ4_NL = 20, IQ4_XS = 23, BF16 = 30;
}

// The non-linear 4-bit values of IQ4_NL and IQ4_XS (llama.cpp's kvalues_iq4nl).
extern const int8_t kIq4nlValues[16];

}  // namespace troupe
