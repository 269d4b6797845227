// The non-linear 4-bit types: each nibble indexes kIq4nlValues, scaled per 32 values.
// IQ4_NL: one fp16 scale per 32-value block. IQ4_XS: 256-value super-blocks, one fp16 scale
// and a 6-bit sub-scale per 32 values. Follows llama.cpp's quantize_row_iq4_nl_impl without
// an importance matrix (weights x^2, 15 candidate scales per block).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/quant/quant_formats.h"
#include "models/quant/quantizers.h"

namespace troupe {

const int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

namespace {

constexpr float kGroupMaxEps = 1e-15f;
constexpr int kTries = 7;

inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  int i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Index of the table value nearest x (ties to the upper one); the table is sorted.
int best_index(float x) {
  const int8_t* val = kIq4nlValues;
  if (x <= val[0]) return 0;
  if (x >= val[15]) return 15;
  int ml = 0, mu = 15;
  while (mu - ml > 1) {
    const int mav = (ml + mu) / 2;
    if (x < val[mav])
      mu = mav;
    else
      ml = mav;
  }
  return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

// One super-block of `super` values in blocks of 32. Writes the fp16 scale to dh, nibbles to
// q4 (16 bytes per 32 values: value j low, value j+16 high), and for several blocks the
// 6-bit sub-scales to scales_h / scales_l.
void quantize_iq4_superblock(int super, const float* x, uint8_t* dh, uint8_t* q4, uint16_t* scales_h,
                             uint8_t* scales_l) {
  constexpr int block = 32;
  float scales[256 / block], weight[block];
  uint8_t L[256];
  std::memset(q4, 0, static_cast<size_t>(super / 2));
  std::memset(dh, 0, 2);
  const int nb = super / block;
  float max_scale = 0, amax_scale = 0;
  for (int ib = 0; ib < nb; ++ib) {
    const float* xb = x + ib * block;
    uint8_t* Lb = L + ib * block;
    for (int j = 0; j < block; ++j) weight[j] = xb[j] * xb[j];
    float amax = 0, max = 0;
    for (int j = 0; j < block; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        max = xb[j];
      }
    }
    if (amax < kGroupMaxEps) {
      scales[ib] = 0;
      for (int j = 0; j < block; ++j) Lb[j] = 0;
      continue;
    }
    float d = -max / kIq4nlValues[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < block; ++j) {
      const int l = best_index(id * xb[j]);
      Lb[j] = static_cast<uint8_t>(l);
      const float q = kIq4nlValues[l], w = weight[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    d = sumqx / sumq2;
    float best = d * sumqx;
    for (int itry = -kTries; itry <= kTries; ++itry) {
      id = (itry + kIq4nlValues[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < block; ++j) {
        const int l = best_index(id * xb[j]);
        const float q = kIq4nlValues[l], w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    const float abs_d = std::fabs(d);
    if (abs_d > amax_scale) {
      amax_scale = abs_d;
      max_scale = d;
    }
  }
  if (nb > 1) {
    *scales_h = 0;
    std::memset(scales_l, 0, static_cast<size_t>(nb / 2));
    const float d = -max_scale / 32;
    const uint16_t d16 = fp32_to_fp16(d);
    std::memcpy(dh, &d16, 2);
    const float id = d ? 1 / d : 0.f;
    for (int ib = 0; ib < nb; ++ib) {
      int l = nearest_int(id * scales[ib]);
      l = std::max(-32, std::min(31, l));
      const float dl = d * l, idl = dl ? 1 / dl : 0.f;
      for (int j = 0; j < block; ++j) L[ib * block + j] = static_cast<uint8_t>(best_index(idl * x[ib * block + j]));
      l += 32;
      const auto l_l = static_cast<uint8_t>(l & 0xf), l_h = static_cast<uint8_t>(l >> 4);
      if (ib % 2 == 0)
        scales_l[ib / 2] = l_l;
      else
        scales_l[ib / 2] |= static_cast<uint8_t>(l_l << 4);
      *scales_h = static_cast<uint16_t>(*scales_h | (l_h << 2 * (ib % 8)));
    }
  } else {
    const uint16_t d16 = fp32_to_fp16(scales[0]);
    std::memcpy(dh, &d16, 2);
    const float id = scales[0] ? 1 / scales[0] : 0;
    for (int j = 0; j < super; ++j) L[j] = static_cast<uint8_t>(best_index(id * x[j]));
  }
  for (int i = 0; i < super / 32; ++i)
    for (int j = 0; j < 16; ++j) q4[16 * i + j] = static_cast<uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

}  // namespace

// Block: d (fp16), qs[16]. 18 bytes per 32 values.
void quantize_row_iq4_nl(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint8_t*>(dst);
  uint16_t unused_h;
  uint8_t unused_l[4];
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 18) quantize_iq4_superblock(32, x, y, y + 2, &unused_h, unused_l);
}

// Block: d (fp16), scales_h (uint16: 2 high bits per sub-block), scales_l[4] (4 low bits per
// sub-block), qs[128]. 136 bytes per 256 values.
void quantize_row_iq4_xs(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / 256; ++b, x += 256, y += 136) {
    uint16_t scales_h = 0;
    quantize_iq4_superblock(256, x, y, y + 8, &scales_h, y + 4);
    std::memcpy(y + 2, &scales_h, 2);
  }
}

}  // namespace troupe
