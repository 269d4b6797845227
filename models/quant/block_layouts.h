#pragma once
// The byte layouts of the GGUF block formats beyond Q8_0 / Q4_0 (as ggml-common.h defines
// them), and one decoder per format into integers: the values q (int8) and integer scales of
// sub-blocks, with float super-block scales. x = d * scale[k] * q - dmin * min[k] for element
// i of sub-block k. The dequantizers and the portable kernels both use these decoders, so the
// two agree by construction; the SIMD kernels decode the same fields their own way.
// Internal to the model library. Torch-free.
#include <cstdint>
#include <cstring>

#include "models/quant/quant_formats.h"

namespace troupe::blocks {

inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// The 16 non-linear levels of IQ4_NL / IQ4_XS (kvalues_iq4nl).
inline constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// ---- 32-element blocks ----------------------------------------------------------------------
// Q4_1 (20 B): fp16 d, fp16 m, 16 B nibbles (low = x[0..15], high = x[16..31]); x = d*q + m
// Q5_0 (22 B): fp16 d, 4 B high bits (bit j of the uint32 = 5th bit of x[j]), 16 B nibbles; x = d*(q-16)
// Q5_1 (24 B): fp16 d, fp16 m, 4 B high bits, 16 B nibbles; x = d*q + m
// IQ4_NL (18 B): fp16 d, 16 B nibbles; x = d * kIq4Levels[q]
struct Block32 {
  int8_t q[32];
  float d = 0;
  float m = 0;  // Q4_1 / Q5_1: the offset added to every value
};

inline void nibbles32(const uint8_t* qs, int8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>(qs[j] & 0x0f);
    q[j + 16] = static_cast<int8_t>(qs[j] >> 4);
  }
}
inline void add_high_bits32(const uint8_t* qh_bytes, int8_t* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(q[j] | (((qh >> j) & 1) << 4));
}

inline void decode_q4_1(const uint8_t* b, Block32& o) {
  o.d = half_at(b);
  o.m = half_at(b + 2);
  nibbles32(b + 4, o.q);
}
inline void decode_q5_0(const uint8_t* b, Block32& o) {
  o.d = half_at(b);
  nibbles32(b + 6, o.q);
  add_high_bits32(b + 2, o.q);
  for (int j = 0; j < 32; ++j) o.q[j] = static_cast<int8_t>(o.q[j] - 16);
}
inline void decode_q5_1(const uint8_t* b, Block32& o) {
  o.d = half_at(b);
  o.m = half_at(b + 2);
  nibbles32(b + 8, o.q);
  add_high_bits32(b + 4, o.q);
}
inline void decode_iq4_nl(const uint8_t* b, Block32& o) {
  o.d = half_at(b);
  nibbles32(b + 2, o.q);
  for (int j = 0; j < 32; ++j) o.q[j] = kIq4Levels[o.q[j]];
}

// ---- 256-element super-blocks ---------------------------------------------------------------
// Sub-blocks of 16 (scale[k] for k < 16); formats with sub-blocks of 32 repeat each scale twice.
// Q2_K (84 B): 16 B scales (low 4 bits scale, high 4 bits min), 64 B of 2-bit q, fp16 d, fp16 dmin
// Q3_K (110 B): 32 B high-bit mask, 64 B of 2-bit q, 12 B of 6-bit scales (minus 32), fp16 d
// Q4_K (144 B): fp16 d, fp16 dmin, 12 B of 6-bit scales and mins (8 each), 128 B nibbles
// Q5_K (176 B): fp16 d, fp16 dmin, 12 B scales and mins, 32 B high bits, 128 B nibbles
// Q6_K (210 B): 128 B low nibbles, 64 B 2-bit highs, 16 x int8 scales, fp16 d; q - 32
// IQ4_XS (136 B): fp16 d, uint16 scale high bits, 4 B scale low nibbles, 128 B nibbles; scale - 32
struct BlockK {
  int8_t q[256];
  int32_t scale[16];
  int32_t min[16];  // zero for the formats without mins
  float d = 0;
  float dmin = 0;
  bool has_min = false;
};

