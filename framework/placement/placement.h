#pragma once
// Placement: which node runs which contiguous layer range, so that the model fits in every
// node's memory and the slowest stage is as fast as possible. Pure C++ (no LibTorch, no
// CAF): `troupe plan` and the tests use it without loading a model or reaching a node.
//
// Cost model, per stage, per generated token (decode):
//   memory  = weights of its layers (+ the embedding on the first stage, + the head on the
//             last; a tied head is the embedding table, held once by a single stage)
//           + model-wide tensors every stage loads
//           + KV cache: layers x context_length x sessions x (2 x n_head_kv x head_dim x 4 B)
//           + runtime overhead (LibTorch, CAF, scratch activations)          <= node memory
//   time    = max(bytes read / memory bandwidth, FLOPs / matmul speed), over the figures known;
//             bytes read = its weights (+ the head's) + the KV cache of one session at half the
//             context (the average position over a generation); FLOPs = 2 x matmul parameters
//             + attention over that half context.
// Decode is memory-bound on laptops, so a node's measured bandwidth, when known, usually
// decides. Network: each stage boundary costs `hop_ms` of latency.
//
// Objective (PlanRequest::objective):
//  - slowest_stage (default): minimise the slowest stage's time (the time per token when the
//    pipeline is full: several sessions, or a batch of prompts), then, among plans as fast,
//    the latency of one token through every stage (stage times + hops). A node whose
//    smallest share would be slower than the whole plan without it is left out.
//  - per_token: minimise max(slowest stage, latency / sessions), the time per token when
//    `sessions` sequences decode at once (each waits for its own previous token). With one
//    session this is the latency: layers go to the fastest nodes that hold them, and a node
//    that only adds a hop is left out.
//
// Search (exact): dynamic programming over (set of nodes used, layers placed so far). Each
// step appends one unused node as the next stage with the next 1..L layers; the first stage
// takes the embedding, the stage that reaches the last layer takes the head. Every order and
// subset of nodes is covered. A first pass finds the best bottleneck, a second the lowest
// latency with no stage slower than it. O(2^N x N x L^2) time, O(2^N x L) memory for N nodes
// and L layers; N is capped at 12. per_token repeats the second pass in a binary search over
// the bound on stage times (~log2(N x L^2) passes). Measured for 80 layers: 8 nodes 12 ms
// (slowest_stage) / 90 ms (per_token), 12 nodes 0.3 s / 2.4 s.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/arch/stage_spec.h"
#include "models/runtime/footprint.h"

namespace troupe {

struct NodeCapacity {
  std::string name;           // "host:port", or any label when planning offline
  uint64_t memory_bytes = 0;  // what troupe may use there: min(available, --memory-limit)
  double gflops = 0;          // measured matmul speed; 0 = unknown
  double mem_gbps = 0;        // memory bandwidth in GB/s (1e9 B/s); 0 = unknown
  uint64_t disk_bytes = 0;    // the stage's shard must fit here (a node's --cache-cap, when weights
                              // are sent to it); 0 = no limit
  // How far the node's own probe rounds disagreed (interquartile range / median, the larger
  // of the two figures); above kUncertainSpeedSpread the plan says its figures are uncertain.
  double speed_spread = 0;
};

constexpr double kUncertainSpeedSpread = 0.15;

// Measured figures of several nodes that differ by less than the probes' noise (`tolerance`,
// or a node's own spread if larger) describe the same speed: each such group of figures is
// set to its median, so that identical machines measured at slightly different moments get
// the same plan. Figures given by hand (troupe plan --assume, cluster files) are left alone.
void even_out_measured_speeds(std::vector<NodeCapacity>& nodes, double tolerance = 0.12);

enum class PlanObjective {
  slowest_stage,  // the slowest stage, then latency: best when the pipeline is kept full
  per_token,      // max(slowest stage, latency / sessions): the time per token with `sessions`
                  // concurrent sessions; with one session that is the latency of one token
};

struct PlanRequest {
  int64_t context_length = 0;  // positions each session may reach; 0 = the model's n_ctx
  int32_t sessions = 1;        // concurrent sessions, each with its own KV cache
  uint64_t overhead_bytes = kDefaultOverheadBytes;  // per node
  double hop_ms = 2.0;         // one activation hop between stages (home Wi-Fi)
  bool use_every_node = false; // give each node at least one layer, even when that is slower
  uint64_t shard_overhead_bytes = 0;  // a shard's bytes beyond its tensors (metadata, vocabulary), for disk_bytes
  PlanObjective objective = PlanObjective::slowest_stage;
};

struct PlannedStage {
  std::string node;
  size_t node_index = 0;      // into the `nodes` given to the planner
  StageSpec spec;
  uint64_t weight_bytes = 0;  // its layers (+ embedding, + head, + model-wide tensors)
  uint64_t kv_bytes = 0;      // for context_length x sessions
  uint64_t memory_bytes = 0;  // weights + KV + overhead
  uint64_t node_memory = 0;   // what the node has
  double est_ms = 0;          // per token
};

struct LeftOutNode {
  std::string node;
  std::string reason;
};

struct Plan {
  std::string model;
  int64_t context_length = 0;
  int32_t sessions = 1;
  uint64_t overhead_bytes = 0;
  double hop_ms = 0;
  std::vector<PlannedStage> stages;  // in pipeline order
  std::vector<LeftOutNode> left_out;
  std::vector<std::string> uncertain;  // nodes whose measured speed was uncertain ("a:7000 (±23%)")
  double bottleneck_ms = 0;  // slowest stage: time per token with the pipeline full
  double latency_ms = 0;     // one token through every stage, hops included
  double per_token_ms() const;  // max(bottleneck, latency / sessions): with `sessions` decoding at once

  std::vector<StageSpec> specs() const;
  std::vector<std::string> nodes() const;  // in pipeline order
  std::string layer_ranges() const;        // "0-10,11-21,22-31", as --layers takes it
};

// The model cannot be placed: the message says what it needs and, per node, what the node
// has and could hold.
class PlacementError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The best plan over any ordered subset of `nodes` (at most 12). Throws PlacementError when
// no plan fits, std::invalid_argument for a node with no speed figure or a bad request.
Plan plan_placement(const std::vector<NodeCapacity>& nodes, const ModelFootprint& model, const PlanRequest& request);

// The estimates for a given split: `nodes[i]` runs `specs[i]`. Throws PlacementError naming
// each stage that does not fit its node (needed vs available).
Plan evaluate_placement(const std::vector<NodeCapacity>& nodes, const std::vector<StageSpec>& specs,
                        const ModelFootprint& model, const PlanRequest& request);

// The plan as a table: node, layers, weights MiB, KV MiB, memory needed / node memory, est
// ms/token; then the totals and the nodes left out.
std::string format_plan_table(const Plan& plan);

}  // namespace troupe
