#pragma once
// A node's measured compute speed, for the placement planner: a short fp32 matmul
// benchmark run once when a caf-node starts (about a quarter of a second).
namespace troupe {

// GFLOP/s of LibTorch fp32 matmul on `threads` threads (the stage's own thread count).
// The best of `reps` timed products after a warm-up one.
double measure_matmul_gflops(int threads, int reps = 5);

}  // namespace troupe
