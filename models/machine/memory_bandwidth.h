#pragma once
// How fast this machine streams memory, measured on the spot: the bound that decoding
// (which reads every weight once per token) cannot beat.
#include <cstddef>

namespace troupe {

struct MemoryBandwidth {
  double copy_bytes_per_s = 0;  // memcpy: bytes read + written per second
  double read_bytes_per_s = 0;  // a streaming sum: bytes read per second (what decoding does)
};

// Runs on `threads` threads over buffers of `bytes` (large enough to defeat the caches).
MemoryBandwidth measure_memory_bandwidth(int threads, size_t bytes = size_t(512) << 20);

}  // namespace troupe
