#include "actors/protocol/actor_system.h"

#include <caf/actor_system_config.hpp>
#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include "actors/protocol/messages.h"

namespace troupe {

void configure_actor_system(caf::actor_system_config& cfg, int scheduler_threads, const std::string& cluster_key) {
  cfg.load<caf::io::middleman>();
  if (!cluster_key.empty()) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = cluster_key;
    cfg.openssl_key = cluster_key;
    cfg.openssl_cafile = cluster_key;
  }
  proto::add_message_types(cfg);
  cfg.set("middleman.enable-automatic-connections", false);
  cfg.set("scheduler.max-threads", static_cast<size_t>(scheduler_threads));
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("middleman.heartbeat-interval", caf::timespan{kHeartbeatInterval});
}

bool uses_tls(caf::actor_system& sys) { return sys.has_openssl_manager(); }

caf::io::middleman_actor connection_manager(caf::actor_system& sys) {
  return uses_tls(sys) ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
}

}  // namespace troupe
