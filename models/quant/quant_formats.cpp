#include "models/quant/quant_formats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "models/quant/block_codecs.h"
#include "models/quant/type_traits.h"

namespace troupe {

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (((x >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));  // inf/nan
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);                                          // overflow
  if (exp <= 0) {                                                                                       // subnormal
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;  // round to nearest even
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;  // may carry into the exponent: still correct
  return static_cast<uint16_t>(half);
}

void dequantize_row_f32(const uint8_t* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * 4);
}

void dequantize_row_f16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = fp16_to_fp32(h);
  }
}

void dequantize_row_bf16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = bf16_to_fp32(h);
  }
}

// Per block: fp16 scale d, 32 x int8 q; x = d * q.
void dequantize_row_q8_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += 34, dst += 32) {
    uint16_t d16;
    std::memcpy(&d16, src, 2);
    const float d = fp16_to_fp32(d16);
    const auto* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < 32; ++j) dst[j] = d * static_cast<float>(q[j]);
  }
}

// Per block: fp16 scale d, 16 bytes; low nibbles are x[0..15], high x[16..31]; x = d * (q - 8).
void dequantize_row_q4_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += 18, dst += 32) {
    uint16_t d16;
    std::memcpy(&d16, src, 2);
    const float d = fp16_to_fp32(d16);
    const uint8_t* q = src + 2;
    for (int j = 0; j < 16; ++j) {
      dst[j] = d * static_cast<float>((q[j] & 0x0f) - 8);
      dst[j + 16] = d * static_cast<float>((q[j] >> 4) - 8);
    }
  }
}

void quantize_row_f32(const float* src, void* out, int64_t n) { std::memcpy(out, src, static_cast<size_t>(n) * 4); }

void quantize_row_f16(const float* src, void* out, int64_t n) {
  auto* dst = static_cast<uint8_t*>(out);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = fp32_to_fp16(src[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

void quantize_row_bf16(const float* src, void* out, int64_t n) {
  auto* dst = static_cast<uint8_t*>(out);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &src[i], 4);
    const uint16_t h = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1)) >> 16);  // round to nearest even
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

// d = max|x| / 127, q = round(x / d).
void quantize_row_q8_0(const float* src, void* out, int64_t n) {
  auto* dst = static_cast<uint8_t*>(out);
  for (int64_t b = 0; b < n / 32; ++b, src += 32, dst += 34) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    const uint16_t d16 = fp32_to_fp16(d);
    std::memcpy(dst, &d16, 2);
    for (int j = 0; j < 32; ++j) dst[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(src[j] * id)));
  }
}

// d = (value of largest magnitude) / -8, q = clamp(x/d + 8.5, 0, 15).
void quantize_row_q4_0(const float* src, void* out, int64_t n) {
  auto* dst = static_cast<uint8_t*>(out);
  for (int64_t b = 0; b < n / 32; ++b, src += 32, dst += 18) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(src[j]) > amax) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    const float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
    const uint16_t d16 = fp32_to_fp16(d);
    std::memcpy(dst, &d16, 2);
    for (int j = 0; j < 16; ++j) {
      const auto lo = static_cast<uint8_t>(std::min(15, static_cast<int>(src[j] * id + 8.5f)));
      const auto hi = static_cast<uint8_t>(std::min(15, static_cast<int>(src[j + 16] * id + 8.5f)));
      dst[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void dequantize(DType type, const uint8_t* src, float* dst, int64_t n) {
  const TypeTraits& traits = type_traits(type);
  if (!traits.dequantize_row) throw std::invalid_argument(std::string("cannot convert ") + traits.name + " to fp32");
  traits.dequantize_row(src, dst, n);
}

void quantize(DType type, const float* src, uint8_t* dst, int64_t n) {
  const TypeTraits& traits = type_traits(type);
  if (!traits.quantize_row) throw std::invalid_argument(std::string("troupe cannot quantize to ") + traits.name + " yet");
  traits.quantize_row(src, dst, n);
}

}  // namespace troupe
