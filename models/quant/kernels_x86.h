#pragma once
// Helpers shared by the x86 kernel files (kernels_avx2.cpp, kernels_half_avx2.cpp, kernels_avx512.cpp, ...), compiled for
// AVX2 + FMA + F16C by function attribute; the AVX512 functions inline them too (a superset).
// Internal to the model library.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "models/quant/quant_formats.h"

#define TROUPE_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace troupe::kernels::x86 {

constexpr size_t kQ8_0Bytes = 34;  // bytes per block: fp16 scale + 32 int8
constexpr size_t kQ4_0Bytes = 18;  // fp16 scale + 16 bytes of nibbles

TROUPE_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// hsum8's steps, each on two vectors' worth of hsum's partial sums at once.
TROUPE_AVX2 inline __m256 add_halves(__m256 a, __m256 b) {  // [a.low + a.high | b.low + b.high]
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}
TROUPE_AVX2 inline __m256 add_pairs(__m256 a, __m256 b) {  // per half: [a0 + a2, a1 + a3, b0 + b2, b1 + b3]
  return _mm256_add_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
TROUPE_AVX2 inline __m256 add_neighbours(__m256 a, __m256 b) {  // per half: [a0 + a1, a2 + a3, b0 + b1, b2 + b3]
  return _mm256_add_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

// hsum of v[0..8) at once: lane k holds hsum(v[k]), added in hsum's order (so with its bits),
// by transposing adds instead of eight dependent chains. For kernels that finish many
// accumulators together.
TROUPE_AVX2 inline __m256 hsum8(const __m256 (&v)[8]) {
  const __m256 q0 = add_pairs(add_halves(v[0], v[4]), add_halves(v[1], v[5]));  // v0 v0 v1 v1 | v4 v4 v5 v5
  const __m256 q1 = add_pairs(add_halves(v[2], v[6]), add_halves(v[3], v[7]));  // v2 v2 v3 v3 | v6 v6 v7 v7
  return add_neighbours(q0, q1);
}

// The fp16 scale at the start of a block.
TROUPE_AVX2 inline float block_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return _cvtsh_ss(h);
}

// The fp16 scales of 8 consecutive blocks (gathered in integer registers, converted at once).
template <size_t kBytes>
TROUPE_AVX2 inline __m256 block_scales8(const uint8_t* block) {
  uint64_t lo = 0, hi = 0;
  for (int i = 0; i < 4; ++i) {
    uint16_t a, b;
    std::memcpy(&a, block + i * kBytes, 2);
    std::memcpy(&b, block + (4 + i) * kBytes, 2);
    lo |= static_cast<uint64_t>(a) << (16 * i);
    hi |= static_cast<uint64_t>(b) << (16 * i);
  }
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)));
}

// 32 activation values (32-byte aligned, see Q8Rows).
TROUPE_AVX2 inline __m256i load_x(const int8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

// Two Q4_0 blocks' 16 nibble bytes in one register: A's in the low half, B's (kQ4_0Bytes on) in the high.
TROUPE_AVX2 inline __m256i load_nibble_pair(const uint8_t* block_a) {
  const auto* p = reinterpret_cast<const __m128i*>(block_a + 2);
  const auto* q = reinterpret_cast<const __m128i*>(block_a + kQ4_0Bytes + 2);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(p)), _mm_loadu_si128(q), 1);
}

// One Q4_0 block's nibbles as 32 bytes 0..15, in element order.
TROUPE_AVX2 inline __m256i load_nibbles(const uint8_t* block) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0f));
}

// Lanes 0-3 = lane 2k of v, lanes 4-7 = lane 2k+1: the scales of a block pair.
TROUPE_AVX2 inline __m256 pair_scales(__m256 v, int k) {
  return _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                                                       2 * k + 1));
}

// 8 F16 or BF16 weights as fp32, and one of them.
template <DType Type>
TROUPE_AVX2 inline __m256 load8_half(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (Type == DType::F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

template <DType Type>
TROUPE_AVX2 inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  if constexpr (Type == DType::F16) return _cvtsh_ss(h);
  return bf16_to_fp32(h);
}

}  // namespace troupe::kernels::x86
