#include "models/machine/speed_probe.h"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

namespace troupe {

namespace {

ProbedFigure summarise(std::vector<double> v, double agree) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  ProbedFigure f;
  f.rounds = static_cast<int32_t>(n);
  f.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  f.spread = f.median > 0 ? (v[n - 1 - n / 4] - v[n / 4]) / f.median : 0;
  f.uncertain = f.spread > agree;
  return f;
}

}  // namespace

ProbedFigure probe_repeatedly(const std::function<double()>& once, const ProbeSchedule& s) {
  const uint64_t seed = s.seed ? s.seed
                               : static_cast<uint64_t>(::getpid()) * 0x9E3779B97F4A7C15ULL ^
                                   static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> gap(0, std::max<int64_t>(0, s.max_gap.count()));
  std::vector<double> results;
  const auto start = std::chrono::steady_clock::now();
  for (int32_t round = 0; round < std::max(1, s.max_rounds); ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(gap(rng)));
    if (s.keep_going && !s.keep_going()) break;
    results.push_back(once());
    const int32_t n = static_cast<int32_t>(results.size());
    if (n < std::max(1, s.min_rounds)) continue;
    const bool over_budget = std::chrono::steady_clock::now() - start > s.budget;
    if (over_budget || (n >= s.rounds && !summarise(results, s.agree).uncertain)) break;
  }
  if (results.empty()) return ProbedFigure{};
  return summarise(results, s.agree);
}

}  // namespace troupe
