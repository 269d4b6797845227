#pragma once
// How the OpenMP threads that LibTorch (and so every matmul task split) uses wait between
// parallel regions. GNU OpenMP's default spins for a long time; on a laptop where anything else
// wants a core (a browser, another stage, another node), the spinning team members starve the
// thread that holds the work: measured here with one busy process beside `troupe bench`
// (TinyLlama Q4_0, 2 threads), decode took 98-1168 ms per token spinning and 78-85 asleep
// ("passive"); on an idle machine passive costs ~10% (the wake-up of each region).
// The runtime reads the policy once, when it loads, before main: so the program re-executes
// itself with OMP_WAIT_POLICY=passive set. A policy the user set is kept.

namespace troupe {

// Call first thing in main. Returns only when the policy is already set or the re-exec failed
// (then the program carries on with the default policy).
void use_passive_openmp_wait(char** argv);

}  // namespace troupe
