#pragma once
// caf-node's stage runtime (actors/stage_runtime.h) as a shared module,
// libtroupe_stage_runtime.so (built from actors/runtime_module/), opened when the node first
// sizes or spawns a stage. Until then the daemon has not loaded LibTorch at all (an idle
// caf-node holds ~30 MiB instead of ~170), and a machine that never hosts a stage never will.
#include <string>

#include "actors/stage_runtime.h"

namespace troupe {

constexpr const char* kStageRuntimeModule = "libtroupe_stage_runtime.so";

// Where a program in `exe_dir` finds the module: beside it (a build tree), else in
// ../lib/troupe (an installed tree). "" when in neither.
std::string find_stage_runtime_module(const std::string& exe_dir);

// Opens the module now and returns its runtime, setting LibTorch's default thread count to
// `threads`. Throws a std::runtime_error naming the module when it cannot be opened, or was
// built from other sources than this program.
StageRuntime open_stage_runtime_module(const std::string& path, int threads);

// A runtime whose stage_bytes and spawn_stage open the module at `path` on their first call
// (open_stage_runtime_module; what it throws, they throw). Its probe_speed is
// `probe_speed` as given: the module is not opened to measure the machine.
StageRuntime stage_runtime_module(const std::string& path, int threads,
                                  std::function<MachineSpeed(int, const std::function<bool()>&)> probe_speed);

// What the module exports (actors/runtime_module/stage_runtime_entry.cpp): fills `out` with
// its linked runtime after setting LibTorch's threads. Returns false when `layout` is not the
// module's own (a module from another build).
using StageRuntimeEntry = bool (*)(StageRuntime* out, int threads, const char* layout);
constexpr const char* kStageRuntimeEntry = "troupe_stage_runtime_v1";

// The sizes of the types that cross between caf-node and the module, as text: equal on both
// sides when both were built from the same sources.
std::string stage_runtime_layout();

}  // namespace troupe
