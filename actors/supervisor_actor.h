#pragma once
// The supervisor's eyes: one actor per deployed pipeline, in the client process. It watches
// every stage (a CAF monitor: a stage that quits or whose node's connection drops goes down)
// and every node holding a stage (a monitor, plus a heartbeat: ping_atom every `interval`,
// each with a deadline of `timeout`, so a hung process, e.g. a laptop asleep or SIGSTOP, is
// noticed within interval + timeout). It does not repair anything itself: it reports the
// first failure of each topology epoch to `on_failure`, and the pipeline's Supervisor
// (framework/deploy_supervision.h) restarts the stage and sends the new topology back here.
#include <caf/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace troupe {

enum class FailureKind {
  down,       // the stage or its node is gone (process killed, connection lost)
  hang,       // its node did not answer a heartbeat in time (asleep, stopped, overloaded)
  exception,  // the stage threw inside compute (reported by the generating thread)
};

const char* to_string(FailureKind kind);

// Called from the supervisor actor's thread; must not block. Returns false when the failure
// could not be taken up now (a repair is under way): it is reported again on a later
// heartbeat round.
using FailureHandler = std::function<bool(size_t stage, FailureKind kind, const std::string& cause, uint64_t epoch)>;
// Called after every heartbeat round (the supervisor's clock for healing); must not block.
using TickHandler = std::function<void()>;

struct HeartbeatTimes {
  std::chrono::milliseconds interval{250};
  std::chrono::milliseconds timeout{1000};
  // A stage whose forward pass computes no layer for `stall` (its node tells, while the stage
  // computes) is stuck (a frozen compute thread, a swapping machine). 0: not watched.
  // Stages in the client's own process are not watched.
  std::chrono::milliseconds stall{0};
};

// Handles (watch_atom, std::vector<proto::stage_actor> stages, std::vector<proto::node_actor>
// nodes, uint64_t epoch) -> ok_atom: `nodes[i]` is the node actor holding stage i (invalid for a
// stage in this process, which needs no heartbeat). Replaces what it watched before.
caf::actor spawn_supervisor_actor(caf::actor_system& sys, HeartbeatTimes times, FailureHandler on_failure,
                                  TickHandler on_tick = {});

}  // namespace troupe
