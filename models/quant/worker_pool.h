#pragma once
// The threads that run troupe's own parallel loops (parallel_range): kept apart from OpenMP, so
// that they wait between loops the way a token's many short loops need.
#include <cstdint>
#include <functional>

namespace troupe {

// run(threads, chunks, f): f(c) for every chunk c in [0, chunks), on the calling thread and up to
// threads - 1 pool threads, each taking the next chunk while any remain. Returns when all are done,
// rethrowing the first exception an f threw.
//
// Why not OpenMP's team: a decode step runs ~7 short loops per layer. OpenMP either spins between
// them without end (its default: a neighbour that wants a core, such as a browser or another
// stage, starves the thread holding the work) or sleeps at once (OMP_WAIT_POLICY=passive: every
// loop pays a futex wake-up, 5-15% of a token). A pool thread spins for a short while after a
// loop, yielding its core to anyone else who wants it, and then sleeps.
//
// A pool thread that is slow to come (asleep, or off its core) does not hold a loop up: the caller
// takes the chunks it has not, and returns as soon as the threads that did join are done.
// One loop at a time: a second thread calling run while a loop is in flight runs its chunks alone
// (the cores are busy with the first). So does a call from inside a chunk.
void run_on_worker_pool(int threads, int64_t chunks, const std::function<void(int64_t)>& f);

}  // namespace troupe
