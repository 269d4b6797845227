// The K-quants: 256-value super-blocks of 16 or 32-value sub-blocks whose scales are
// themselves quantized. Follows llama.cpp's reference quantizers (quantize_row_q{2..6}_K_ref,
// with make_qkx2_quants / make_qx_quants / make_q3_quants), step for step, so files written
// here match files written by `llama-quantize` without an importance matrix.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/quant/quant_formats.h"
#include "models/quant/quantizers.h"

namespace troupe {
namespace {

constexpr int QK = 256;
constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest as ggml does (ties to even through the float adder), for |f| < 2^22.
inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  int i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

inline void put_fp16(uint8_t* p, float f) {
  const uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, 2);
}
inline float fp16_round(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// Scale and minimum for n values with nmax+1 levels: L = round((x - min) / scale), searched
// over nstep+1 candidate scales, each refined by a weighted least-squares fit of scale and min.
// Returns the scale; *the_min receives -min (>= 0).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Symmetric scale for n values in [-nmax, nmax-1] (stored as L + nmax), weights x^2
// (rmse_type 1), trying 18 scales around nmax / max|x|.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's sub-block scale: start from nmax / max|x|, then move single values to the level that
// most improves the x^2-weighted fit (up to 5 passes). L in [0, 2*nmax).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::max(-nmax, std::min(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// The 6-bit scale and min of sub-block j in the 12 packed bytes of Q4_K/Q5_K.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// Q4_K and Q5_K: 8 sub-blocks of 32 with a 6-bit scale and a 6-bit min each.
// Block: d, dmin (fp16), scales[12], [qh[32] for Q5_K], qs[128].
template <int Bits>
void quantize_q45_k(const float* x, uint8_t* y, int64_t n) {
  constexpr int nmax = (1 << Bits) - 1;
  constexpr size_t block_bytes = Bits == 4 ? 144 : 176;
  constexpr float rmin = Bits == 4 ? -1.f : -0.5f;
  constexpr int nstep = Bits == 4 ? 20 : 15;
  uint8_t L[QK], Laux[32];
  float weights[32], mins[QK / 32], scales[QK / 32];
  for (int64_t i = 0; i < n / QK; ++i, x += QK, y += block_bytes) {
    uint8_t* sc = y + 4;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK / 32; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
      scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK / 32; ++j) {
      uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
      uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
      ls = std::min<uint8_t>(63, ls);
      lm = std::min<uint8_t>(63, lm);
      if (j < 4) {
        sc[j] = ls;
        sc[j + 4] = lm;
      } else {
        sc[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        sc[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
        sc[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
      }
    }
    put_fp16(y, max_scale / 63.f);
    put_fp16(y + 2, max_min / 63.f);
    const float d_all = fp16_round(y), dmin_all = fp16_round(y + 2);
    for (int j = 0; j < QK / 32; ++j) {
      uint8_t s, m;
      get_scale_min_k4(j, sc, &s, &m);
      const float d = d_all * s;
      if (!d) continue;
      const float dm = dmin_all * m;
      for (int ii = 0; ii < 32; ++ii) {
        const int l = nearest_int((x[32 * j + ii] + dm) / d);
        L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
      }
    }
    if (Bits == 4) {
      uint8_t* q = y + 16;
      for (int j = 0; j < QK; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    } else {
      uint8_t* qh = y + 16;
      uint8_t* ql = y + 48;
      std::memset(qh, 0, QK / 8);
      uint8_t m1 = 1, m2 = 2;
      for (int j0 = 0; j0 < QK; j0 += 64, ql += 32) {
        for (int j = 0; j < 32; ++j) {
          int l1 = L[j0 + j];
          if (l1 > 15) {
            l1 -= 16;
            qh[j] |= m1;
          }
          int l2 = L[j0 + j + 32];
          if (l2 > 15) {
            l2 -= 16;
            qh[j] |= m2;
          }
          ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
        }
        m1 = static_cast<uint8_t>(m1 << 2);
        m2 = static_cast<uint8_t>(m2 << 2);
      }
    }
  }
}

// Packs 256 2-bit values as Q2_K/Q3_K do: byte l of each 32-byte group holds values
// l, l+32, l+64, l+96 of its 128.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < QK; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] =
          static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

}  // namespace

void quantize_row_q4_k(const float* x, void* dst, int64_t n) { quantize_q45_k<4>(x, static_cast<uint8_t*>(dst), n); }
void quantize_row_q5_k(const float* x, void* dst, int64_t n) { quantize_q45_k<5>(x, static_cast<uint8_t*>(dst), n); }

// Q2_K: 16 sub-blocks of 16 with a 4-bit scale and 4-bit min each (packed in scales[16]);
// block = scales[16], qs[64], d, dmin (fp16). 84 bytes.
void quantize_row_q2_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint8_t*>(dst);
  uint8_t L[QK], Laux[16];
  float weights[16], mins[QK / 16], scales[QK / 16];
  const float q4scale = 15.f;
  for (int64_t i = 0; i < n / QK; ++i, x += QK, y += 84) {
    uint8_t* sc = y;
    uint8_t* qs = y + 16;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < QK / 16; ++j) sc[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      put_fp16(y + 80, max_scale / q4scale);
    } else {
      for (int j = 0; j < QK / 16; ++j) sc[j] = 0;
      put_fp16(y + 80, 0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < QK / 16; ++j) sc[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
      put_fp16(y + 82, max_min / q4scale);
    } else {
      put_fp16(y + 82, 0.f);
    }
    const float d_all = fp16_round(y + 80), dmin_all = fp16_round(y + 82);
    for (int j = 0; j < QK / 16; ++j) {
      const float d = d_all * (sc[j] & 0xF);
      if (!d) continue;
      const float dm = dmin_all * (sc[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(3, l)));
      }
    }
    pack_2bit(L, qs);
  }
}

// Q3_K: 16 sub-blocks of 16 with signed 6-bit scales; values in [-4, 3] as 2 low bits (qs)
// plus a high bit (hmask). Block = hmask[32], qs[64], scales[12], d (fp16). 110 bytes.
void quantize_row_q3_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint8_t*>(dst);
  int8_t L[QK];
  float scales[QK / 16];
  for (int64_t i = 0; i < n / QK; ++i, x += QK, y += 110) {
    uint8_t* hmask = y;
    uint8_t* qs = y + 32;
    uint8_t* sc = y + 96;
    float max_scale = 0, amax = 0;
    for (int j = 0; j < QK / 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    std::memset(sc, 0, 12);
    if (max_scale) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < QK / 16; ++j) {
        int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        l = static_cast<int8_t>(std::max<int>(-32, std::min<int>(31, l)) + 32);
        if (j < 8)
          sc[j] = l & 0xF;
        else
          sc[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        l = static_cast<int8_t>(l >> 4);
        sc[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
      }
      put_fp16(y + 108, 1 / iscale);
    } else {
      put_fp16(y + 108, 0.f);
    }
    const float d_all = fp16_round(y + 108);
    for (int j = 0; j < QK / 16; ++j) {
      int s = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
      s = (s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
      const float d = d_all * static_cast<int8_t>(s);
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(std::max(-4, std::min(3, l)) + 4);
      }
    }
    std::memset(hmask, 0, QK / 8);
    int m = 0;
    uint8_t hm = 1;
    uint8_t Lu[QK];
    for (int j = 0; j < QK; ++j) {
      int l = L[j];
      if (l > 3) {
        hmask[m] |= hm;
        l -= 4;
      }
      Lu[j] = static_cast<uint8_t>(l);
      if (++m == QK / 8) {
        m = 0;
        hm = static_cast<uint8_t>(hm << 1);
      }
    }
    pack_2bit(Lu, qs);
  }
}

// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; values in [-32, 31] as 4 low bits (ql)
// and 2 high bits (qh). Block = ql[128], qh[64], scales[16] (int8), d (fp16). 210 bytes.
void quantize_row_q6_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint8_t*>(dst);
  int8_t L[QK];
  float scales[QK / 16];
  for (int64_t i = 0; i < n / QK; ++i, x += QK, y += 210) {
    auto* sc = reinterpret_cast<int8_t*>(y + 192);
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK / 16; ++ib) {
      const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(y, 0, 210);
      continue;
    }
    const float iscale = -128.f / max_scale;
    put_fp16(y + 208, 1 / iscale);
    for (int ib = 0; ib < QK / 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
    const float d_all = fp16_round(y + 208);
    for (int j = 0; j < QK / 16; ++j) {
      const float d = d_all * sc[j];
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(std::max(-32, std::min(31, l)) + 32);
      }
    }
    uint8_t* ql = y;
    uint8_t* qh = y + 128;
    for (int j = 0; j < QK; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                     ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace troupe
