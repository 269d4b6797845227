#include "models/runtime/sampler.h"
#include "models/runtime/splitmix.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace troupe {
namespace {


double uniform01(uint64_t seed, uint64_t step) {
  return static_cast<double>(splitmix64(splitmix64(seed) ^ step) >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace

int32_t argmax(const float* logits, int64_t n_vocab) {
  return static_cast<int32_t>(std::max_element(logits, logits + n_vocab) - logits);
}

int32_t sample_token(const SamplingOptions& opts, const float* logits, int64_t n_vocab,
                     const std::vector<int32_t>& recent, uint64_t step) {
  const bool penalize = opts.repeat_penalty != 1.0f && opts.repeat_window > 0 && !recent.empty();
  if (opts.temperature <= 0.0f && !penalize) return argmax(logits, n_vocab);

  std::vector<float> l(logits, logits + n_vocab);
  if (penalize) {  // as llama.cpp: shrink positive logits, grow negative ones, once per distinct token
    const size_t window = std::min(recent.size(), static_cast<size_t>(opts.repeat_window));
    std::unordered_set<int32_t> seen(recent.end() - static_cast<std::ptrdiff_t>(window), recent.end());
    for (int32_t t : seen) {
      if (t < 0 || t >= n_vocab) continue;
      l[t] = l[t] > 0 ? l[t] / opts.repeat_penalty : l[t] * opts.repeat_penalty;
    }
  }
  if (opts.temperature <= 0.0f) return argmax(l.data(), n_vocab);

  // Candidates by descending logit, cut to top-k.
  std::vector<int32_t> idx(static_cast<size_t>(n_vocab));
  std::iota(idx.begin(), idx.end(), 0);
  const size_t k = opts.top_k > 0 ? std::min<size_t>(static_cast<size_t>(opts.top_k), idx.size()) : idx.size();
  auto by_logit = [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), by_logit);
  idx.resize(k);

  // Softmax with temperature over the candidates.
  std::vector<double> p(k);
  const double max_l = l[idx[0]];
  double sum = 0;
  for (size_t i = 0; i < k; ++i) sum += p[i] = std::exp((l[idx[i]] - max_l) / opts.temperature);
  for (auto& x : p) x /= sum;

  // Top-p: the smallest prefix whose probability reaches top_p (at least one token).
  size_t keep = k;
  if (opts.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < k; ++i) {
      cum += p[i];
      if (cum >= opts.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  const double total = std::accumulate(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
  double r = uniform01(opts.seed, step) * total;
  for (size_t i = 0; i < keep; ++i) {
    r -= p[i];
    if (r < 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace troupe
