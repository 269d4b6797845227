#pragma once
// Turns any exception of a command into one clear line on stderr and exit code 1.
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace troupe::cli {

template <typename F>
void run_reporting_errors(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "troupe: error: %s\n", e.what());
    std::exit(1);
  }
}

}  // namespace troupe::cli
