#pragma once
// Reaching caf-node daemons: "host:port" endpoints and connecting to the node actor a
// daemon publishes, always within a bounded time (a dead or unreachable laptop must give a
// clear error in seconds, not hang the client).
#include <caf/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/protocol/messages.h"
#include "framework/placement/placement.h"

namespace troupe {

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string str() const;  // "host:port" ("[::1]:port" for IPv6 literals)
};

// "host:port" or "[v6addr]:port"; throws std::invalid_argument naming the text.
Endpoint parse_endpoint(const std::string& text);

// Raised when a node cannot be reached or does not answer in time; names host:port.
class NodeUnreachable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Opens (and closes) a TCP connection to `ep` within `timeout`; throws NodeUnreachable
// with the reason (refused, timed out, unknown host).
void probe_tcp(const Endpoint& ep, std::chrono::milliseconds timeout);

// The node actor published at `ep`, with its info; checks the protocol version. Throws
// NodeUnreachable (naming host:port) when that takes longer than `timeout`.
struct ConnectedNode {
  proto::node_actor actor;
  proto::NodeInfo info;
};
ConnectedNode connect_node(caf::actor_system& sys, const Endpoint& ep, std::chrono::milliseconds timeout);

// What the placement planner may use on each node, asked of the live daemons (memory
// available, capped by --memory-limit; measured speed and bandwidth). Throws
// NodeUnreachable naming the first node that does not answer.
std::vector<NodeCapacity> query_node_capacities(caf::actor_system& sys, const std::vector<std::string>& endpoints,
                                                std::chrono::milliseconds timeout);
NodeCapacity capacity_of(const proto::NodeInfo& info);

}  // namespace troupe
