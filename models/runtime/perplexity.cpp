#include "models/runtime/perplexity.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "models/arch/stage_model.h"

namespace troupe {

PerplexityResult perplexity(StageModel& model, const std::vector<int32_t>& tokens, int64_t n_ctx, bool add_bos,
                            int32_t bos_id, const std::function<void(int64_t, int64_t, double)>& progress) {
  if (n_ctx < 2 || n_ctx > model.config().n_ctx)
    throw std::invalid_argument("--ctx must be between 2 and the model's context of " + std::to_string(model.config().n_ctx));
  if (static_cast<int64_t>(tokens.size()) < 2 * n_ctx)
    throw std::invalid_argument("the text has " + std::to_string(tokens.size()) + " tokens; need at least " +
                                std::to_string(2 * n_ctx) + " (2 x --ctx)");
  PerplexityResult r;
  r.n_chunks = static_cast<int64_t>(tokens.size()) / n_ctx;
  const int64_t first = n_ctx / 2;
  double nll = 0;
  for (int64_t chunk = 0; chunk < r.n_chunks; ++chunk) {
    std::vector<int64_t> ids(tokens.begin() + chunk * n_ctx, tokens.begin() + (chunk + 1) * n_ctx);
    if (add_bos) ids[0] = bos_id;
    auto cache = model.new_cache(n_ctx);
    const at::Tensor logp = at::log_softmax(model.forward(at::tensor(ids, at::kLong), 0, *cache, true).to(at::kDouble), -1);
    // Position j predicts the chunk's token j+1 (the original token, never the BOS substitute).
    for (int64_t j = first; j < n_ctx - 1; ++j)
      nll -= logp[j][tokens[static_cast<size_t>(chunk * n_ctx + j + 1)]].item<double>();
    r.n_scored += n_ctx - 1 - first;
    if (progress) progress(chunk + 1, r.n_chunks, std::exp(nll / static_cast<double>(r.n_scored)));
  }
  r.ppl = std::exp(nll / static_cast<double>(r.n_scored));
  return r;
}

}  // namespace troupe
