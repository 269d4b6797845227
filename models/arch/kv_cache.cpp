#include "models/arch/kv_cache.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace troupe {

namespace {
constexpr int64_t kGrowthStep = 256;  // positions added at a time
}

KvCache::KvCache(int64_t n_layers, int64_t n_head_kv, int64_t head_dim, int64_t max_positions)
    : n_head_kv_(n_head_kv), head_dim_(head_dim), max_positions_(max_positions),
      keys_(static_cast<size_t>(std::max<int64_t>(n_layers, 0))), values_(keys_.size()) {}

void KvCache::reserve(int64_t positions) {
  if (positions <= capacity_) return;
  const int64_t capacity = std::min(max_positions_, std::max(capacity_ * 2, (positions + kGrowthStep - 1) / kGrowthStep * kGrowthStep));
  for (size_t l = 0; l < keys_.size(); ++l) {
    for (auto* store : {&keys_[l], &values_[l]}) {
      at::Tensor grown = at::zeros({n_head_kv_, capacity, head_dim_}, at::kFloat);
      if (store->defined()) grown.narrow(1, 0, capacity_).copy_(*store);
      *store = grown;
    }
  }
  capacity_ = capacity;
}

std::pair<at::Tensor, at::Tensor> KvCache::append(int64_t layer, int64_t pos, const at::Tensor& k, const at::Tensor& v) {
  const int64_t T = k.size(1);
  if (pos + T > max_positions_)
    throw std::length_error("sequence of " + std::to_string(pos + T) + " positions exceeds the context length " +
                            std::to_string(max_positions_));
  reserve(pos + T);
  auto& keys = keys_.at(static_cast<size_t>(layer));
  auto& values = values_.at(static_cast<size_t>(layer));
  keys.narrow(1, pos, T).copy_(k);
  values.narrow(1, pos, T).copy_(v);
  if (layer + 1 == static_cast<int64_t>(keys_.size())) n_positions_ = pos + T;
  return {keys.narrow(1, 0, pos + T), values.narrow(1, 0, pos + T)};
}

std::pair<at::Tensor, at::Tensor> KvCache::layer(int64_t layer) const {
  const auto& keys = keys_.at(static_cast<size_t>(layer));
  const auto& values = values_.at(static_cast<size_t>(layer));
  if (!keys.defined()) return {at::zeros({n_head_kv_, 0, head_dim_}), at::zeros({n_head_kv_, 0, head_dim_})};
  return {keys.narrow(1, 0, n_positions_), values.narrow(1, 0, n_positions_)};
}

void KvCache::truncate(int64_t n) { n_positions_ = std::min(n_positions_, std::max<int64_t>(n, 0)); }

size_t KvCache::bytes() const { return keys_.size() * 2 * static_cast<size_t>(n_head_kv_ * capacity_ * head_dim_) * 4; }

}  // namespace troupe
