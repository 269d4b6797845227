#include "models/machine/process_memory.h"

#include <fstream>
#include <string>

namespace troupe {

ProcessMemory process_memory() {
  std::ifstream in("/proc/self/status");
  std::string line;
  ProcessMemory m;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss = std::stoull(line.substr(6)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) m.peak_rss = std::stoull(line.substr(6)) * 1024;
  }
  return m;
}

}  // namespace troupe
