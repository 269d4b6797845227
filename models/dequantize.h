#pragma once
// Expands checkpoint element types to fp32. Torch-free, used by the loaders and by
// the quantized kernels' reference path.
#include <cstdint>

#include "models/dtype.h"

namespace troupe {

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

// Converts n elements (a multiple of the type's block size) starting at `src`.
void dequantize(DType type, const uint8_t* src, float* dst, int64_t n);

}  // namespace troupe
