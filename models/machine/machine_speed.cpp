#include "models/machine/machine_speed.h"

#include "models/machine/compute_speed.h"
#include "models/machine/memory_bandwidth.h"
#include "models/machine/process_memory.h"

namespace troupe {

MachineSpeed probe_machine_speed(int threads, const ProbeSchedule& schedule, const std::function<bool()>& keep_going) {
  MachineSpeed s;
  ProbeSchedule each = schedule;
  each.keep_going = keep_going;
  s.gflops = probe_repeatedly([&] { return measure_matmul_gflops(threads, 1); }, each);
  if (!keep_going || keep_going())
    s.mem_gbps = probe_repeatedly(
      [&] { return measure_memory_bandwidth(threads, size_t(64) << 20).read_bytes_per_s / 1e9; }, each);
  s.complete = (!keep_going || keep_going()) && s.gflops.rounds > 0 && s.mem_gbps.rounds > 0;
  // The probes' tensors and buffers were freed, but the heap keeps freed small blocks (and the
  // matmul's 4 MiB tensors sit below glibc's grown mmap threshold): ~18 MiB resident otherwise.
  release_free_heap();
  return s;
}

}  // namespace troupe
