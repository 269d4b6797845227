#include "models/arch/causal_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "models/quant/parallel_range.h"
#include "models/quant/quant_matmul.h"

namespace troupe {
namespace {

// Where one query row's inputs and output are.
struct QueryRow {
  const float* q;       // [head_dim]
  const float* keys;    // key j at keys + j * key_stride
  const float* values;  // value j at values + j * value_stride
  int64_t key_stride, value_stride;
  int64_t visible;      // keys 0..visible-1
  int64_t head_dim;
  float scale;          // 1/sqrt(head_dim)
  float* out;           // [head_dim]
};

// Portable C++: dot products in eight interleaved partial sums joined in a fixed order.
float dot_portable(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) acc[i % 8] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// Softmax of the scores, returned unnormalised in `scores` with 1/sum: the exponentials
// summed in double, one after the other.
float softmax_unnormalised(float* scores, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, scores[j]);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - m);
    sum += scores[j];
  }
  return static_cast<float>(1.0 / sum);
}

void attend_portable(const QueryRow& r, float* scores) {
  for (int64_t j = 0; j < r.visible; ++j) scores[j] = dot_portable(r.q, r.keys + j * r.key_stride, r.head_dim) * r.scale;
  const float inv_sum = softmax_unnormalised(scores, r.visible);
  std::fill(r.out, r.out + r.head_dim, 0.0f);
  for (int64_t j = 0; j < r.visible; ++j) {
    const float* v = r.values + j * r.value_stride;
    for (int64_t d = 0; d < r.head_dim; ++d) r.out[d] += scores[j] * v[d];
  }
  for (int64_t d = 0; d < r.head_dim; ++d) r.out[d] *= inv_sum;
}

#if defined(__x86_64__) || defined(__i386__)
#define TROUPE_ATTENTION_AVX2 __attribute__((target("avx2,fma")))
#define TROUPE_ATTENTION_HAS_AVX2 1

TROUPE_ATTENTION_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) of 8 floats, Cephes' single-precision method (as ATen's and avx_mathfun's, within 2
// ulp): x = n ln2 + r, exp(r) by a degree-5 polynomial, times 2^n; 0 below about -87.3.
TROUPE_ATTENTION_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)), _mm256_set1_ps(-88.3762626647949f));
  const __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_add_ps(_mm256_fmadd_ps(y, _mm256_mul_ps(x, x), x), _mm256_set1_ps(1.0f));
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
}

// softmax_unnormalised with eight exponentials at a time, summed in double per lane (lane
// j % 8), the lanes then joined in a fixed order and the last n % 8 added one by one.
TROUPE_ATTENTION_AVX2 float softmax_unnormalised_avx2(float* scores, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, scores[j]);
  const __m256 vm = _mm256_set1_ps(m);
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + j), vm));
    _mm256_storeu_ps(scores + j, e);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[8];
  _mm256_store_pd(lanes, lo);
  _mm256_store_pd(lanes + 4, hi);
  double sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
  if (j < n) {
    alignas(32) float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::copy(scores + j, scores + n, tail);
    _mm256_store_ps(tail, exp8(_mm256_sub_ps(_mm256_load_ps(tail), vm)));
    for (int64_t i = 0; j + i < n; ++i) {
      scores[j + i] = tail[i];
      sum += tail[i];
    }
  }
  return static_cast<float>(1.0 / sum);
}

