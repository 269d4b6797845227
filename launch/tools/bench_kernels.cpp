// bench_kernels: how close the matrix-vector kernels of models/quant_matmul.h come to the
// machine's memory bandwidth, on TinyLlama-sized matrices.
//
// A decode step reads every weight once, so a matvec kernel is as fast as it streams the
// weight bytes: GB/s = weight bytes / time. The weights are cycled through enough copies
// (>= 256 MiB) that they come from DRAM, not the L3 cache, as in a real model. The memory
// bandwidth is measured with a 1 GiB memcpy (reported as bytes read + written per second, as
// STREAM's Copy counts it) and with a read-only sum (what a matvec does).
// A second table gives the batched (prefill) throughput of the direct kernels against the
// fp32-tile + BLAS path, from which quant_matmul.cpp's thresholds are chosen.
//
//   bench_kernels [--quick] [--no-batched] [--batched-only] [--cpu-time] [--types q4_0,q4_k,...] [--ts 1,4,...]
//                 [--in-cache] [--shape ROWSxCOLS] [--min-seconds S]
// --in-cache: the batched table on one 256 x 2048 matrix (Q6_K: 420 KB, it stays in L2), to see
// the kernels' arithmetic without the DRAM stream.
// --shape: the batched table on a ROWS x COLS matrix instead of TinyLlama's ffn_up (5632 x 2048),
// e.g. 2048x5632 (ffn_down) or 4096x4096 (LLaMA-2-7B's attention).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "models/machine/memory_bandwidth.h"
#include "models/machine/runqueue_wait.h"
#include "models/quant/quant_formats.h"
#include "models/quant/quant_matmul.h"
#include "models/quant/type_traits.h"

namespace {

using troupe::DType;
using troupe::KernelIsa;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// --cpu-time: the batched table on one thread, timed by the thread's CPU time (on a machine
// shared with other work, wall time measures the neighbours more than the kernel).
bool g_cpu_time = false;
// Products per timed pass (at least one per copy): a pass over one cached matrix is too short
// for the thread CPU clock.
size_t g_pass_calls = 1;

std::string dtype_str(DType t) { return troupe::dtype_name(static_cast<uint32_t>(t)); }

// ---- matrices ------------------------------------------------------------------------------

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(gen);
  return v;
}

// `copies` identical copies of one matrix in `dtype`, so that cycling through them reads DRAM.
struct Copies {
  DType dtype;
  int64_t rows, cols;
  size_t bytes_each;
  std::vector<std::vector<uint8_t>> data;

  troupe::PackedMatrix packed(size_t i) const { return {dtype, rows, cols, data[i].data()}; }
};

Copies make_copies(DType dtype, int64_t rows, int64_t cols, const std::vector<float>& values, size_t min_total) {
  Copies c{dtype, rows, cols, troupe::dtype_row_bytes(dtype, cols) * static_cast<size_t>(rows), {}};
  const size_t n = std::max<size_t>(1, (min_total + c.bytes_each - 1) / c.bytes_each);
  c.data.emplace_back(c.bytes_each);
  troupe::quantize(dtype, values.data(), c.data[0].data(), rows * cols);
  for (size_t i = 1; i < n; ++i) c.data.push_back(c.data[0]);
  return c;
}

// Weight bytes per second of y = x W^T with T activation rows, cycling through the copies.
double weight_rate(const Copies& w, int64_t T, double min_seconds) {
  const at::Tensor x = at::randn({T, w.cols});
  at::Tensor y = at::empty({T, w.rows});
  std::vector<at::Tensor> f32;  // the F32 path is at::linear on the mapped tensor
  if (w.dtype == DType::F32)
    for (const auto& d : w.data) f32.push_back(at::from_blob(const_cast<uint8_t*>(d.data()), {w.rows, w.cols}));
  auto once = [&](size_t i) {
    if (w.dtype == DType::F32)
      y = at::linear(x, f32[i]);
    else
      troupe::packed_matmul(w.packed(i), x.data_ptr<float>(), T, nullptr, y.data_ptr<float>());
  };
  for (size_t i = 0; i < w.data.size(); ++i) once(i);  // warm-up: page in, wake threads
  double best = 0;
  const auto start = Clock::now();
  size_t i = 0;
  do {  // best of passes over all copies
    const auto t0 = Clock::now();
    const double c0 = troupe::thread_cpu_seconds();
    const size_t calls = std::max(g_pass_calls, w.data.size());
    for (size_t k = 0; k < calls; ++k) once(i++ % w.data.size());
    const double took = g_cpu_time ? troupe::thread_cpu_seconds() - c0 : seconds_since(t0);
    best = std::max(best, static_cast<double>(w.bytes_each * calls) / took);
  } while (seconds_since(start) < min_seconds);
  return best;
}

