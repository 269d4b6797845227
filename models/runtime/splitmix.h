#pragma once
// splitmix64: a well-mixed 64-bit value from any 64-bit input. Used where a value must
// be reproducible from (seed, index) alone: sampling draws, synthetic weights.
#include <cstdint>

namespace troupe {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace troupe
