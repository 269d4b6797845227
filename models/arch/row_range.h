#pragma once
// Rows [first, first + count) of a tensor of stacked rows: one sequence's share of a batch.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace troupe {

struct RowRange {
  int64_t first = 0;
  int64_t count = 0;
  at::Tensor of(const at::Tensor& x) const { return x.narrow(0, first, count); }
};

using RowGroups = std::vector<RowRange>;  // how a stacked tensor's rows divide into sequences

}  // namespace troupe
