#pragma once
// The cluster file: the nodes to use, what each may hold, and the model, so that one
// `--cluster FILE` replaces `--nodes ...` (and `--model`) on every command.
//
//   {
//     "model": "/models/llama-2-7b.Q4_0.gguf",
//     "nodes": [
//       {"address": "192.168.1.20:7000", "memory": "16G", "gflops": 80},
//       {"address": "192.168.1.21:7000", "memory": "8G", "memory_limit": "3G", "gflops": 40, "mem_gbps": 12}
//     ]
//   }
//
// "model" is optional (commands then need --model). Per node only "address" is required:
//   memory        memory troupe may use there (default: what the node reports as available)
//   memory_limit  a cap on that, like caf-node's --memory-limit
//   gflops        matmul speed (default: what the node measured)
//   mem_gbps      memory bandwidth in GB/s (default: unknown)
// Sizes are strings with a binary unit ("6G", "512M") or plain byte counts. Unknown keys are
// errors, so a misspelt field does not silently fall back to a default.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/placement/placement.h"

namespace troupe {

// Every problem with a cluster file; the message names the file and the field.
class ClusterFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ClusterNodeEntry {
  std::string address;                   // "host:port", checked like --nodes
  std::optional<uint64_t> memory;        // bytes
  std::optional<uint64_t> memory_limit;  // bytes
  std::optional<double> gflops;
  std::optional<double> mem_gbps;
};

struct ClusterFile {
  std::string path;
  std::string model;  // "" when the file names none
  std::vector<ClusterNodeEntry> nodes;
};

// Reads and checks a cluster file. Throws ClusterFileError.
ClusterFile read_cluster_file(const std::string& path);
// The same from text already read; `path` is only used in messages.
ClusterFile parse_cluster_file(const std::string& json_text, const std::string& path);

// The nodes' capacities from the file's figures alone, without asking the nodes: memory is
// min(memory, memory_limit) of those given. Throws ClusterFileError naming each node that
// lacks a memory figure or a speed (gflops or mem_gbps).
std::vector<NodeCapacity> capacities_from_file(const ClusterFile& cluster);

}  // namespace troupe
