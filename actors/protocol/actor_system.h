#pragma once
// One CAF configuration for every troupe process (caf-node daemons and clients alike), so
// that all of them speak the same protocol and agree on how nodes connect.
#include <caf/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <string>

namespace troupe {

// Liveness, the same for every process: a client's supervisor pings every node holding one
// of its stages each kHeartbeatInterval and calls a node hung when it has not answered
// within kHeartbeatTimeout (DeployOptions may override both for one pipeline). CAF's own
// BASP heartbeat runs at the same interval on every connection.
constexpr std::chrono::milliseconds kHeartbeatInterval{250};
constexpr std::chrono::milliseconds kHeartbeatTimeout{1000};

// Loads the middleman (CAF's network layer), registers the protocol's message types and sets:
//  - middleman.enable-automatic-connections = true: when a node learns of an actor on a
//    third node (stage 1 learns of stage 2 from the client that wired them), it connects to
//    that node directly instead of routing every message through the client;
//  - scheduler.max-threads = `scheduler_threads`: compute runs in detached stage actors with
//    their own threads, so the shared scheduler only moves messages;
//  - middleman.heartbeat-interval = kHeartbeatInterval.
void configure_actor_system(caf::actor_system_config& cfg, int scheduler_threads = 2);

// For a daemon that published its node actor on `listen`:`port`: tells peers that connect to
// it directly (automatic connections) to use exactly that address and port, and closes the
// extra port CAF opens on every interface for that purpose. Without this, a daemon started
// with --listen 127.0.0.1 would still accept connections on all interfaces, and peers
// would reach it through whatever interface addresses it has. With "0.0.0.0" (or "::"),
// peers are told the machine's non-loopback addresses.
void advertise_direct_route(caf::actor_system& sys, const std::string& listen, uint16_t port);

}  // namespace troupe
