#pragma once
// This process's resident memory, as the kernel counts it (/proc/self/status).
#include <cstdint>

namespace troupe {

struct ProcessMemory {
  uint64_t rss = 0;       // VmRSS: resident now
  uint64_t peak_rss = 0;  // VmHWM: the most resident so far
};

ProcessMemory process_memory();

}  // namespace troupe
