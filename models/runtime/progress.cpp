#include "models/runtime/progress.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdlib>

#include "models/runtime/byte_size.h"

namespace troupe {

namespace {
std::chrono::milliseconds quiet_period() {
  if (const char* env = std::getenv("TROUPE_PROGRESS_AFTER_MS")) return std::chrono::milliseconds(std::atol(env));
  return std::chrono::seconds(2);
}

std::string amount(double v, Progress::Unit unit, const std::string& name) {
  if (unit == Progress::Unit::bytes) return format_size(static_cast<uint64_t>(std::max(0.0, v)));
  return fmt::format("{:.0f}{}{}", v, name.empty() ? "" : " ", name);
}

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(std::ceil(seconds));
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{} min {:02} s", s / 60, s % 60);
  return fmt::format("{} h {:02} min", s / 3600, (s % 3600) / 60);
}
}  // namespace

Progress::Progress(std::string what, uint64_t total, Unit unit, std::string unit_name)
    : what_(std::move(what)), total_(total), unit_(unit), unit_name_(std::move(unit_name)), quiet_for_(quiet_period()) {}

std::string Progress::describe(uint64_t done, uint64_t total, double seconds, Unit unit, const std::string& unit_name) {
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  const double percent = total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 0;
  std::string s = fmt::format("{:.0f}% ({} of {}", std::floor(percent), amount(static_cast<double>(done), unit, ""),
                              amount(static_cast<double>(total), unit, unit_name));
  if (rate > 0) {
    s += ", " + amount(rate, unit, unit == Unit::count ? unit_name : "") + "/s";
    if (done < total) s += ", " + duration(static_cast<double>(total - done) / rate) + " left";
  }
  return s + ")";
}

void Progress::set_total(uint64_t total) {
  std::lock_guard<std::mutex> lock(mutex_);
  total_ = total;
}

void Progress::update(uint64_t done) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ = done;
  const auto now = Clock::now();
  if (finished_ || now - start_ < quiet_for_) return;
  if (printed_ && now - last_print_ < std::chrono::seconds(1) && quiet_for_.count() > 0) return;
  printed_ = true;
  last_print_ = now;
  spdlog::info("{}: {}", what_, describe(done, total_, std::chrono::duration<double>(now - start_).count(), unit_, unit_name_));
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (!printed_) return;
  spdlog::info("{}: {}", what_,
               describe(total_, total_, std::chrono::duration<double>(Clock::now() - start_).count(), unit_, unit_name_));
}

}  // namespace troupe