struct Shape {
  const char* what;
  int64_t rows, cols;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, batched = true, matvec = true, in_cache = false;
  Shape batched_shape{"ffn_up", 5632, 2048};
  double min_seconds = 0.5;
  std::vector<DType> only;  // --types: the block types of both tables
  std::vector<int64_t> only_ts;  // --ts: its batch sizes
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--no-batched") {
      batched = false;
    } else if (a == "--batched-only") {
      matvec = false;
    } else if (a == "--in-cache") {
      in_cache = true;
      g_pass_calls = 256;
    } else if (a == "--cpu-time") {
      g_cpu_time = true;
    } else if (a == "--types" && i + 1 < argc) {
      std::string list = argv[++i];
      for (size_t start = 0; start <= list.size();) {
        const size_t comma = std::min(list.find(',', start), list.size());
        only.push_back(troupe::parse_type_name(list.substr(start, comma - start)));
        start = comma + 1;
      }
    } else if (a == "--ts" && i + 1 < argc) {
      std::string list = argv[++i];
      for (size_t start = 0; start <= list.size();) {
        const size_t comma = std::min(list.find(',', start), list.size());
        only_ts.push_back(std::stoll(list.substr(start, comma - start)));
        start = comma + 1;
      }
    } else if (a == "--shape" && i + 1 < argc) {
      const std::string shape = argv[++i];
      long long rows = 0, cols = 0;
      char end = 0;
      const bool parsed = std::sscanf(shape.c_str(), "%lldx%lld%c", &rows, &cols, &end) == 2;
      if (!parsed || rows <= 0 || cols <= 0 || cols % 256 != 0) {
        std::fprintf(stderr, "--shape: ROWSxCOLS with COLS a multiple of 256 (every block size), not %s\n", shape.c_str());
        return 2;
      }
      batched_shape = {"shape", rows, cols};
    } else if (a == "--min-seconds" && i + 1 < argc) {
      min_seconds = std::stod(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--no-batched] [--batched-only] [--cpu-time] [--types q4_0,q4_k,...] [--ts 1,4,...] [--in-cache] [--shape ROWSxCOLS] [--min-seconds S]\n",
                   argv[0]);
      return 2;
    }
  }
  const size_t gib = size_t{1} << 30;
  const size_t min_total = quick ? 64 << 20 : 256 << 20;

  std::printf("kernels: best instruction set %s; %u hardware threads\n\n",
              troupe::kernel_isa_name(troupe::best_kernel_isa()), std::thread::hardware_concurrency());
  struct Bandwidth {
    double copy = 0, read = 0;
  } bw[3];
  for (int threads : {1, 2}) {
    if (!matvec) break;
    const auto m = troupe::measure_memory_bandwidth(threads, quick ? gib / 4 : gib);
    bw[threads] = {m.copy_bytes_per_s, m.read_bytes_per_s};
    std::printf("memory, %d thread%s: memcpy %.1f GB/s read+written (%.1f GB/s copied), read-only sum %.1f GB/s\n",
                threads, threads > 1 ? "s" : "", bw[threads].copy / 1e9, bw[threads].copy / 2e9, bw[threads].read / 1e9);
  }

  std::vector<KernelIsa> isas;
  for (KernelIsa isa : {KernelIsa::portable, KernelIsa::avx2, KernelIsa::avx512vnni})
    if (troupe::kernel_isa_supported(isa) && (isa != KernelIsa::portable || !quick)) isas.push_back(isa);

  const Shape shapes[] = {{"ffn_down", 2048, 5632}, {"ffn_up", 5632, 2048}, {"output", 32000, 2048}};
  std::printf("\nmatrix-vector (T = 1): weight bytes streamed per second; ratio to memcpy (read+written) | to read-only\n");
  std::printf("%-22s %-6s %-10s %9s | %8s %6s %6s | %8s %6s %6s\n", "W [rows x cols]", "type", "kernels", "MiB",
              "1 thr", "copy", "read", "2 thr", "copy", "read");
  for (const Shape& s : shapes) {
    if (!matvec) break;
    const std::vector<float> values = random_values(s.rows * s.cols, 1);
    std::vector<DType> types = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0};
    if (!only.empty()) types = only;  // --types: these in the matrix-vector table too
    for (DType dtype : types) {
      const Copies w = make_copies(dtype, s.rows, s.cols, values, min_total);
      const std::vector<KernelIsa> kernels = dtype == DType::F32 ? std::vector<KernelIsa>{KernelIsa::portable} : isas;
      for (KernelIsa isa : kernels) {
        troupe::force_kernel_isa(isa);
        double rate[3];
        for (int threads : {1, 2}) {
          at::set_num_threads(threads);
          rate[threads] = weight_rate(w, 1, min_seconds);
        }
        const std::string name = std::string(s.what) + " " + std::to_string(s.rows) + "x" + std::to_string(s.cols);
        std::printf("%-22s %-6s %-10s %9.1f | %8.1f %5.0f%% %5.0f%% | %8.1f %5.0f%% %5.0f%%\n", name.c_str(),
                    dtype_str(dtype).c_str(), dtype == DType::F32 ? "at::linear" : troupe::kernel_isa_name(isa),
                    w.bytes_each / 1048576.0, rate[1] / 1e9, 100 * rate[1] / bw[1].copy, 100 * rate[1] / bw[1].read,
                    rate[2] / 1e9, 100 * rate[2] / bw[2].copy, 100 * rate[2] / bw[2].read);
        std::fflush(stdout);
      }
    }
  }
  troupe::reset_kernel_isa();

  if (batched) {
    // Prefill: time per product of T rows, direct kernels vs fp32 tiles + BLAS, 2 threads.
    at::set_num_threads(g_cpu_time ? 1 : 2);
    const int64_t never = std::numeric_limits<int64_t>::max();
    const Shape s = in_cache ? Shape{"cached", 256, 2048} : batched_shape;
    const std::vector<float> values = random_values(s.rows * s.cols, 2);
    std::printf("\nbatched, W %ldx%ld, %d threads: GFLOP/s (2 T rows cols / time), direct kernels | fp32 tiles + BLAS\n",
                static_cast<long>(s.rows), static_cast<long>(s.cols), at::get_num_threads());
    std::vector<int64_t> Ts = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    if (!only_ts.empty()) Ts = only_ts;
    std::printf("%-17s", "type");
    for (int64_t T : Ts) std::printf(" %13s", ("T=" + std::to_string(T)).c_str());
    std::printf("\n");
    std::vector<std::pair<DType, KernelIsa>> rows = {
        {DType::F32, KernelIsa::portable}, {DType::F16, KernelIsa::avx2},  {DType::BF16, KernelIsa::avx2},
        {DType::Q8_0, KernelIsa::avx2},    {DType::Q4_0, KernelIsa::avx2}, {DType::Q4_K, KernelIsa::avx2},
        {DType::Q5_K, KernelIsa::avx2},    {DType::Q6_K, KernelIsa::avx2}, {DType::Q2_K, KernelIsa::avx2}};
    if (troupe::kernel_isa_supported(KernelIsa::avx512vnni))
      rows.insert(rows.begin() + 5, {{DType::Q8_0, KernelIsa::avx512vnni}, {DType::Q4_0, KernelIsa::avx512vnni}});
    if (!only.empty()) {
      rows.clear();
      for (DType t : only) rows.push_back({t, KernelIsa::avx2});
    }
    for (auto [dtype, isa] : rows) {
      if (!troupe::kernel_isa_supported(isa)) isa = KernelIsa::portable;
      troupe::force_kernel_isa(isa);
      const Copies w = make_copies(dtype, s.rows, s.cols, values, in_cache ? 0 : quick ? 32 << 20 : 128 << 20);
      std::printf("%-17s", (dtype_str(dtype) + " " + (dtype == DType::F32 ? "at::linear" : troupe::kernel_isa_name(isa))).c_str());
      for (int64_t T : Ts) {
        double flops[2];
        for (int path = 0; path < 2; ++path) {
          troupe::set_matmul_thresholds(path == 0 ? troupe::MatmulThresholds{never, never}
                                                  : troupe::MatmulThresholds{1, 1});
          const double rate = weight_rate(w, T, min_seconds / 4);  // weight bytes / s
          flops[path] = rate / static_cast<double>(w.bytes_each) * 2.0 * T * s.rows * s.cols;
        }
        if (dtype == DType::F32)
          std::printf(" %13.1f", flops[0] / 1e9);
        else
          std::printf(" %6.1f|%6.1f", flops[0] / 1e9, flops[1] / 1e9);
        std::fflush(stdout);
      }
      std::printf("\n");
    }
    troupe::reset_kernel_isa();
    troupe::reset_matmul_thresholds();
  }
  return 0;
}
