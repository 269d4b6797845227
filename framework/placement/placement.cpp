#include "framework/placement/placement.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>

#include "models/runtime/byte_size.h"

namespace troupe {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr size_t kMaxNodes = 12;

std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

// Milliseconds with a tenth of a millisecond, or three decimals for tiny models.
std::string ms_text(double ms) { return fmt(ms < 1 ? "%.3f" : "%.1f", ms); }

std::string plural(int64_t n, const std::string& word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

std::string range_text(const StageSpec& s) {
  std::string text = s.n_layers() > 0 ? std::to_string(s.layer_first) + "-" + std::to_string(s.layer_last) : "none";
  if (s.has_embedding) text += " +embedding";
  if (s.has_head) text += " +head";
  return text;
}

// Costs of a stage holding layers [a, b) of the model, with the request's context and sessions.
class StageCosts {
 public:
  StageCosts(const ModelFootprint& m, const PlanRequest& r) : m_(m), r_(r) {
    if (m.n_layer < 1 || static_cast<int64_t>(m.layer_bytes.size()) != m.n_layer ||
        static_cast<int64_t>(m.layer_flops.size()) != m.n_layer)
      throw std::invalid_argument("model footprint of '" + m.model + "' has no layers");
    if (r.sessions < 1) throw std::invalid_argument("sessions must be at least 1");
    ctx_ = r.context_length > 0 ? r.context_length : m.n_ctx;
    if (ctx_ < 1) throw std::invalid_argument("give a context length: the model does not say its own");
    bytes_.assign(m.layer_bytes.size() + 1, 0);
    flops_.assign(m.layer_flops.size() + 1, 0);
    for (size_t l = 0; l < m.layer_bytes.size(); ++l) {
      bytes_[l + 1] = bytes_[l] + m.layer_bytes[l];
      flops_[l + 1] = flops_[l] + m.layer_flops[l];
    }
  }

  int64_t context_length() const { return ctx_; }
  uint64_t kv_per_layer() const { return m_.kv_bytes_per_position * static_cast<uint64_t>(ctx_) * r_.sessions; }
  uint64_t layer_bytes_total() const { return bytes_.back(); }

  uint64_t weights(int64_t a, int64_t b, bool first, bool last) const {
    uint64_t w = bytes_[b] - bytes_[a] + m_.shared_bytes;
    if (first) w += m_.embedding_bytes;
    if (last) w += m_.head_bytes;
    if (first && last) w -= m_.tied_bytes;  // one stage holds a tied table once
    return w;
  }
  uint64_t kv(int64_t a, int64_t b) const { return static_cast<uint64_t>(b - a) * kv_per_layer(); }
  uint64_t memory(int64_t a, int64_t b, bool first, bool last) const {
    return weights(a, b, first, last) + kv(a, b) + r_.overhead_bytes;
  }

  double ms(const NodeCapacity& node, int64_t a, int64_t b, bool last) const {
    const double n = static_cast<double>(b - a);
    const double half_ctx = static_cast<double>(ctx_) / 2;  // the average position over a generation
    double read = static_cast<double>(bytes_[b] - bytes_[a]) + n * m_.kv_bytes_per_position * half_ctx;
    double flops = flops_[b] - flops_[a] + n * m_.attention_flops_per_position * half_ctx;
    if (last) {
      read += static_cast<double>(m_.head_bytes);
      flops += m_.head_flops;
    }
    double seconds = 0;
    if (node.mem_gbps > 0) seconds = std::max(seconds, read / (node.mem_gbps * 1e9));
    if (node.gflops > 0) seconds = std::max(seconds, flops / (node.gflops * 1e9));
    return seconds * 1e3;
  }

  PlannedStage stage(const std::vector<NodeCapacity>& nodes, size_t node, int64_t a, int64_t b, bool first,
                     bool last) const {
    PlannedStage s;
    s.node = nodes[node].name;
    s.node_index = node;
    s.spec = StageSpec{a, b - 1, first, last};
    s.weight_bytes = weights(a, b, first, last);
    s.kv_bytes = kv(a, b);
    s.memory_bytes = memory(a, b, first, last);
    s.node_memory = nodes[node].memory_bytes;
    s.est_ms = ms(nodes[node], a, b, last);
    return s;
  }

 private:
  const ModelFootprint& m_;
  const PlanRequest& r_;
  int64_t ctx_ = 0;
  std::vector<uint64_t> bytes_;  // prefix sums over layers
  std::vector<double> flops_;
};

void check_nodes(const std::vector<NodeCapacity>& nodes) {
  if (nodes.empty()) throw PlacementError("no nodes to place the model on");
  for (const auto& n : nodes)
    if (n.gflops <= 0 && n.mem_gbps <= 0)
      throw std::invalid_argument("node " + n.name + ": no speed figure (gflops or memory bandwidth) to plan with");
}

Plan empty_plan(const ModelFootprint& m, const PlanRequest& r, const StageCosts& costs) {
  Plan plan;
  plan.model = m.model;
  plan.context_length = costs.context_length();
  plan.sessions = r.sessions;
  plan.overhead_bytes = r.overhead_bytes;
  plan.hop_ms = r.hop_ms;
  return plan;
}

void total_up(Plan& plan) {
  plan.bottleneck_ms = 0;
  plan.latency_ms = plan.stages.empty() ? 0 : plan.hop_ms * static_cast<double>(plan.stages.size() - 1);
  for (const auto& s : plan.stages) {
    plan.bottleneck_ms = std::max(plan.bottleneck_ms, s.est_ms);
    plan.latency_ms += s.est_ms;
  }
}

// Why no plan exists: what the model needs against what each node has.
PlacementError no_fit_error(const std::vector<NodeCapacity>& nodes, const ModelFootprint& m, const PlanRequest& r,
                            const StageCosts& costs) {
  const int64_t L = m.n_layer;
  const double per_layer = static_cast<double>(costs.layer_bytes_total()) / static_cast<double>(L) +
                           static_cast<double>(costs.kv_per_layer());
  const uint64_t fixed = r.overhead_bytes + m.shared_bytes;
  const int64_t share = (L + static_cast<int64_t>(nodes.size()) - 1) / static_cast<int64_t>(nodes.size());
  const auto share_bytes = static_cast<uint64_t>(static_cast<double>(fixed) + per_layer * static_cast<double>(share));

  std::ostringstream out;
  out << m.model << " does not fit on " << (nodes.size() == 1 ? "this node" : "these " + plural(nodes.size(), "node"))
      << " (" << plural(costs.context_length(), "position") << " x " << plural(r.sessions, "session")
      << "): it needs " << format_size(m.total_weight_bytes()) << " of weights + "
      << format_size(costs.kv_per_layer() * static_cast<uint64_t>(L)) << " of KV cache ("
      << format_size(costs.kv_per_layer()) << " per layer), plus " << format_size(r.overhead_bytes)
      << " runtime overhead on each node used";
  int64_t total_layers = 0;
  for (const auto& n : nodes) {
    int64_t can = 0;
    if (n.memory_bytes > fixed)
      can = std::min<int64_t>(L, static_cast<int64_t>(static_cast<double>(n.memory_bytes - fixed) / per_layer));
    total_layers += can;
    out << "\n  " << n.name << ": " << format_size(n.memory_bytes) << " available, holds at most " << can << " of "
        << L << " layers; an even share (" << plural(share, "layer") << ") needs " << format_size(share_bytes);
    if (n.disk_bytes > 0) out << "; its shard cache (--cache-cap) holds " << format_size(n.disk_bytes);
  }
  if (total_layers < L) {
    out << "\ntogether the nodes hold at most " << total_layers << " of " << L << " layers";
  } else {
    out << "\ntogether the nodes could hold " << total_layers << " layers, but not with the embedding ("
        << format_size(m.embedding_bytes) << ") on the first stage and the head (" << format_size(m.head_bytes)
        << ") on the last";
  }
  out << ": add memory or a node, or lower the context length or the number of sessions";
  return PlacementError(out.str());
}

}  // namespace

double Plan::per_token_ms() const { return std::max(bottleneck_ms, latency_ms / std::max(sessions, 1)); }

std::vector<StageSpec> Plan::specs() const {
  std::vector<StageSpec> out;
  for (const auto& s : stages) out.push_back(s.spec);
  return out;
}

std::vector<std::string> Plan::nodes() const {
  std::vector<std::string> out;
  for (const auto& s : stages) out.push_back(s.node);
  return out;
}

std::string Plan::layer_ranges() const {
  std::string out;
  for (const auto& s : stages)
    out += (out.empty() ? "" : ",") + std::to_string(s.spec.layer_first) + "-" + std::to_string(s.spec.layer_last);
  return out;
}

static void note_uncertain(Plan& plan, const std::vector<NodeCapacity>& nodes) {
  for (const auto& n : nodes)
    if (n.speed_spread > kUncertainSpeedSpread) plan.uncertain.push_back(n.name + " (±" + fmt("%.0f", 50 * n.speed_spread) + "%)");
}

Plan plan_placement(const std::vector<NodeCapacity>& nodes, const ModelFootprint& model, const PlanRequest& request) {
  check_nodes(nodes);
  if (nodes.size() > kMaxNodes)
    throw std::invalid_argument("the planner handles at most " + std::to_string(kMaxNodes) + " nodes, not " +
                                std::to_string(nodes.size()) + "; give the layer ranges yourself");
  const StageCosts costs(model, request);
  const int64_t L = model.n_layer;
  const size_t N = nodes.size();
  if (request.use_every_node && static_cast<int64_t>(N) > L)
    throw std::invalid_argument("cannot give each of " + plural(static_cast<int64_t>(N), "node") + " a layer: " +
                                model.model + " has " + plural(L, "layer"));
  const size_t masks = size_t{1} << N;
  const size_t full = masks - 1;
  auto at = [&](size_t mask, int64_t j) { return mask * static_cast<size_t>(L + 1) + static_cast<size_t>(j); };

  // Appends node n as the stage after layer j, for every layer count that fits, in order.
  // `visit(j2, ms)` sees the stage's end (exclusive) and time; it returns false to stop.
  auto extend = [&](size_t n, int64_t j, auto&& visit) {
    for (int64_t j2 = j + 1; j2 <= L; ++j2) {
      const bool last = j2 == L;
      // Memory grows with j2 (and the head only adds to it), so the first misfit ends the loop.
      if (costs.memory(j, j2, j == 0, last) > nodes[n].memory_bytes) return;
      if (nodes[n].disk_bytes > 0 && costs.weights(j, j2, j == 0, last) + request.shard_overhead_bytes > nodes[n].disk_bytes)
        return;  // its shard would not fit the node's cache cap (it grows with j2 too)
      if (!visit(j2, costs.ms(nodes[n], j, j2, last))) return;
    }
  };

  // Pass 1: the smallest possible slowest stage.
  std::vector<double> best(masks * static_cast<size_t>(L + 1), kInf);
  best[at(0, 0)] = 0;
  for (size_t mask = 0; mask < masks; ++mask) {
    for (int64_t j = mask == 0 ? 0 : 1; j < L; ++j) {
      const double cur = best[at(mask, j)];
      if (cur == kInf) continue;
      for (size_t n = 0; n < N; ++n) {
        if (mask & (size_t{1} << n)) continue;
        const size_t next = mask | (size_t{1} << n);
        extend(n, j, [&](int64_t j2, double ms) {
          double& slot = best[at(next, j2)];
          slot = std::min(slot, std::max(cur, ms));
          return true;
        });
      }
    }
  }
  double bottleneck = kInf;
  for (size_t mask = 1; mask < masks; ++mask)
    if (!request.use_every_node || mask == full) bottleneck = std::min(bottleneck, best[at(mask, L)]);
  if (bottleneck == kInf) throw no_fit_error(nodes, model, request, costs);

  // Pass 2: the lowest latency (stage times + hops) with no stage slower than `limit`;
  // returns the plan's final state (mask, or 0 when none), with the way back in from_*.
  std::vector<double> latency(masks * static_cast<size_t>(L + 1));
  std::vector<int> from_node(latency.size());
  std::vector<int64_t> from_layer(latency.size());
  auto lowest_latency = [&](double limit) {
    std::fill(latency.begin(), latency.end(), kInf);
    latency[at(0, 0)] = 0;
    for (size_t mask = 0; mask < masks; ++mask) {
      for (int64_t j = mask == 0 ? 0 : 1; j < L; ++j) {
        const double cur = latency[at(mask, j)];
        if (cur == kInf) continue;
        const double hop = mask == 0 ? 0 : request.hop_ms;
        for (size_t n = 0; n < N; ++n) {
          if (mask & (size_t{1} << n)) continue;
          const size_t next = mask | (size_t{1} << n);
          extend(n, j, [&](int64_t j2, double ms) {
            if (ms > limit) return false;  // time grows with j2 too
            const size_t slot = at(next, j2);
            if (cur + hop + ms < latency[slot]) {
              latency[slot] = cur + hop + ms;
              from_node[slot] = static_cast<int>(n);
              from_layer[slot] = j;
            }
            return true;
          });
        }
      }
    }
    size_t end_mask = 0;
    for (size_t mask = 1; mask < masks; ++mask) {
      if (request.use_every_node && mask != full) continue;
      if (latency[at(mask, L)] < (end_mask == 0 ? kInf : latency[at(end_mask, L)])) end_mask = mask;
    }
    return end_mask;
  };
  auto tolerant = [](double ms) { return ms * (1 + 1e-9) + 1e-12; };

  double limit = tolerant(bottleneck);
  if (request.objective == PlanObjective::per_token) {
    // Time per token with S sessions in flight: max(slowest stage, latency / S). The lowest
    // latency g(B) allowing stages up to B only falls as B grows, so over the candidate
    // B (every stage time that fits, from the best bottleneck up) the objective
    // max(B, g(B) / S) is lowest where B first reaches g(B) / S or just before: binary search.
    std::vector<double> candidates;
    for (size_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < L; ++j)
        extend(n, j, [&](int64_t, double ms) {
          if (ms >= bottleneck) candidates.push_back(ms);
          return true;
        });
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    const double sessions = request.sessions;
    auto latency_at = [&](size_t i) { return latency[at(lowest_latency(tolerant(candidates[i])), L)]; };
    size_t lo = 0, hi = candidates.size();  // first i with candidates[i] >= g / S, or size()
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      if (candidates[mid] >= latency_at(mid) / sessions) hi = mid;
      else lo = mid + 1;
    }
    double best_value = kInf;
    for (size_t i : {lo, lo - 1}) {  // lo - 1 wraps around when lo == 0 and is skipped
      if (i >= candidates.size()) continue;
      const double value = std::max(candidates[i], latency_at(i) / sessions);
      if (value < best_value) best_value = value, limit = tolerant(candidates[i]);
    }
  }
  const size_t end_mask = lowest_latency(limit);

