#include "models/runtime/prompt_lookup.h"

#include <algorithm>

namespace troupe {

std::vector<int32_t> prompt_lookup_draft(const std::vector<int32_t>& history, int32_t max_draft,
                                         const PromptLookup& lookup) {
  const int64_t n = static_cast<int64_t>(history.size());
  if (max_draft <= 0) return {};
  for (int64_t len = std::min<int64_t>(lookup.max_ngram, n - 1); len >= std::max(1, lookup.min_ngram); --len) {
    const auto suffix = history.end() - len;
    // The latest occurrence that ends before the suffix itself starts to overlap the end.
    for (int64_t start = n - len - 1; start >= 0; --start) {
      if (!std::equal(suffix, history.end(), history.begin() + start)) continue;
      const int64_t from = start + len;
      const int64_t count = std::min<int64_t>(max_draft, n - from);
      return std::vector<int32_t>(history.begin() + from, history.begin() + from + count);
    }
  }
  return {};
}

}  // namespace troupe