// AVX2 + FMA, head_dim a multiple of 8: each score an FMA chain over the head's dimensions
// (four keys at a time for instruction-level parallelism, each key's chain alone), the output
// an FMA chain over the keys per dimension.
TROUPE_ATTENTION_AVX2 void attend_avx2(const QueryRow& r, float* scores) {
  const int64_t hd = r.head_dim, n = r.visible;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* k0 = r.keys + j * r.key_stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd; d += 8) {
      const __m256 qv = _mm256_loadu_ps(r.q + d);
      a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + d), a0);
      a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + r.key_stride + d), a1);
      a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 2 * r.key_stride + d), a2);
      a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 3 * r.key_stride + d), a3);
    }
    scores[j] = hsum8(a0) * r.scale, scores[j + 1] = hsum8(a1) * r.scale;
    scores[j + 2] = hsum8(a2) * r.scale, scores[j + 3] = hsum8(a3) * r.scale;
  }
  for (; j < n; ++j) {
    const float* k = r.keys + j * r.key_stride;
    __m256 a = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(r.q + d), _mm256_loadu_ps(k + d), a);
    scores[j] = hsum8(a) * r.scale;
  }
  const __m256 inv_sum = _mm256_set1_ps(softmax_unnormalised_avx2(scores, n));
  for (int64_t d0 = 0; d0 < hd; d0 += 32) {  // 32 output dimensions (4 registers) at a time
    const int64_t regs = std::min<int64_t>(4, (hd - d0) / 8);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const float* v = r.values + d0;
    if (regs == 4) {
      for (int64_t i = 0; i < n; ++i, v += r.value_stride) {
        const __m256 p = _mm256_broadcast_ss(scores + i);
        acc[0] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v), acc[0]);
        acc[1] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8), acc[1]);
        acc[2] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 16), acc[2]);
        acc[3] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 24), acc[3]);
      }
    } else {
      for (int64_t i = 0; i < n; ++i, v += r.value_stride) {
        const __m256 p = _mm256_broadcast_ss(scores + i);
        for (int64_t g = 0; g < regs; ++g) acc[g] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8 * g), acc[g]);
      }
    }
    for (int64_t g = 0; g < regs; ++g) _mm256_storeu_ps(r.out + d0 + 8 * g, _mm256_mul_ps(acc[g], inv_sum));
  }
}

#endif  // x86

thread_local std::vector<float> t_scores;

}  // namespace

at::Tensor causal_attention(const at::Tensor& q_in, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q_in.dim() == 3 && k.dim() == 3 && v.dim() == 3, "attention wants q, k, v of [heads, rows, head_dim], not ",
              q_in.sizes(), ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat && k.stride(2) == 1 && v.stride(2) == 1,
              "attention wants fp32 keys and values with contiguous rows");
  const at::Tensor q = q_in.to(at::kFloat).contiguous();
  const int64_t n_head = q.size(0), T = q.size(1), hd = q.size(2);
  const int64_t n_head_kv = k.size(0), L = k.size(1);
  TORCH_CHECK(n_head_kv > 0 && n_head % n_head_kv == 0 && k.size(2) == hd && v.sizes() == k.sizes() && T <= L,
              "attention of ", n_head, " query heads over keys ", k.sizes(), " and values ", v.sizes());
  const int64_t group = n_head / n_head_kv;  // query heads sharing one key/value head
  at::Tensor out = at::empty({T, n_head * hd}, q.options());
  [[maybe_unused]] const bool avx2 = active_kernel_isa() != KernelIsa::portable && hd % 8 == 0;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  const float *qd = q.data_ptr<float>(), *kd = k.data_ptr<float>(), *vd = v.data_ptr<float>();
  float* od = out.data_ptr<float>();
  // Tasks: (key/value head, query row), each for the heads of its group; about 2 * visible *
  // head_dim * 2 flops a head, so a task of a short context is tiny and they are handed out
  // in grains of some 64k flops.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, 4 * group * L * hd));
  parallel_range(n_head_kv * T, grain, [&](int64_t i0, int64_t i1) {
    if (t_scores.size() < static_cast<size_t>(L)) t_scores.resize(static_cast<size_t>(L));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i / T, t = i % T;
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const QueryRow r{qd + (h * T + t) * hd, kd + g * k.stride(0), vd + g * v.stride(0), k.stride(1), v.stride(1),
                         L - T + t + 1, hd, scale, od + t * n_head * hd + h * hd};
#ifdef TROUPE_ATTENTION_HAS_AVX2
        if (avx2) {
          attend_avx2(r, t_scores.data());
          continue;
        }
#endif
        attend_portable(r, t_scores.data());
      }
    }
  });
  return out;
}

}  // namespace troupe