  Plan plan = empty_plan(model, request, costs);
  for (size_t mask = end_mask; mask != 0;) {
    int64_t j2 = plan.stages.empty() ? L : plan.stages.back().spec.layer_first;
    const size_t slot = at(mask, j2);
    const auto n = static_cast<size_t>(from_node[slot]);
    const int64_t j = from_layer[slot];
    plan.stages.push_back(costs.stage(nodes, n, j, j2, j == 0, j2 == L));
    mask &= ~(size_t{1} << n);
  }
  std::reverse(plan.stages.begin(), plan.stages.end());
  total_up(plan);

  for (size_t n = 0; n < N; ++n) {
    if (end_mask & (size_t{1} << n)) continue;
    uint64_t one_layer_memory = std::numeric_limits<uint64_t>::max();
    double one_layer_ms = kInf;
    for (int64_t l = 0; l < L; ++l) {
      one_layer_memory = std::min(one_layer_memory, costs.memory(l, l + 1, false, false));
      one_layer_ms = std::min(one_layer_ms, costs.ms(nodes[n], l, l + 1, false));
    }
    uint64_t one_layer_shard = std::numeric_limits<uint64_t>::max();
    for (int64_t l = 0; l < L; ++l)
      one_layer_shard = std::min(one_layer_shard, costs.weights(l, l + 1, false, false) + request.shard_overhead_bytes);
    std::string reason;
    if (nodes[n].disk_bytes > 0 && one_layer_shard > nodes[n].disk_bytes)
      reason = "too little disk: the shard of one layer needs " + format_size(one_layer_shard) +
               ", its shard cache (--cache-cap) holds " + format_size(nodes[n].disk_bytes);
    else if (one_layer_memory > nodes[n].memory_bytes)
      reason = "too little memory: one layer with its KV cache and the runtime overhead needs " +
               format_size(one_layer_memory) + ", it has " + format_size(nodes[n].memory_bytes);
    else if (one_layer_ms > tolerant(plan.bottleneck_ms))
      reason = "too slow: one layer takes " + ms_text(one_layer_ms) + " ms there, more than the slowest stage without it (" +
               ms_text(plan.bottleneck_ms) + " ms)";
    else
      reason = "not needed: tokens come as fast or faster without it (each extra stage adds a " +
               fmt("%g", request.hop_ms) + " ms network hop)";
    plan.left_out.push_back({nodes[n].name, reason});
  }
  note_uncertain(plan, nodes);
  return plan;
}

