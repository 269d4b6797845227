#pragma once
// How long this process's threads have waited for a core: the time a neighbour took from them.
// A speed probe takes it out of its wall time, so a machine whose cores another program (another
// caf-node starting beside it, a compiler) holds for a moment does not look slower than it is.
// And the time the calling thread has run, which a neighbour does not add to.

namespace troupe {

// Seconds that the threads of this process have spent runnable but not running, summed over the
// threads alive now (the kernel's schedstat, /proc/self/task/*/schedstat); 0 where the kernel
// does not report it.
double runqueue_wait_seconds();

// CPU seconds the calling thread has run (CLOCK_THREAD_CPUTIME_ID).
double thread_cpu_seconds();

}  // namespace troupe
