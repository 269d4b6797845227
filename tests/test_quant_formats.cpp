// Block formats: fp16/bf16 conversions are exact where they must be, Q8_0/Q4_0 round
// trips stay within half a quantization step, and decoding follows GGUF's layout.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "models/quant/quant_formats.h"

namespace troupe {
namespace {

TEST(QuantFormats, Fp16RoundTripIsExactForEveryHalfValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(fp32_to_fp16(f), h) << std::hex << h;
  }
  EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
}

TEST(QuantFormats, Q8_0BlockDecodesAsScaleTimesInt8) {
  uint8_t block[34];
  const uint16_t d = fp32_to_fp16(0.5f);
  std::memcpy(block, &d, 2);
  for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  float out[32];
  dequantize(DType::Q8_0, block, out, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * (j - 16));
}

TEST(QuantFormats, Q4_0BlockKeepsLowNibblesFirstThenHighNibbles) {
  uint8_t block[18];
  const uint16_t d = fp32_to_fp16(2.0f);
  std::memcpy(block, &d, 2);
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float out[32];
  dequantize(DType::Q4_0, block, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 2.0f * (j - 8));
    EXPECT_EQ(out[j + 16], 2.0f * (15 - j - 8));
  }
}

TEST(QuantFormats, QuantizeThenDequantizeStaysWithinHalfAStep) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(32 * 64);
  for (auto& v : x) v = normal(rng);
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::F16, DType::BF16}) {
    std::vector<uint8_t> q(dtype_row_bytes(t, static_cast<int64_t>(x.size())));
    std::vector<float> back(x.size());
    quantize(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
    dequantize(t, q.data(), back.data(), static_cast<int64_t>(x.size()));
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      // Q8_0: half a step of amax/127. Q4_0 maps the largest magnitude to -8, so the other
      // sign reaches only +7 steps and is clamped there: up to one step of amax/8.
      // Both scales are rounded to fp16. 16-bit floats: relative rounding.
      for (int j = 0; j < 32; ++j) {
        const float v = x[b * 32 + j];
        const float bound = t == DType::Q8_0   ? amax / 127 * 0.5f + amax * 1e-3f
                            : t == DType::Q4_0 ? amax / 8 + amax * 1e-3f
                            : t == DType::F16  ? std::fabs(v) * 1e-3f
                                               : std::fabs(v) * 4e-3f;
        EXPECT_LE(std::fabs(back[b * 32 + j] - v), bound) << "type " << static_cast<int>(t) << " at " << b * 32 + j;
      }
    }
  }
}

}  // namespace
}  // namespace troupe
