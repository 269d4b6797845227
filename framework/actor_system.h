#pragma once
// One CAF configuration for every troupe process (caf-node daemons and clients alike), so
// that all of them speak the same protocol and agree on how nodes connect.
#include <caf/fwd.hpp>

namespace troupe {

// Loads the middleman (CAF's network layer), registers the protocol's message types and sets:
//  - middleman.enable-automatic-connections = true: when a node learns of an actor on a
//    third node (stage 1 learns of stage 2 from the client that wired them), it connects to
//    that node directly instead of routing every message through the client;
//  - scheduler.max-threads = `scheduler_threads`: compute runs in detached stage actors with
//    their own threads, so the shared scheduler only moves messages.
void configure_actor_system(caf::actor_system_config& cfg, int scheduler_threads = 2);

}  // namespace troupe
