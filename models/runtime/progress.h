#pragma once
// Progress of long work on stderr (through the log): "synth slow.gguf: 45% (120 MiB of 270 MiB,
// 12.3 MiB/s, 12 s left)". Nothing is printed for work that ends within `quiet_for` (2 s by
// default; TROUPE_PROGRESS_AFTER_MS overrides it, 0 shows every step), then at most one line
// a second and a last line at 100%. For synth, perplexity, loading, and anything that reports
// (done, total). Thread-safe.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace troupe {

class Progress {
 public:
  enum class Unit { bytes, count };
  // `what` starts each line; `unit_name` names counted items ("chunks") for Unit::count.
  Progress(std::string what, uint64_t total, Unit unit = Unit::bytes, std::string unit_name = "");
  void update(uint64_t done);
  // Sets the total when it is learnt later (before any update that needs it).
  void set_total(uint64_t total);
  // Prints the 100% line if anything was printed.
  void finish();
  // "45% (120 MiB of 270 MiB, 12.3 MiB/s, 12 s left)" for these numbers (for tests).
  static std::string describe(uint64_t done, uint64_t total, double seconds, Unit unit, const std::string& unit_name);

 private:
  using Clock = std::chrono::steady_clock;
  std::string what_;
  uint64_t total_;
  Unit unit_;
  std::string unit_name_;
  Clock::time_point start_ = Clock::now(), last_print_{};
  std::chrono::milliseconds quiet_for_;
  bool printed_ = false, finished_ = false;
  uint64_t done_ = 0;
  std::mutex mutex_;
};

}  // namespace troupe
