// Reference quantizers (models/quant/quantizers.h): per type, random rows come back within
// a stated error; and quantizing the F16 weights of llama-k-f16.gguf reproduces the blocks
// llama.cpp's llama-quantize wrote into llama-k-<type>.gguf.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "models/format/gguf_file.h"
#include "models/quant/quant_formats.h"
#include "models/quant/quantizers.h"
#include "models/quant/type_traits.h"
#include "tests/test_support.h"

namespace troupe {
namespace {

// Plain decoders written from the GGUF block layouts, independent of the quantizers.
float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

void scale_min_k4(int j, const uint8_t* q, int* d, int* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void decode(uint32_t type, const uint8_t* b, float* y, int64_t n) {
  using namespace ggml_type;
  switch (type) {
    case Q4_1: case Q5_1:
      for (int64_t i = 0; i < n / 32; ++i, y += 32) {
        const bool five = type == Q5_1;
        const float d = half(b), m = half(b + 2);
        uint32_t qh = 0;
        if (five) std::memcpy(&qh, b + 4, 4);
        const uint8_t* qs = b + (five ? 8 : 4);
        for (int j = 0; j < 16; ++j) {
          y[j] = d * static_cast<float>((qs[j] & 0xF) | (five ? ((qh >> j) & 1) << 4 : 0)) + m;
          y[j + 16] = d * static_cast<float>((qs[j] >> 4) | (five ? ((qh >> (j + 16)) & 1) << 4 : 0)) + m;
        }
        b += five ? 24 : 20;
      }
      return;
    case Q5_0:
      for (int64_t i = 0; i < n / 32; ++i, y += 32, b += 22) {
        const float d = half(b);
        uint32_t qh;
        std::memcpy(&qh, b + 2, 4);
        for (int j = 0; j < 16; ++j) {
          y[j] = d * static_cast<float>(static_cast<int>((b[6 + j] & 0xF) | (((qh >> j) & 1) << 4)) - 16);
          y[j + 16] = d * static_cast<float>(static_cast<int>((b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
        }
      }
      return;
    case IQ4_NL:
      for (int64_t i = 0; i < n / 32; ++i, y += 32, b += 18) {
        const float d = half(b);
        for (int j = 0; j < 16; ++j) {
          y[j] = d * kIq4nlValues[b[2 + j] & 0xF];
          y[j + 16] = d * kIq4nlValues[b[2 + j] >> 4];
        }
      }
      return;
    case IQ4_XS:
      for (int64_t i = 0; i < n / 256; ++i, b += 136) {
        const float d = half(b);
        uint16_t sh;
        std::memcpy(&sh, b + 2, 2);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
          const int ls = ((b[4 + ib / 2] >> 4 * (ib % 2)) & 0xF) | (((sh >> 2 * ib) & 3) << 4);
          const float dl = d * static_cast<float>(ls - 32);
          const uint8_t* qs = b + 8 + 16 * ib;
          for (int j = 0; j < 16; ++j) {
            y[j] = dl * kIq4nlValues[qs[j] & 0xF];
            y[j + 16] = dl * kIq4nlValues[qs[j] >> 4];
          }
        }
      }
      return;
    case Q2_K:
      for (int64_t i = 0; i < n / 256; ++i, b += 84) {
        const float d = half(b + 80), dmin = half(b + 82);
        for (int v = 0; v < 256; ++v) {
          const int half128 = v / 128, r = v % 128, shift = 2 * (r / 32), l = r % 32;
          const int q = (b[16 + 32 * half128 + l] >> shift) & 3;
          const uint8_t sc = b[v / 16];
          *y++ = d * (sc & 0xF) * q - dmin * (sc >> 4);
        }
      }
      return;
    case Q3_K:
      for (int64_t i = 0; i < n / 256; ++i, b += 110) {
        const float d = half(b + 108);
        const uint8_t* sc = b + 96;
        for (int v = 0; v < 256; ++v) {
          const int j = v / 16;
          int s = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
          s = (s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
          const int half128 = v / 128, r = v % 128, shift = 2 * (r / 32), l = r % 32;
          const int lo = (b[32 + 32 * half128 + l] >> shift) & 3;
          const int hi = (b[v % 32] >> (v / 32)) & 1;
          *y++ = d * s * (lo - (hi ? 0 : 4));
        }
      }
      return;
    case Q4_K: case Q5_K:
      for (int64_t i = 0; i < n / 256; ++i) {
        const bool five = type == Q5_K;
        const float d = half(b), dmin = half(b + 2);
        const uint8_t* qh = b + 16;
        const uint8_t* qs = b + (five ? 48 : 16);
        for (int v = 0; v < 256; ++v) {
          const int j = v / 32, pair = v / 64, l = v % 32;
          int sc, m;
          scale_min_k4(j, b + 4, &sc, &m);
          int q = (j % 2 == 0) ? (qs[32 * pair + l] & 0xF) : (qs[32 * pair + l] >> 4);
          if (five) q |= ((qh[l] >> j) & 1) << 4;
          *y++ = d * sc * q - dmin * m;
        }
        b += five ? 176 : 144;
      }
      return;
    case Q6_K:
      for (int64_t i = 0; i < n / 256; ++i, b += 210) {
        const float d = half(b + 208);
        const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
        for (int v = 0; v < 256; ++v) {
          const int half128 = v / 128, r = v % 128, quarter = r / 32, l = r % 32;
          const uint8_t lb = b[64 * half128 + l + 32 * (quarter % 2)];
          const int lo = quarter < 2 ? (lb & 0xF) : (lb >> 4);
          const int hi = (b[128 + 32 * half128 + l] >> (2 * quarter)) & 3;
          *y++ = d * sc[v / 16] * ((lo | (hi << 4)) - 32);
        }
      }
      return;
    default:
      dequantize(static_cast<DType>(type), b, y, n);
  }
}

const uint32_t kTypes[] = {ggml_type::Q4_1, ggml_type::Q5_0, ggml_type::Q5_1, ggml_type::Q2_K, ggml_type::Q3_K,
                           ggml_type::Q4_K, ggml_type::Q5_K, ggml_type::Q6_K, ggml_type::IQ4_NL, ggml_type::IQ4_XS};

// RMS error relative to the RMS of the values, for normally distributed rows of 4096.
double relative_rms_error(uint32_t type) {
  const TypeTraits* q = find_type_traits(type);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const int64_t n = 4096;
  double err = 0, ref = 0;
  for (int row = 0; row < 16; ++row) {
    std::vector<float> x(n), back(n);
    for (auto& v : x) v = normal(rng);
    std::vector<uint8_t> blocks(dtype_row_bytes(q->type, n));
    q->quantize_row(x.data(), blocks.data(), n);
    decode(type, blocks.data(), back.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      err += (x[i] - back[i]) * (x[i] - back[i]);
      ref += x[i] * x[i];
    }
  }
  return std::sqrt(err / ref);
}

TEST(Quantizers, RandomRowsComeBackWithinEachTypesErrorBound) {
  // Bounds: about 1.15x what each type measures on Gaussian rows (printed below); Q6_K's 1.8%
  // is what 64 levels over +-max of 16 values give (step ~ sigma/16, error step/sqrt(12)).
  const std::pair<uint32_t, double> bounds[] = {
      {ggml_type::Q6_K, 0.021}, {ggml_type::Q5_K, 0.042}, {ggml_type::Q5_1, 0.044}, {ggml_type::Q5_0, 0.050},
      {ggml_type::Q4_K, 0.083}, {ggml_type::Q4_1, 0.091}, {ggml_type::IQ4_NL, 0.088}, {ggml_type::IQ4_XS, 0.089},
      {ggml_type::Q3_K, 0.175}, {ggml_type::Q2_K, 0.345}};
  for (const auto& [type, bound] : bounds) {
    const double e = relative_rms_error(type);
    std::printf("%-7s relative RMS error %.4f (bound %.3f)\n", find_type_traits(type)->name, e, bound);
    EXPECT_LT(e, bound) << find_type_traits(type)->name;
    EXPECT_GT(e, 0.0) << find_type_traits(type)->name;
  }
}

TEST(Quantizers, MoreBitsGiveSmallerErrors) {
  EXPECT_LT(relative_rms_error(ggml_type::Q6_K), relative_rms_error(ggml_type::Q5_K));
  EXPECT_LT(relative_rms_error(ggml_type::Q5_K), relative_rms_error(ggml_type::Q4_K));
  EXPECT_LT(relative_rms_error(ggml_type::Q4_K), relative_rms_error(ggml_type::Q3_K));
  EXPECT_LT(relative_rms_error(ggml_type::Q3_K), relative_rms_error(ggml_type::Q2_K));
}

TEST(Quantizers, ZeroRowsGiveZeroValues) {
  for (uint32_t type : kTypes) {
    const TypeTraits* q = find_type_traits(type);
    std::vector<float> x(256, 0.0f), back(256, 1.0f);
    std::vector<uint8_t> blocks(dtype_row_bytes(q->type, 256));
    q->quantize_row(x.data(), blocks.data(), 256);
    decode(type, blocks.data(), back.data(), 256);
    for (float v : back) ASSERT_EQ(v, 0.0f) << q->name;
  }
}

TEST(Quantizers, RowsNotAMultipleOfTheBlockAreRefusedWithTheTypeName) {
  try {
    dtype_row_bytes(static_cast<DType>(ggml_type::Q4_K), 96);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("Q4_K"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("256"), std::string::npos) << e.what();
  }
}

struct BlockMatch {
  int64_t blocks = 0, identical = 0;
};

// Quantizes the F16 weights of llama-k-f16.gguf to each tensor's type in `file` and counts
// the blocks equal byte for byte to llama.cpp's.
std::map<uint32_t, BlockMatch> match_llama_cpp_blocks(const std::string& file) {
  GgufFile f16(test::model_path("llama-k/llama-k-f16.gguf"));
  GgufFile theirs(test::model_path("llama-k/" + file));
  std::map<uint32_t, BlockMatch> by_type;
  for (const auto& t : theirs.tensors()) {
    const TypeTraits* q = find_type_traits(t.ggml_type);
    if (!q || q->block_elems == 1) continue;
    const GgufTensorInfo* src = f16.find_tensor(t.name);
    EXPECT_NE(src, nullptr) << t.name;
    if (!src || src->ggml_type != ggml_type::F16) continue;
    const int64_t cols = t.ne[0];
    int64_t rows = 1;  // (nbytes is 0 for types this build's loader does not know)
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<uint8_t> ours(dtype_row_bytes(q->type, cols));
    const uint8_t* their_data = theirs.tensor_data(t);
    for (int64_t r = 0; r < rows; ++r) {
      dequantize(DType::F16, f16.tensor_data(*src) + r * cols * 2, row.data(), cols);
      q->quantize_row(row.data(), ours.data(), cols);
      BlockMatch& m = by_type[t.ggml_type];
      for (int64_t b = 0; b < cols / q->block_elems; ++b) {
        ++m.blocks;
        m.identical += std::memcmp(ours.data() + b * q->block_bytes, their_data + r * ours.size() + b * q->block_bytes,
                                   q->block_bytes) == 0;
      }
    }
  }
  return by_type;
}

TEST(Quantizers, QuantizingTheF16ModelReproducesLlamaQuantizesBlocks) {
  const char* files[] = {"llama-k-q2_k.gguf",  "llama-k-q3_k_m.gguf", "llama-k-q4_k_m.gguf", "llama-k-q5_k_m.gguf",
                         "llama-k-q6_k.gguf",  "llama-k-q4_1.gguf",   "llama-k-q5_0.gguf",   "llama-k-q5_1.gguf",
                         "llama-k-iq4_nl.gguf", "llama-k-iq4_xs.gguf"};
  std::map<uint32_t, BlockMatch> all;
  for (const char* file : files) {
    for (const auto& [type, m] : match_llama_cpp_blocks(file)) {
      all[type].blocks += m.blocks;
      all[type].identical += m.identical;
    }
  }
  EXPECT_EQ(all.size(), 10u);
  for (const auto& [type, m] : all) {
    const double share = static_cast<double>(m.identical) / static_cast<double>(m.blocks);
    std::printf("%-7s %lld of %lld blocks byte-identical to llama.cpp's (%.2f%%)\n", find_type_traits(type)->name,
                static_cast<long long>(m.identical), static_cast<long long>(m.blocks), 100 * share);
    EXPECT_EQ(m.identical, m.blocks) << find_type_traits(type)->name;  // measured: all of them, every type
  }
}

TEST(Quantizers, RequantizingDecodedLlamaCppBlocksChangesTheValuesLittle) {
  // Decoding a llama.cpp tensor and quantizing the decoded values again: the values on the
  // grid a block came from are one of the candidates the search sees, so little moves.
  GgufFile f16(test::model_path("llama-k/llama-k-f16.gguf"));
  for (const char* file : {"llama-k-q4_k_m.gguf", "llama-k-q6_k.gguf", "llama-k-q4_1.gguf", "llama-k-iq4_xs.gguf"}) {
    GgufFile theirs(test::model_path(std::string("llama-k/") + file));
    const GgufTensorInfo* t = theirs.find_tensor("blk.0.ffn_up.weight");
    ASSERT_NE(t, nullptr);
    const TypeTraits* q = find_type_traits(t->ggml_type);
    const int64_t n = t->ne[0] * t->ne[1];
    std::vector<float> once(n), twice(n);
    decode(t->ggml_type, theirs.tensor_data(*t), once.data(), n);
    std::vector<uint8_t> blocks(dtype_row_bytes(q->type, n));
    q->quantize_row(once.data(), blocks.data(), n);
    decode(t->ggml_type, blocks.data(), twice.data(), n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (once[i] - twice[i]) * (once[i] - twice[i]);
      ref += once[i] * once[i];
    }
    const double rel = std::sqrt(err / ref);
    int64_t same = 0;
    const int64_t nblocks = n / q->block_elems;
    for (int64_t b = 0; b < nblocks; ++b)
      same += std::memcmp(blocks.data() + b * q->block_bytes, theirs.tensor_data(*t) + b * q->block_bytes,
                          q->block_bytes) == 0;
    std::printf("%s: re-quantized %s, relative RMS change %.5f, %lld of %lld blocks identical\n", file, q->name, rel,
                static_cast<long long>(same), static_cast<long long>(nblocks));
    EXPECT_LT(rel, 0.02) << file;
  }
}

}  // namespace
}  // namespace troupe
