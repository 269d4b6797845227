#pragma once
// What a stage's node can tell of the stage's work while the stage's own thread is busy
// computing: whether a forward pass is running, and how many layers it has computed so far.
// The supervisor's progress probe asks the node (proto::progress_atom), so a long prefill
// that keeps computing layers is never taken for a stuck stage, and a frozen one is.
#include <atomic>
#include <cstdint>

namespace troupe {

struct StageWork {
  std::atomic<bool> busy{false};      // a forward pass is running
  std::atomic<uint64_t> layers{0};    // layers computed since the stage was loaded
};

}  // namespace troupe
