#include "models/format/context_override.h"

#include <stdexcept>

namespace troupe {

namespace {

class ContextOverride : public Checkpoint {
 public:
  ContextOverride(std::shared_ptr<const Checkpoint> base, int64_t n_ctx) : base_(std::move(base)), config_(base_->config()) {
    config_.n_ctx = n_ctx;
  }
  const std::string& path() const override { return base_->path(); }
  const ModelConfig& config() const override { return config_; }
  const Vocab& vocab() const override { return base_->vocab(); }
  bool has_vocab() const override { return base_->has_vocab(); }
  bool has_tensor(const std::string& name) const override { return base_->has_tensor(name); }
  TensorView tensor(const std::string& name) const override { return base_->tensor(name); }
  size_t tensor_nbytes(const std::string& name) const override { return base_->tensor_nbytes(name); }
  std::vector<std::string> tensor_names() const override { return base_->tensor_names(); }
  ShardInfo shard_info() const override { return base_->shard_info(); }
  std::string model_id() const override { return base_->model_id(); }

 private:
  std::shared_ptr<const Checkpoint> base_;
  ModelConfig config_;
};

}  // namespace

std::shared_ptr<const Checkpoint> with_context(std::shared_ptr<const Checkpoint> ckpt, int64_t n_ctx) {
  const int64_t declared = ckpt->config().n_ctx;
  if (n_ctx <= 0 || n_ctx == declared) return ckpt;
  // A learned position table (GPT-2) has no rows past its length; rotary positions extend.
  if (n_ctx > declared && ckpt->has_tensor("position_embd.weight"))
    throw std::invalid_argument(ckpt->path() + ": a context of " + std::to_string(n_ctx) +
                                " tokens is longer than the " + std::to_string(declared) +
                                " positions its position table (position_embd.weight) has");
  return std::make_shared<ContextOverride>(std::move(ckpt), n_ctx);
}

}  // namespace troupe
