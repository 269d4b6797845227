#include "models/machine/openmp_wait_policy.h"

#include <unistd.h>

#include <cstdlib>

namespace troupe {

void use_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  char self[4096] = {0};
  if (readlink("/proc/self/exe", self, sizeof(self) - 1) > 0) execv(self, argv);
}

}  // namespace troupe