Plan evaluate_placement(const std::vector<NodeCapacity>& nodes, const std::vector<StageSpec>& specs,
                        const ModelFootprint& model, const PlanRequest& request) {
  check_nodes(nodes);
  if (nodes.size() != specs.size())
    throw std::invalid_argument(std::to_string(specs.size()) + " layer ranges for " + plural(nodes.size(), "node"));
  const StageCosts costs(model, request);
  Plan plan = empty_plan(model, request, costs);
  std::string misfits;
  for (size_t i = 0; i < specs.size(); ++i) {
    const StageSpec& s = specs[i];
    if (s.layer_first < 0 || s.layer_last >= model.n_layer || s.layer_last < s.layer_first)
      throw std::invalid_argument("stage " + std::to_string(i + 1) + ": " + s.describe() + " is outside the model's " +
                                  plural(model.n_layer, "layer"));
    PlannedStage stage = costs.stage(nodes, i, s.layer_first, s.layer_last + 1, s.has_embedding, s.has_head);
    const uint64_t shard = stage.weight_bytes + request.shard_overhead_bytes;
    if (nodes[i].disk_bytes > 0 && shard > nodes[i].disk_bytes)
      misfits += "\n  " + stage.node + " (" + s.describe() + "): its shard needs " + format_size(shard) +
                 " of disk, its shard cache (--cache-cap) holds " + format_size(nodes[i].disk_bytes);
    if (stage.memory_bytes > stage.node_memory)
      misfits += "\n  " + stage.node + " (" + s.describe() + "): needs " + format_size(stage.memory_bytes) + " (" +
                 format_size(stage.weight_bytes) + " weights + " + format_size(stage.kv_bytes) + " KV + " +
                 format_size(request.overhead_bytes) + " overhead), has " + format_size(stage.node_memory);
    plan.stages.push_back(stage);
  }
  if (!misfits.empty())
    throw PlacementError(model.model + ": the layer ranges do not fit (" + plural(plan.context_length, "position") +
                         " x " + plural(request.sessions, "session") + "):" + misfits);
  total_up(plan);
  note_uncertain(plan, nodes);
  return plan;
}

