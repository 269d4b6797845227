// libtroupe_stage_runtime.so: the stage runtime caf-node opens on first use
// (actors/stage_runtime_module.h). Everything LibTorch-bound a node does goes through here.
#include <ATen/Parallel.h>

#include <cstring>

#include "actors/linked_stage_runtime.h"
#include "actors/stage_runtime_module.h"

extern "C" __attribute__((visibility("default"))) bool troupe_stage_runtime_v1(troupe::StageRuntime* out, int threads,
                                                                               const char* layout) {
  static_assert(std::is_same_v<decltype(&troupe_stage_runtime_v1), troupe::StageRuntimeEntry>);
  if (std::strcmp(layout, troupe::stage_runtime_layout().c_str()) != 0) return false;
  at::set_num_threads(threads);
  *out = troupe::linked_stage_runtime();
  return true;
}
