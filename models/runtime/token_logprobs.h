#pragma once
// Log-probabilities of tokens (log-softmax of the logits, computed in double): what the
// OpenAI API returns as `logprobs` / `top_logprobs`, for generated tokens and, with `echo`,
// for the prompt's own tokens. Torch-free interface.
#include <cstdint>
#include <utility>
#include <vector>

namespace troupe {

class StageModel;

struct TokenLogprob {
  int32_t token = 0;
  double logprob = 0;                              // log p(token | what came before)
  std::vector<std::pair<int32_t, double>> top;     // the top_k most likely tokens there, best first
};

// From one row of logits: `token`'s log-probability and the `top_k` best (ties: lower id first).
TokenLogprob logprob_of(const float* logits, int64_t n_vocab, int32_t token, int top_k);

// Scores `tokens` with one forward pass of a whole-model stage: entry i (i >= 1) is token i
// given tokens [0, i); entry 0 has no prediction (logprob 0, no top). Throws
// std::length_error when the tokens do not fit the model's context.
std::vector<TokenLogprob> score_tokens(StageModel& model, const std::vector<int32_t>& tokens, int top_k);

}  // namespace troupe
