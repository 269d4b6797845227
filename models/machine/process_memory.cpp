#include "models/machine/process_memory.h"

#include <malloc.h>

#include <fstream>
#include <string>

namespace troupe {

namespace {

// The "Key:   123 kB" lines of a /proc file, in bytes.
uint64_t kib_field(const std::string& line, const char* key) {
  const std::string k(key);
  if (line.rfind(k, 0) != 0) return 0;
  return std::stoull(line.substr(k.size())) * 1024;
}

}  // namespace

ProcessMemory process_memory() {
  std::ifstream in("/proc/self/status");
  std::string line;
  ProcessMemory m;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss = kib_field(line, "VmRSS:");
    if (line.rfind("VmHWM:", 0) == 0) m.peak_rss = kib_field(line, "VmHWM:");
  }
  return m;
}

MemoryBreakdown memory_breakdown() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  MemoryBreakdown m;
  while (std::getline(in, line)) {
    if (line.rfind("Rss:", 0) == 0) m.rss = kib_field(line, "Rss:");
    if (line.rfind("Pss:", 0) == 0) m.pss = kib_field(line, "Pss:");
    if (line.rfind("Anonymous:", 0) == 0) m.anonymous = kib_field(line, "Anonymous:");
  }
  if (m.rss == 0) m.rss = process_memory().rss;  // no smaps_rollup (kernel < 4.14)
  return m;
}

uint64_t release_free_heap() {
  const uint64_t before = process_memory().rss;
  malloc_trim(0);
  const uint64_t after = process_memory().rss;
  return before > after ? before - after : 0;
}

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace troupe
