#pragma once
// Keys and values of one sequence for the layers one stage holds. Storage grows in
// steps as the sequence grows (a short chat does not reserve the whole context).
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace troupe {

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t n_head_kv, int64_t head_dim, int64_t max_positions);

  // Stores k, v ([n_head_kv, T, head_dim]) of local layer `layer` at positions
  // [pos, pos+T) and returns views of all keys and values [n_head_kv, pos+T, head_dim].
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, int64_t pos, const at::Tensor& k, const at::Tensor& v);

  // The stored keys and values of local layer `layer` for the positions filled: views
  // [n_head_kv, n_positions(), head_dim] (tests compare caches built in different ways).
  std::pair<at::Tensor, at::Tensor> layer(int64_t layer) const;

  int64_t n_positions() const { return n_positions_; }  // positions filled, as of the last layer written
  int64_t max_positions() const { return max_positions_; }
  void truncate(int64_t n);  // forget positions >= n (replay, rewinds)
  size_t bytes() const;

 private:
  void reserve(int64_t positions);

  int64_t n_head_kv_, head_dim_, max_positions_;
  int64_t capacity_ = 0;
  int64_t n_positions_ = 0;
  std::vector<at::Tensor> keys_, values_;  // per local layer: [n_head_kv, capacity, head_dim]
};

}  // namespace troupe
