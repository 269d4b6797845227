#include "models/runtime/token_logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "models/arch/stage_model.h"

namespace troupe {

TokenLogprob logprob_of(const float* logits, int64_t n_vocab, int32_t token, int top_k) {
  if (token < 0 || token >= n_vocab)
    throw std::out_of_range("token id " + std::to_string(token) + " is outside the vocabulary of " +
                            std::to_string(n_vocab));
  double max = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max = std::max<double>(max, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double logsumexp = max + std::log(sum);
  TokenLogprob r;
  r.token = token;
  r.logprob = logits[token] - logsumexp;
  const int64_t k = std::min<int64_t>(std::max(top_k, 0), n_vocab);
  if (k > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(n_vocab));
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    for (int64_t i = 0; i < k; ++i) r.top.emplace_back(ids[i], logits[ids[i]] - logsumexp);
  }
  return r;
}

std::vector<TokenLogprob> score_tokens(StageModel& model, const std::vector<int32_t>& tokens, int top_k) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > model.config().n_ctx)
    throw std::length_error(std::to_string(n) + " tokens do not fit the context of " +
                            std::to_string(model.config().n_ctx) + " tokens");
  std::vector<TokenLogprob> out(tokens.size());
  if (n == 0) return out;
  out[0].token = tokens[0];
  if (n == 1) return out;
  auto cache = model.new_cache(n);
  const at::Tensor logits =
      model.forward(at::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), at::kLong), 0, *cache, true)
          .to(at::kFloat)
          .contiguous();
  const int64_t n_vocab = logits.size(-1);
  const float* rows = logits.data_ptr<float>();
  for (int64_t i = 1; i < n; ++i) out[i] = logprob_of(rows + (i - 1) * n_vocab, n_vocab, tokens[i], top_k);
  return out;
}

}  // namespace troupe
