#include "models/machine/runqueue_wait.h"

#include <dirent.h>
#include <time.h>

#include <fstream>
#include <string>

namespace troupe {

double runqueue_wait_seconds() {
  DIR* tasks = opendir("/proc/self/task");
  if (!tasks) return 0;
  double waited_ns = 0;
  while (const dirent* e = readdir(tasks)) {
    if (e->d_name[0] == '.') continue;
    // "<ns on a core> <ns waiting for one> <time slices>"
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/schedstat");
    double running = 0, waiting = 0;
    if (in >> running >> waiting) waited_ns += waiting;
  }
  closedir(tasks);
  return waited_ns * 1e-9;
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

}  // namespace troupe
