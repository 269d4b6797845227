#include "models/runtime/draft_model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

#include "models/arch/kv_cache.h"
#include "models/arch/stage_model.h"
#include "models/runtime/local_session.h"

namespace troupe {

DraftModel::DraftModel(std::shared_ptr<const Checkpoint> ckpt, std::string path)
    : model_(StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer))), path_(std::move(path)) {}

DraftModel::~DraftModel() = default;

int64_t DraftModel::n_vocab() const { return model_->config().n_vocab; }

void DraftModel::check_vocabulary(int64_t target_vocab, const std::string& target_name) const {
  if (n_vocab() == target_vocab) return;
  throw std::invalid_argument("draft model " + path_ + " has a vocabulary of " + std::to_string(n_vocab()) +
                              " tokens, but " + target_name + " has " + std::to_string(target_vocab) +
                              ": a draft must share the model's vocabulary (its token ids are verified as the "
                              "model's)");
}

std::unique_ptr<DraftSequence> DraftModel::start() const {
  return std::unique_ptr<DraftSequence>(new DraftSequence(model_, busy_));
}

DraftSequence::DraftSequence(std::shared_ptr<StageModel> model, std::shared_ptr<std::mutex> busy)
    : model_(std::move(model)), busy_(std::move(busy)), cache_(model_->new_cache(model_->config().n_ctx)) {}

DraftSequence::~DraftSequence() = default;

int64_t DraftSequence::cached_positions() const { return cache_->n_positions(); }

std::vector<int32_t> DraftSequence::propose(const std::vector<int32_t>& history, int32_t k) {
  const int64_t n_ctx = model_->config().n_ctx;
  const int64_t n = static_cast<int64_t>(history.size());
  // The cache holds k - 1 drafted tokens past the history after a proposal: room for them.
  k = static_cast<int32_t>(std::min<int64_t>(k, n_ctx - n + 1));
  if (k <= 0 || n == 0) return {};
  // Rollback: keep the positions whose tokens the history confirms, and at least one token to
  // feed (the logits of the last one are wanted).
  int64_t keep = 0;
  while (keep < static_cast<int64_t>(cached_.size()) && keep < n && cached_[keep] == history[keep]) ++keep;
  keep = std::min(keep, n - 1);
  cache_->truncate(keep);
  cached_.resize(static_cast<size_t>(keep));

  std::lock_guard<std::mutex> lock(*busy_);
  auto feed = [&](const std::vector<int32_t>& tokens) {
    at::Tensor logits;
    const int64_t count = static_cast<int64_t>(tokens.size());
    for (int64_t first = 0; first < count; first += kDefaultPrefillChunk) {
      const int64_t len = std::min(kDefaultPrefillChunk, count - first);
      const at::Tensor ids =
        at::tensor(std::vector<int64_t>(tokens.begin() + first, tokens.begin() + first + len), at::kLong);
      logits = model_->forward(ids, static_cast<int64_t>(cached_.size()), *cache_);
      cached_.insert(cached_.end(), tokens.begin() + first, tokens.begin() + first + len);
    }
    return static_cast<int32_t>(at::argmax(logits.reshape({-1}), 0).item<int64_t>());
  };
  std::vector<int32_t> draft = {feed(std::vector<int32_t>(history.begin() + keep, history.end()))};
  while (static_cast<int32_t>(draft.size()) < k) draft.push_back(feed({draft.back()}));
  return draft;
}

}  // namespace troupe
