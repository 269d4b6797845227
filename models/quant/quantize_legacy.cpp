// The 32-value legacy blocks with a minimum or a fifth bit: Q4_1, Q5_0, Q5_1 (llama.cpp's
// quantize_row_q4_1_ref / q5_0_ref / q5_1_ref: one scale from the block's range, no search).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "models/quant/quant_formats.h"
#include "models/quant/quantizers.h"

namespace troupe {
namespace {

void put_fp16(uint8_t* p, float f) {
  const uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, 2);
}

// Q4_1 and Q5_1 share everything but the number of levels: d = (max - min) / levels,
// q = round((x - min) / d); block = d, m (fp16), [qh (4 bytes, 5-bit only)], 16 nibble bytes.
template <int Bits>
void quantize_with_min(const float* x, uint8_t* y, int64_t n) {
  constexpr int levels = (1 << Bits) - 1;
  constexpr size_t block_bytes = Bits == 4 ? 20 : 24;
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += block_bytes) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / levels, id = d ? 1.0f / d : 0.0f;
    put_fp16(y, d);
    put_fp16(y + 2, min);
    uint8_t* qs = y + (Bits == 4 ? 4 : 8);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const float x0 = (x[j] - min) * id, x1 = (x[j + 16] - min) * id;
      int q0 = static_cast<int>(x0 + 0.5f), q1 = static_cast<int>(x1 + 0.5f);
      if (Bits == 4) {
        q0 = std::min(15, q0);
        q1 = std::min(15, q1);
      } else {
        qh |= static_cast<uint32_t>((q0 & 0x10) >> 4) << j;
        qh |= static_cast<uint32_t>((q1 & 0x10) >> 4) << (j + 16);
      }
      qs[j] = static_cast<uint8_t>((q0 & 0x0f) | ((q1 & 0x0f) << 4));
    }
    if (Bits == 5) std::memcpy(y + 4, &qh, 4);
  }
}

}  // namespace

void quantize_row_q4_1(const float* x, void* dst, int64_t n) { quantize_with_min<4>(x, static_cast<uint8_t*>(dst), n); }
void quantize_row_q5_1(const float* x, void* dst, int64_t n) { quantize_with_min<5>(x, static_cast<uint8_t*>(dst), n); }

// Q5_0: d = (value of largest magnitude) / -16, q = clamp(x/d + 16.5, 0, 31);
// block = d (fp16), qh (bit 4 of value j at bit j), 16 bytes of low nibbles (x[j] | x[j+16] << 4).
void quantize_row_q5_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 22) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -16, id = d ? 1.0f / d : 0.0f;
    put_fp16(y, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(31, static_cast<int>(x[j] * id + 16.5f));
      const int q1 = std::min(31, static_cast<int>(x[j + 16] * id + 16.5f));
      y[6 + j] = static_cast<uint8_t>((q0 & 0x0f) | ((q1 & 0x0f) << 4));
      qh |= static_cast<uint32_t>((q0 & 0x10) >> 4) << j;
      qh |= static_cast<uint32_t>((q1 & 0x10) >> 4) << (j + 16);
    }
    std::memcpy(y + 2, &qh, 4);
  }
}

}  // namespace troupe
