#pragma once
// How fast this machine computes and streams memory, as a caf-node reports it to planners:
// both speed probes, repeated and summarised (speed_probe.h), then the heap they used given
// back, so that a process that goes on after measuring does not keep the probes' buffers
// resident. (caf-node measures in a child process: launch/caf_node/speed_probe_process.h.)
#include <cstdint>
#include <functional>

#include "models/machine/speed_probe.h"

namespace troupe {

struct MachineSpeed {
  ProbedFigure gflops;    // fp32 matmul on the stage's thread count
  ProbedFigure mem_gbps;  // streaming read, GB/s
  bool complete = true;   // false: keep_going said stop before every round was taken
  double spread() const { return gflops.spread > mem_gbps.spread ? gflops.spread : mem_gbps.spread; }
  bool uncertain() const { return gflops.uncertain || mem_gbps.uncertain; }
};

// Runs both probes on `threads` threads. `keep_going` (may be empty) is asked before each round;
// once it says false the probes stop and the result is incomplete (a re-probe that work
// interrupted: its figures would be the work's, not the machine's).
MachineSpeed probe_machine_speed(int threads, const ProbeSchedule& schedule = {},
                                 const std::function<bool()>& keep_going = {});

}  // namespace troupe
