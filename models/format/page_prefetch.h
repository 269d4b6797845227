#pragma once
// Reading a stage's mapped weights into memory before the first token needs them. Weights
// point into the mapped model file, so without this the first request would wait on the
// disk (minutes for a 4 GB stage on a slow laptop disk) with nothing to show for it.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace troupe {

struct MemoryRange {
  const void* data = nullptr;
  size_t bytes = 0;
};

// Touches every page of `ranges` (after asking the kernel to read ahead), calling
// on_progress(bytes_done, bytes_total) at the start, about every `step` bytes, and at the end.
void prefetch_pages(const std::vector<MemoryRange>& ranges,
                    const std::function<void(uint64_t done, uint64_t total)>& on_progress,
                    uint64_t step = 64ull << 20);

}  // namespace troupe
