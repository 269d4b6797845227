#include "models/runtime/local_session.h"

#include <algorithm>
#include <stdexcept>

#include "models/arch/stage_model.h"
#include "models/runtime/generation_loop.h"

namespace troupe {

LocalSession::LocalSession(std::shared_ptr<const Checkpoint> ckpt)
    : model_(StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer))) {}

LocalSession::~LocalSession() = default;

const ModelConfig& LocalSession::config() const { return model_->config(); }

namespace {

// Steps a whole model in this process: each part through every layer, then the sampler.
class LocalStepper : public ModelStepper {
 public:
  LocalStepper(StageModel& model, KvCache& cache) : model_(model), cache_(cache) {}

  StepResult step(const StepRequest& request) override {
    at::Tensor logits;
    int64_t pos = request.pos;
    for (const auto& part : request.parts) {
      logits = model_.forward(at::tensor(std::vector<int64_t>(part.begin(), part.end()), at::kLong), pos, cache_);
      pos += static_cast<int64_t>(part.size());
    }
    logits = logits.contiguous();
    const float* row = logits.data_ptr<float>();
    StepResult result;
    result.tokens.push_back(sample_token(request.sampling, row, logits.size(-1), request.recent, request.step));
    result.logits.assign(row, row + logits.size(-1));
    return result;
  }

 private:
  StageModel& model_;
  KvCache& cache_;
};

}  // namespace

std::vector<int32_t> LocalSession::generate(const std::vector<int32_t>& prompt, int64_t n_tokens,
                                            const SamplingOptions& sampling, int32_t eos,
                                            const TokenCallback& on_token) {
  const int64_t n_ctx = config().n_ctx;
  if (prompt.empty()) throw std::invalid_argument("empty prompt");
  if (static_cast<int64_t>(prompt.size()) >= n_ctx)
    throw std::length_error("prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " +
                            std::to_string(n_ctx) + " tokens");
  auto cache = model_->new_cache(n_ctx);
  LocalStepper stepper(*model_, *cache);
  LoopOptions options;
  options.n_tokens = n_tokens;
  options.max_positions = n_ctx;
  options.prefill_chunk = prefill_chunk_;
  options.sampling = sampling;
  options.is_stop = [eos](int32_t token) { return token == eos; };
  options.on_token = on_token;
  LoopResult result;
  run_generation(stepper, prompt, options, result);
  return result.tokens;
}

}  // namespace troupe
