#pragma once
// The block formats of checkpoint tensors and their conversion to and from fp32.
// Torch-free; the loaders, `troupe synth` and the quantized kernels' reference path use it.
//   Q8_0 block: fp16 scale d, 32 x int8 q            -> x = d * q
//   Q4_0 block: fp16 scale d, 16 bytes of nibbles     -> x[j] = d * (lo(q[j]) - 8), x[j+16] = d * (hi(q[j]) - 8)
#include <cstdint>

#include "models/quant/dtype.h"

namespace troupe {

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

// Converts n elements (a multiple of the type's block size) starting at `src`, for every type of
// type_traits.h that holds numbers.
void dequantize(DType type, const uint8_t* src, float* dst, int64_t n);

// The inverse, as llama.cpp's reference quantizers do it, for the types that have a quantizer
// in type_traits.h (throws naming the type otherwise).
void quantize(DType type, const float* src, uint8_t* dst, int64_t n);

}  // namespace troupe
