#include "models/arch/step_batch.h"

#include <stdexcept>

namespace troupe {

StepBatch::StepBatch(const std::vector<SequenceStep>& steps) : steps_(steps) {
  if (steps.empty()) throw std::invalid_argument("a forward pass needs at least one sequence");
  for (const auto& s : steps) {
    if (!s.cache) throw std::invalid_argument("a sequence without a KV cache");
    last_row_groups_.push_back(RowRange{static_cast<int64_t>(groups_.size()), 1});
    groups_.push_back(RowRange{rows_, s.input.size(0)});
    rows_ += s.input.size(0);
  }
}

at::Tensor StepBatch::stacked_inputs() const {
  if (steps_.size() == 1) return steps_[0].input;
  std::vector<at::Tensor> inputs;
  for (const auto& s : steps_) inputs.push_back(s.input);
  return at::cat(inputs);
}

at::Tensor StepBatch::last_rows(const at::Tensor& x) const {
  if (steps_.size() == 1) return x.narrow(0, rows_ - 1, 1);
  std::vector<int64_t> last;
  for (const RowRange& r : groups_) last.push_back(r.first + r.count - 1);
  return x.index_select(0, at::tensor(last, at::kLong));
}

std::vector<at::Tensor> StepBatch::split(const at::Tensor& x) const {
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < steps_.size(); ++i) parts.push_back(rows_of(i).of(x));
  return parts;
}

std::vector<at::Tensor> StepBatch::split_one_each(const at::Tensor& x) const {
  std::vector<at::Tensor> parts;
  for (const RowRange& r : last_row_groups_) parts.push_back(r.of(x));
  return parts;
}

}  // namespace troupe
