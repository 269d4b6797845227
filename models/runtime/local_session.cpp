#include "models/runtime/local_session.h"

#include <algorithm>
#include <stdexcept>

#include "models/arch/stage_model.h"

namespace troupe {

LocalSession::LocalSession(std::shared_ptr<const Checkpoint> ckpt)
    : model_(StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer))) {}

LocalSession::~LocalSession() = default;

const ModelConfig& LocalSession::config() const { return model_->config(); }

std::vector<int32_t> LocalSession::generate(const std::vector<int32_t>& prompt, int64_t n_tokens,
                                            const SamplingOptions& sampling, int32_t eos,
                                            const TokenCallback& on_token) {
  const int64_t n_ctx = config().n_ctx;
  if (prompt.empty()) throw std::invalid_argument("empty prompt");
  if (static_cast<int64_t>(prompt.size()) >= n_ctx)
    throw std::length_error("prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " +
                            std::to_string(n_ctx) + " tokens");
  auto cache = model_->new_cache(n_ctx);
  std::vector<int32_t> history = prompt, generated;
  at::Tensor input = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong);
  int64_t pos = 0;
  for (int64_t step = 0; step < n_tokens && pos + input.size(0) <= n_ctx; ++step) {
    at::Tensor logits;
    const int64_t chunk = prefill_chunk_ > 0 ? prefill_chunk_ : input.size(0);
    for (int64_t first = 0; first < input.size(0); first += chunk)
      logits = model_->forward(input.narrow(0, first, std::min(chunk, input.size(0) - first)), pos + first, *cache);
    logits = logits.contiguous();
    pos += input.size(0);
    const float* row = logits.data_ptr<float>();
    const int32_t token = sample_token(sampling, row, logits.size(-1), history, static_cast<uint64_t>(step));
    generated.push_back(token);
    history.push_back(token);
    if (on_token && !on_token(token, std::vector<float>(row, row + logits.size(-1)))) break;
    if (token == eos) break;
    input = at::tensor(std::vector<int64_t>{token}, at::kLong);
  }
  return generated;
}

}  // namespace troupe
