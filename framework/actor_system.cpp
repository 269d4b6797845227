#include "framework/actor_system.h"

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "framework/messages.h"

namespace troupe {

void configure_actor_system(caf::actor_system_config& cfg, int scheduler_threads) {
  cfg.load<caf::io::middleman>();
  proto::add_message_types(cfg);
  cfg.set("middleman.enable-automatic-connections", true);
  cfg.set("scheduler.max-threads", static_cast<size_t>(scheduler_threads));
}

}  // namespace troupe
