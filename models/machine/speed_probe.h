#pragma once
// A speed figure the planner can trust: one measurement is repeated in rounds spread over a
// random stagger, and summarised by the median. A neighbour that starts at the same moment
// (three caf-nodes launched together measure each other) slows some rounds down, not most
// of them; when the rounds still disagree more are taken, and a figure whose rounds never
// agree is marked uncertain (`troupe plan` shows it).
#include <chrono>
#include <cstdint>
#include <functional>

namespace troupe {

struct ProbeSchedule {
  int32_t min_rounds = 3;    // always this many
  int32_t rounds = 5;        // this many while within the budget
  int32_t max_rounds = 11;   // more while they disagree and within the budget, up to this
  // A daemon starts within about this (on a busy machine one round takes longer: fewer rounds).
  std::chrono::milliseconds budget{1500};
  double agree = 0.15;       // rounds agree when their interquartile range is below this share of the median
  std::chrono::milliseconds max_gap{120};  // random pause before each round, up to this
  uint64_t seed = 0;         // of the pauses; 0: from the process id and the clock
  // Asked before each round (may be empty): false stops the probe with the rounds taken so far
  // (none: rounds 0). A daemon re-probing while idle stops when work arrives.
  std::function<bool()> keep_going;
};

struct ProbedFigure {
  double median = 0;
  double spread = 0;    // interquartile range of the rounds / median
  int32_t rounds = 0;    // 0: stopped by keep_going before the first round
  bool uncertain = false;  // the rounds still disagreed after max_rounds
};

// Runs `once` (one measurement, larger is faster) as the schedule says.
ProbedFigure probe_repeatedly(const std::function<double()>& once, const ProbeSchedule& schedule = {});

}  // namespace troupe
