#pragma once
// This process's resident memory, as the kernel counts it (/proc/self/status, smaps_rollup),
// and giving freed heap back to it.
#include <cstdint>

namespace troupe {

struct ProcessMemory {
  uint64_t rss = 0;       // VmRSS: resident now
  uint64_t peak_rss = 0;  // VmHWM: the most resident so far (since the start, or reset_peak_rss)
};

ProcessMemory process_memory();

// What the resident memory is made of (/proc/self/smaps_rollup; zeros where it cannot be read).
// `anonymous` is the process's own (heap, stacks, the libraries' relocated data); the rest of
// `rss` is pages of mapped files (mostly shared library code), which other processes share
// and the kernel can drop and read again, so an idle daemon's real cost is `anonymous`.
struct MemoryBreakdown {
  uint64_t rss = 0;
  uint64_t pss = 0;        // rss with each shared page divided among the processes mapping it
  uint64_t anonymous = 0;  // heap, stacks, thread arenas, copied-on-write library data
  uint64_t file() const { return rss > anonymous ? rss - anonymous : 0; }
};

MemoryBreakdown memory_breakdown();

// Returns the heap's free pages to the kernel (malloc_trim): a probe or a stage that allocated
// and freed many small blocks leaves them resident otherwise. Returns the bytes RSS fell by.
uint64_t release_free_heap();

// Starts VmHWM again from the RSS of now (Linux >= 4.0; false where not allowed), so that the
// peak of one piece of work can be told apart from an earlier one's.
bool reset_peak_rss();

}  // namespace troupe
