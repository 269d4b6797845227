#pragma once
// Sizes as people write them ("6G", "512M", "4096") and as troupe prints them. Units are
// binary, as `free -h` counts: 1K = 1024 bytes, 1M = 1024K, 1G = 1024M, 1T = 1024G; "GB" and
// "GiB" are accepted as spellings of "G". Used by the cluster file, `troupe plan --assume`
// and caf-node's --memory-limit.
#include <cstdint>
#include <string>

namespace troupe {

// "4096", "512M", "6G", "1.5GiB", "8 GB" (case-insensitive). Throws std::invalid_argument
// quoting the text and giving examples when it is not a size.
uint64_t parse_size(const std::string& text);

// "3.53 GiB", "640 MiB", "12 KiB", "100 B": three significant figures at most.
std::string format_size(uint64_t bytes);

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = 1024.0 * kMiB;

}  // namespace troupe
