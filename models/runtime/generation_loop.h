#pragma once
// The one token loop: prefill of the prompt in chunks, then one decode step after another
// (with speculative drafts when asked), until n_tokens, the context, a stop token or the
// caller says stop. What computes a step is abstract (ModelStepper): a whole model in this
// process (LocalSession) or a pipeline of stages on other machines (framework/deploy). Both
// therefore send the same inputs in the same chunks, which is what keeps a distributed run
// bitwise equal to a local one. Torch-free.
#include <cstdint>
#include <functional>
#include <vector>

#include "models/runtime/sampler.h"

namespace troupe {

// One step's inputs: the tokens at positions pos.. (prompt, or the last token and its draft),
// in the parts they are to be computed in (the prompt in prefill chunks; one part otherwise).
struct StepRequest {
  int64_t pos = 0;
  std::vector<std::vector<int32_t>> parts;
  std::vector<int32_t> draft;   // speculative: the last draft.size() inputs are guesses to verify
  SamplingOptions sampling;
  std::vector<int32_t> recent;  // the repetition window of the history (empty without a penalty)
  uint64_t step = 0;            // tokens generated before this step: the sampler's draw index
  bool want_logits = false;
};

// What a step gave: the sampled token, preceded by the drafts the sampler kept (speculative).
struct StepResult {
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // the sampled token's row, when asked (not with drafts)
};

class ModelStepper {
 public:
  virtual ~ModelStepper() = default;
  // Computes the step's inputs, samples; throws what the model or the network throws.
  virtual StepResult step(const StepRequest& request) = 0;
};

struct LoopOptions {
  int64_t n_tokens = 0;       // generate at most this many
  int64_t max_positions = 0;  // the context: no step past it
  int64_t prefill_chunk = 0;  // prompt tokens per part of the first step; 0: one part
  int64_t speculate = 0;      // draft tokens per decode step (prompt lookup); 0: off
  // Drafts up to k tokens after `history` instead of prompt lookup (a draft model: models/
  // runtime/draft_model.h, which keeps its own cache in step with the history it is given).
  std::function<std::vector<int32_t>(const std::vector<int32_t>& history, int32_t k)> draft;
  bool want_logits = false;   // keep each token's logits row (no speculation then)
  SamplingOptions sampling;
  // The token ends the generation (included), e.g. EOS; none when empty.
  std::function<bool(int32_t token)> is_stop;
  // Called with each token as it is generated (and its logits row when the stepper gave
  // one); false ends the generation after it.
  std::function<bool(int32_t token, const std::vector<float>& logits)> on_token;
};

struct LoopResult {
  std::vector<int32_t> tokens;             // generated, the stop token included
  std::vector<std::vector<float>> logits;  // per token, with want_logits
  double prefill_ms = 0;                   // the first step
  std::vector<double> step_ms;             // each later token (a speculative step's time shared out)
  int64_t drafted = 0;                     // speculative tokens drafted
  int64_t accepted = 0;                    // ... and kept
};

// The repetition window of `history` that the sampler looks at.
std::vector<int32_t> recent_window(const std::vector<int32_t>& history, const SamplingOptions& options);

// Runs the loop over `stepper` from `prompt` (not empty; the caller checks it fits).
// `result` holds what was generated so far also when a step throws.
void run_generation(ModelStepper& stepper, const std::vector<int32_t>& prompt, const LoopOptions& options,
                    LoopResult& result);

}  // namespace troupe
