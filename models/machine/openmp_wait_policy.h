#pragma once
// How LibTorch's OpenMP threads wait between parallel regions. troupe's own loops run on its
// worker pool (models/quant/worker_pool.h); LibTorch's team still runs a prompt's large
// element-wise operators. GNU OpenMP's default spins for a long time after each region; on a
// laptop where anything else wants a core (a browser, another stage, another node), spinning
// threads starve the thread that holds the work (one busy process beside `troupe bench`,
// TinyLlama Q4_0, 2 threads: 98-1168 ms per token spinning, 78-85 asleep, "passive").
// The runtime reads the policy once, when it initialises, before main. So a program that links
// this file executes itself again with OMP_WAIT_POLICY=passive set, from the executable's
// .preinit_array: before any library's initialisers run, so the second start costs only the
// mapping of the libraries. A policy the user set is kept.

namespace troupe {

// Call first thing in main (it also links the early re-exec into the program). When the early
// re-exec could not run (an environment of over 4096 variables, no /proc), executes the program
// again from here, at the cost of a second LibTorch start. Returns only when the policy is set or
// the re-exec failed (then the program carries on with the default policy).
void use_passive_openmp_wait(char** argv);

}  // namespace troupe
