#pragma once
// One sequence run in this process through a whole-model stage: prefill of the prompt
// in chunks of prefill_chunk tokens, then one token per step (the generation loop of
// models/runtime/generation_loop.h, which a pipeline runs too). The single-process reference
// that distributed runs are compared against: a pipeline prefills in the same chunks (it
// overlaps them across its stages), so both compute every row in the same products.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "models/format/checkpoint.h"
#include "models/runtime/sampler.h"

namespace troupe {

// Prompt tokens per prefill pass, here and in a pipeline (DeployOptions::prefill_chunk,
// --prefill-chunk): enough rows for the matrix products to run at full speed, few enough
// that a 256-token prompt makes 8 chunks for the stages of a pipeline to overlap. A
// product's rows do not always get the same last bits in passes of different sizes (BLAS
// paths), so the chunking is part of what makes two runs bitwise the same.
constexpr int64_t kDefaultPrefillChunk = 32;

class StageModel;
class KvCache;

// Called for each generated token with that step's logits; return false to stop.
using TokenCallback = std::function<bool(int32_t token, const std::vector<float>& logits)>;

class LocalSession {
 public:
  explicit LocalSession(std::shared_ptr<const Checkpoint> ckpt);
  ~LocalSession();

  // Generates up to n_tokens after `prompt` (stops early at `eos`, which is included).
  // Throws std::length_error when the prompt does not fit the context.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, int64_t n_tokens, const SamplingOptions& sampling,
                                int32_t eos, const TokenCallback& on_token = {});

  // Prompt tokens per prefill pass; 0: the whole prompt in one pass.
  void set_prefill_chunk(int64_t tokens) { prefill_chunk_ = tokens; }

  const ModelConfig& config() const;
  StageModel& model() { return *model_; }

 private:
  std::unique_ptr<StageModel> model_;
  int64_t prefill_chunk_ = kDefaultPrefillChunk;
};

}  // namespace troupe
