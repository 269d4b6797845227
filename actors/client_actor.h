#pragma once
// The client's end of a deployed pipeline, in the client process. Generation requests go
// through it to stage 0 (and the answer comes back to it from the sampler at the end of the
// chain). It watches every stage: when one goes down (its node died, or its connection
// dropped), every request in flight fails at once with an error naming that stage and node,
// instead of waiting for its timeout (CAF 0.17 silently drops messages to a dead remote
// actor). The stages watch it in turn and quit when it goes down.
#include <caf/fwd.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace troupe {

// Handles proto::Activation (relayed to the first watched stage, reply proto::TokenReply)
// and (watch_atom, stages, labels) -> ok_atom (sent again after a recovery, which makes it
// serve again), and (fail_atom, why): fails every request in flight (the supervisor's call).
caf::actor spawn_client_actor(caf::actor_system& sys, std::chrono::milliseconds step_timeout);

}  // namespace troupe
