// Activation rows rounded to Q8_1 and Q8_K, as llama.cpp's reference quantizers
// (quantize_row_q8_1_ref, quantize_row_q8_K_ref) round them. Plain C++, the reference: the
// AVX2 copy of the Q8_K rounding (kernels_blocks_avx2.cpp, 13x faster) gives the same bits, so
// the rounded activations are the same whatever kernel multiplies them.
#include <algorithm>
#include <cmath>

#include "models/quant/quant_formats.h"
#include "models/quant/quant_kernels.h"

namespace troupe::kernels {

// Per 32: d = max|x| / 127, q = round-half-away(x / d) (the Q8_0 values), s = fp16(sum(q) * d)
// with the unrounded d; d is kept as the fp16 it rounds to.
void quantize_row_q8_1(const float* x, int64_t cols, int8_t* q, float* d, float* s) {
  for (int64_t b = 0; b < cols / 32; ++b, x += 32, q += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float scale = amax / 127.0f, inv = scale != 0 ? 1.0f / scale : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) {
      q[j] = static_cast<int8_t>(std::round(x[j] * inv));
      sum += q[j];
    }
    d[b] = fp16_to_fp32(fp32_to_fp16(scale));
    s[b] = fp16_to_fp32(fp32_to_fp16(static_cast<float>(sum) * scale));
  }
}

// Per 256: the value of largest magnitude m maps to -127 (iscale = -127 / m), q = round-half-even
// (iscale * x) capped at 127, d = 1 / iscale in fp32, and the sums of q per 16.
void quantize_row_q8_k(const float* x, int64_t cols, int8_t* q, float* d, int16_t* bsums) {
  for (int64_t b = 0; b < cols / 256; ++b, x += 256, q += 256, bsums += 16) {
    float amax = 0, max = 0;
    for (int j = 0; j < 256; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    if (amax == 0) {
      d[b] = 0;
      std::fill(q, q + 256, int8_t{0});
      std::fill(bsums, bsums + 16, int16_t{0});
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < 256; ++j) q[j] = static_cast<int8_t>(std::min(127, static_cast<int>(std::nearbyint(iscale * x[j]))));
    for (int k = 0; k < 16; ++k) {
      int32_t sum = 0;
      for (int l = 0; l < 16; ++l) sum += q[16 * k + l];
      bsums[k] = static_cast<int16_t>(sum);
    }
    d[b] = 1 / iscale;
  }
}

}  // namespace troupe::kernels