std::string format_plan_table(const Plan& plan) {
  size_t node_w = 4, layers_w = 6;
  for (const auto& s : plan.stages) {
    node_w = std::max(node_w, s.node.size());
    layers_w = std::max(layers_w, range_text(s.spec).size());
  }
  std::ostringstream out;
  char line[512];
  out << "plan for " << plan.model << ": " << plural(plan.context_length, "position") << " x "
      << plural(plan.sessions, "session") << ", " << format_size(plan.overhead_bytes) << " overhead per node, "
      << fmt("%g", plan.hop_ms) << " ms per hop\n";
  const int nw = static_cast<int>(node_w), lw = static_cast<int>(layers_w);
  std::snprintf(line, sizeof line, "%-*s  %-*s  %11s  %9s  %15s  %12s\n", nw, "node", lw, "layers", "weights MiB",
                "KV MiB", "needs/has MiB", "est ms/token");
  out << line;
  uint64_t weights = 0, kv = 0;
  for (const auto& s : plan.stages) {
    const std::string fit = fmt("%.0f", s.memory_bytes / kMiB) + "/" + fmt("%.0f", s.node_memory / kMiB);
    std::snprintf(line, sizeof line, "%-*s  %-*s  %11.1f  %9.1f  %15s  %12s\n", nw, s.node.c_str(), lw,
                  range_text(s.spec).c_str(), s.weight_bytes / kMiB, s.kv_bytes / kMiB, fit.c_str(),
                  ms_text(s.est_ms).c_str());
    out << line;
    weights += s.weight_bytes;
    kv += s.kv_bytes;
  }
  std::snprintf(line, sizeof line, "%-*s  %-*s  %11.1f  %9.1f\n", nw, "total", lw, "", weights / kMiB, kv / kMiB);
  out << line;
  const size_t hops = plan.stages.empty() ? 0 : plan.stages.size() - 1;
  out << "slowest stage " << ms_text(plan.bottleneck_ms) << " ms/token (" << fmt("%.1f", 1e3 / plan.bottleneck_ms)
      << " tokens/s with the pipeline full); one token through " << plural(plan.stages.size(), "stage") << " "
      << ms_text(plan.latency_ms) << " ms incl. " << plural(hops, "hop") << " ("
      << fmt("%.1f", 1e3 / plan.latency_ms) << " tokens/s for one session)";
  if (plan.sessions > 1)
    out << "; " << plural(plan.sessions, "session") << " at once: " << ms_text(plan.per_token_ms()) << " ms/token ("
        << fmt("%.1f", 1e3 / plan.per_token_ms()) << " tokens/s in all)";
  out << "\n";
  out << "--layers " << plan.layer_ranges() << "\n";
  for (const auto& l : plan.left_out) out << "left out " << l.node << ": " << l.reason << "\n";
  for (const auto& u : plan.uncertain)
    out << "uncertain speed figures: " << u << ": its probe rounds disagreed (a busy machine?); ask again when it is idle\n";
  return out.str();
}

void even_out_measured_speeds(std::vector<NodeCapacity>& nodes, double tolerance) {
  for (auto field : {&NodeCapacity::gflops, &NodeCapacity::mem_gbps}) {
    std::vector<size_t> order;
    for (size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i].*field > 0) order.push_back(i);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return nodes[a].*field < nodes[b].*field; });
    // Groups of figures each within the tolerance of the group's smallest.
    for (size_t first = 0; first < order.size();) {
      const NodeCapacity& low = nodes[order[first]];
      size_t end = first + 1;
      while (end < order.size()) {
        const NodeCapacity& n = nodes[order[end]];
        const double tol = std::max({tolerance, low.speed_spread, n.speed_spread});
        if (n.*field > low.*field * (1 + tol)) break;
        ++end;
      }
      std::vector<double> values;
      for (size_t k = first; k < end; ++k) values.push_back(nodes[order[k]].*field);
      const size_t m = values.size();
      const double median = m % 2 ? values[m / 2] : (values[m / 2 - 1] + values[m / 2]) / 2;
      for (size_t k = first; k < end; ++k) nodes[order[k]].*field = median;
      first = end;
    }
  }
}

}  // namespace troupe
