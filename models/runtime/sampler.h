#pragma once
// Picks the next token from a row of logits: greedy, temperature, top-k, top-p and
// repetition penalty, with its own seeded generator so a fixed seed repeats exactly.
// Torch-free: it works on a plain float array.
#include <cstdint>
#include <vector>

namespace troupe {

struct SamplingOptions {
  float temperature = 0.8f;    // 0 = greedy
  int32_t top_k = 40;          // 0 = all tokens
  float top_p = 0.95f;         // 1 = off
  float repeat_penalty = 1.0f; // 1 = off; >1 discourages tokens in the recent window
  int32_t repeat_window = 64;  // how many recent tokens the penalty looks at
  uint64_t seed = 0;
};

// The fields of SamplingOptions in their wire order, handed to `visit` (a cereal archive, a
// CAF inspector): the one list every serializer of the options uses.
template <class Options, class Visit>
decltype(auto) visit_fields(Options& o, Visit&& visit) {
  return visit(o.temperature, o.top_k, o.top_p, o.repeat_penalty, o.repeat_window, o.seed);
}

// Samples one token. `recent` are the tokens so far (prompt + generated), for the
// repetition penalty. The random draw depends only on (seed, step), not on earlier
// calls: a sampler holds no state, so a restarted stage or a replayed session draws
// exactly what the original would have.
int32_t sample_token(const SamplingOptions& opts, const float* logits, int64_t n_vocab,
                     const std::vector<int32_t>& recent, uint64_t step);

// Index of the largest logit; ties go to the lowest index (as llama.cpp's greedy does).
int32_t argmax(const float* logits, int64_t n_vocab);

}  // namespace troupe
