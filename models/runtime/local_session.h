#pragma once
// One sequence run in this process through a whole-model stage: prefill of the prompt
// in one forward pass, then one token per step. The single-process reference that
// distributed runs are compared against.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "models/format/checkpoint.h"
#include "models/runtime/sampler.h"

namespace troupe {

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

  const ModelConfig& config() const;
  StageModel& model() { return *model_; }

 private:
  std::unique_ptr<StageModel> model_;
};

}  // namespace troupe
