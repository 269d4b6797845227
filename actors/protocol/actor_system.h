#pragma once
// One CAF configuration for every troupe process (caf-node daemons and clients alike), so
// that all of them speak the same protocol and agree on how nodes connect.
#include <caf/fwd.hpp>
#include <caf/io/middleman_actor.hpp>
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
//  - with a `cluster_key` (a file from create_cluster_key, see cluster_key.h): CAF's OpenSSL
//    module, with that file as certificate, private key and only trusted CA, so that every
//    connection this process opens or accepts is mutually authenticated TLS;
//  - middleman.enable-automatic-connections = false: CAF's automatic connections open an
//    extra plain-TCP port on every interface in every process (clients included) and connect
//    to it without TLS. troupe connects nodes itself instead (peer_atom, see deploy), so no
//    process listens anywhere but where a daemon publishes its node;
//  - scheduler.max-threads = `scheduler_threads`: compute runs in detached stage actors with
//    their own threads, so the shared scheduler only moves messages;
//  - middleman.heartbeat-interval = kHeartbeatInterval.
void configure_actor_system(caf::actor_system_config& cfg, int scheduler_threads = 2,
                            const std::string& cluster_key = "");

// Whether `sys` runs its links over TLS (configured with a cluster key).
bool uses_tls(caf::actor_system& sys);

// The actor that opens and publishes connections for `sys`: CAF's OpenSSL one when the system
// has a cluster key, else the plain middleman's. Every connect and publish goes through it.
caf::io::middleman_actor connection_manager(caf::actor_system& sys);

}  // namespace troupe
