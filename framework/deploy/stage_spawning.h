#pragma once
// Asking nodes to load stages. Loading may take minutes (DeployOptions::spawn_timeout), and
// CAF never answers a request in flight to a node that dies or hangs: it only times it out.
// So the requests go out from a helper actor that monitors the nodes and pings them while
// they load (a node answers pings while its stage loads: the load runs in the stage's own
// thread). A node that goes down, or leaves pings unanswered for kLoadingNodeHangTimeout
// (a laptop put to sleep, a stopped process), fails its stages at once.
#include <caf/fwd.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "actors/protocol/interfaces.h"
#include "actors/protocol/messages.h"

namespace troupe {

constexpr std::chrono::seconds kLoadingNodeHangTimeout{5};

struct SpawnOutcome {
  std::optional<proto::StageReady> ready;  // set when the stage loaded
  std::string error;                       // else why not
};

// Sends requests[i] to nodes[i], all at once, and waits for every answer (or its node's
// death or hang, or `timeout`). Blocks the calling thread: call it from a blocking actor or a thread
// of one's own, never from an event-based actor.
std::vector<SpawnOutcome> spawn_on_nodes(caf::actor_system& sys, const std::vector<proto::node_actor>& nodes,
                                       const std::vector<proto::SpawnStage>& requests,
                                       std::chrono::milliseconds timeout);

// "`what` within N ms" for a timeout, else the error's own text.
std::string timeout_or_text(const caf::error& e, const std::string& what, std::chrono::milliseconds timeout);

}  // namespace troupe
