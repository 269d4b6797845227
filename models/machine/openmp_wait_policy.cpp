#include "models/machine/openmp_wait_policy.h"

#include <unistd.h>

#include <cstdlib>

namespace troupe {

namespace {

// Before any library's initialisers run (the executable's ELF .preinit_array), so before LibTorch
// registers its operators and GNU OpenMP reads its environment: when OMP_WAIT_POLICY is unset,
// execute this program again at once with it set, which costs the libraries' mapping only.
// libc is not initialised yet: no getenv, malloc or stdio; execve is a plain system call.
constexpr const char kPolicyEntry[] = "OMP_WAIT_POLICY=passive";
constexpr int kMaxEnvironment = 4096;  // more entries than this: main's fallback re-executes
char* g_environment[kMaxEnvironment + 2];

bool starts_with(const char* s, const char* prefix) {
  while (*prefix)
    if (*s++ != *prefix++) return false;
  return true;
}

void set_policy_before_libraries_start(int, char** argv, char** env) {
  int n = 0;
  for (; env && env[n]; ++n) {
    if (starts_with(env[n], "OMP_WAIT_POLICY=")) return;  // the user's (or ours, after the exec)
    if (n >= kMaxEnvironment) return;
    g_environment[n] = env[n];
  }
  g_environment[n] = const_cast<char*>(kPolicyEntry);
  g_environment[n + 1] = nullptr;
  execve("/proc/self/exe", argv, g_environment);  // returns only on failure: carry on as before
}

__attribute__((section(".preinit_array"), used)) void (*const kSetPolicyEarly)(int, char**, char**) =
    set_policy_before_libraries_start;

}  // namespace

void use_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  char self[4096] = {0};
  if (readlink("/proc/self/exe", self, sizeof(self) - 1) > 0) execv(self, argv);
}

}  // namespace troupe
