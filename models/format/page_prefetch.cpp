#include "models/format/page_prefetch.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

namespace troupe {

void prefetch_pages(const std::vector<MemoryRange>& ranges,
                    const std::function<void(uint64_t done, uint64_t total)>& on_progress, uint64_t step) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uint64_t total = 0, done = 0, reported = 0;
  for (const auto& r : ranges) total += r.bytes;
  if (on_progress) on_progress(0, total);
  for (const auto& r : ranges) {
    const auto begin = reinterpret_cast<uintptr_t>(r.data);
    // Read-ahead hint for the whole range (page-aligned); a range in anonymous memory is
    // already resident and the hint is harmless.
    const uintptr_t aligned = begin & ~(page - 1);
    madvise(reinterpret_cast<void*>(aligned), begin + r.bytes - aligned, MADV_WILLNEED);
    for (uint64_t offset = 0; offset < r.bytes;) {
      const uint64_t chunk = std::min<uint64_t>(r.bytes - offset, step);
      volatile const uint8_t* p = static_cast<const uint8_t*>(r.data) + offset;
      uint8_t sink = 0;
      for (uint64_t i = 0; i < chunk; i += page) sink ^= p[i];
      sink ^= p[chunk - 1];
      (void)sink;
      offset += chunk;
      done += chunk;
      if (on_progress && done - reported >= step) {
        on_progress(done, total);
        reported = done;
      }
    }
  }
  if (on_progress && reported != total) on_progress(total, total);
}

}  // namespace troupe
