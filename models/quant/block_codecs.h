#pragma once
// Row conversions of each tensor type to and from fp32, the functions type_traits.cpp puts in
// its table (quant_formats.cpp: F32, F16, BF16, Q8_0, Q4_0; kernels_blocks_portable.cpp: the
// other block formats). n is a multiple of the type's block. Internal to the model library.
#include <cstdint>

namespace troupe {

void dequantize_row_f32(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_f16(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_bf16(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q8_0(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q4_0(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q4_1(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q5_0(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q5_1(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_iq4_nl(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q2_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q3_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q4_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q5_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q6_k(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_iq4_xs(const uint8_t* src, float* dst, int64_t n);

void quantize_row_f32(const float* x, void* dst, int64_t n);
void quantize_row_f16(const float* x, void* dst, int64_t n);
void quantize_row_bf16(const float* x, void* dst, int64_t n);
void quantize_row_q8_0(const float* x, void* dst, int64_t n);
void quantize_row_q4_0(const float* x, void* dst, int64_t n);

}  // namespace troupe
