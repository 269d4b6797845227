#pragma once
// The machine's speed, measured in a child process: `caf-node --probe-speed THREADS` opens the
// stage runtime (the compute probe is a LibTorch matmul), measures, prints one line and exits,
// so the daemon itself loads LibTorch only once it hosts a stage. Used at start and for the
// re-probes of an idle node (--reprobe-idle).
#include <functional>
#include <optional>
#include <string>

#include "models/machine/machine_speed.h"

namespace troupe {

// The child's side: what it prints (one line), and what the parent reads back.
std::string format_machine_speed(const MachineSpeed& s);
std::optional<MachineSpeed> parse_machine_speed(const std::string& text);

// Runs `exe --probe-speed threads` and returns its figures. keep_going (may be empty) is asked
// every 50 ms: once it says false the child is killed and the result is incomplete, as
// probe_machine_speed's would be. Throws std::runtime_error when the child fails or prints no
// figures within a minute (its standard error goes to this process's).
MachineSpeed probe_speed_in_child(const std::string& exe, int threads, const std::function<bool()>& keep_going);

}  // namespace troupe