// Scale and min j (< 8) of Q4_K / Q5_K's 12 bytes (get_scale_min_k4).
inline void scale_min_k4(int j, const uint8_t* s, int32_t& scale, int32_t& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

inline void decode_q2_k(const uint8_t* b, BlockK& o) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  o.d = half_at(b + 80);
  o.dmin = half_at(b + 82);
  o.has_min = true;
  for (int k = 0; k < 16; ++k) {
    o.scale[k] = scales[k] & 0x0f;
    o.min[k] = scales[k] >> 4;
  }
  int8_t* y = o.q;
  for (int n = 0; n < 2; ++n, qs += 32)  // each half: 4 shifts x 32 bytes
    for (int shift = 0; shift < 8; shift += 2)
      for (int l = 0; l < 32; ++l) *y++ = static_cast<int8_t>((qs[l] >> shift) & 3);
}

inline void decode_q3_k(const uint8_t* b, BlockK& o) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* s = b + 96;
  o.d = half_at(b + 108);
  o.has_min = false;
  for (int k = 0; k < 16; ++k) {  // 4 low bits from bytes 0-7, 2 high bits from bytes 8-11
    const int low = k < 8 ? (s[k] & 0x0f) : (s[k - 8] >> 4);
    const int high = (s[8 + (k % 4)] >> (2 * (k / 4))) & 3;
    o.scale[k] = (low | (high << 4)) - 32;
    o.min[k] = 0;
  }
  int8_t* y = o.q;
  int bit = 0;
  for (int n = 0; n < 2; ++n, qs += 32)
    for (int shift = 0; shift < 8; shift += 2, ++bit)
      for (int l = 0; l < 32; ++l)
        *y++ = static_cast<int8_t>(((qs[l] >> shift) & 3) - ((hmask[l] >> bit) & 1 ? 0 : 4));
}

inline void decode_q4_k(const uint8_t* b, BlockK& o) {
  o.d = half_at(b);
  o.dmin = half_at(b + 2);
  o.has_min = true;
  for (int j = 0; j < 8; ++j) {
    int32_t sc, m;
    scale_min_k4(j, b + 4, sc, m);
    o.scale[2 * j] = o.scale[2 * j + 1] = sc;
    o.min[2 * j] = o.min[2 * j + 1] = m;
  }
  const uint8_t* qs = b + 16;
  int8_t* y = o.q;
  for (int j = 0; j < 4; ++j, qs += 32, y += 64)
    for (int l = 0; l < 32; ++l) {
      y[l] = static_cast<int8_t>(qs[l] & 0x0f);
      y[l + 32] = static_cast<int8_t>(qs[l] >> 4);
    }
}

inline void decode_q5_k(const uint8_t* b, BlockK& o) {
  o.d = half_at(b);
  o.dmin = half_at(b + 2);
  o.has_min = true;
  for (int j = 0; j < 8; ++j) {
    int32_t sc, m;
    scale_min_k4(j, b + 4, sc, m);
    o.scale[2 * j] = o.scale[2 * j + 1] = sc;
    o.min[2 * j] = o.min[2 * j + 1] = m;
  }
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  int8_t* y = o.q;
  for (int j = 0; j < 4; ++j, qs += 32, y += 64)
    for (int l = 0; l < 32; ++l) {
      y[l] = static_cast<int8_t>((qs[l] & 0x0f) | (((qh[l] >> (2 * j)) & 1) << 4));
      y[l + 32] = static_cast<int8_t>((qs[l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4));
    }
}

inline void decode_q6_k(const uint8_t* b, BlockK& o) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  o.d = half_at(b + 208);
  o.has_min = false;
  for (int k = 0; k < 16; ++k) {
    o.scale[k] = sc[k];
    o.min[k] = 0;
  }
  int8_t* y = o.q;
  for (int n = 0; n < 2; ++n, ql += 64, qh += 32, y += 128)
    for (int l = 0; l < 32; ++l) {
      y[l] = static_cast<int8_t>(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
      y[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
      y[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      y[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
}

inline void decode_iq4_xs(const uint8_t* b, BlockK& o) {
  o.d = half_at(b);
  uint16_t scales_h;
  std::memcpy(&scales_h, b + 2, 2);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  o.has_min = false;
  for (int ib = 0; ib < 8; ++ib, qs += 16) {
    const int ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | (((scales_h >> (2 * ib)) & 3) << 4);
    o.scale[2 * ib] = o.scale[2 * ib + 1] = ls - 32;
    o.min[2 * ib] = o.min[2 * ib + 1] = 0;
    for (int j = 0; j < 16; ++j) {
      o.q[32 * ib + j] = kIq4Levels[qs[j] & 0x0f];
      o.q[32 * ib + j + 16] = kIq4Levels[qs[j] >> 4];
    }
  }
}

}  // namespace troupe::blocks
