#include "actors/protocol/actor_system.h"

#include <caf/actor_registry.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/network/interfaces.hpp>

#include <chrono>
#include <thread>

#include "actors/protocol/messages.h"

namespace troupe {

namespace {
// The ConfigServ key under which CAF 0.17's BASP broker stores (port, addresses) for peers
// that want to connect to this process directly.
constexpr const char* kConnectivityKey = "basp.default-connectivity-tcp";
}  // namespace

void configure_actor_system(caf::actor_system_config& cfg, int scheduler_threads) {
  cfg.load<caf::io::middleman>();
  proto::add_message_types(cfg);
  cfg.set("middleman.enable-automatic-connections", true);
  cfg.set("scheduler.max-threads", static_cast<size_t>(scheduler_threads));
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("middleman.heartbeat-interval", caf::timespan{kHeartbeatInterval});
}

void advertise_direct_route(caf::actor_system& sys, const std::string& listen, uint16_t port) {
  namespace net = caf::io::network;
  auto config_serv = sys.registry().get<caf::actor>(caf::atom("ConfigServ"));
  if (!config_serv) return;
  // CAF's BASP broker puts its own entry when it starts, asynchronously; wait for it so that
  // ours comes after it and stays.
  caf::scoped_actor self{sys};
  uint16_t extra_port = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (extra_port == 0 && std::chrono::steady_clock::now() < deadline) {
    self->request(config_serv, std::chrono::seconds(5), caf::get_atom::value, std::string(kConnectivityKey))
      .receive(
        [&](const std::string&, caf::message& value) {
          if (value.match_elements<uint16_t, net::address_listing>()) extra_port = value.get_as<uint16_t>(0);
        },
        [](caf::error&) {});
    if (extra_port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (extra_port != 0 && extra_port != port) sys.middleman().close(extra_port);

  net::address_listing addresses;
  if (listen == "0.0.0.0" || listen == "::" || listen.empty()) {
    addresses = net::interfaces::list_addresses(/*include_localhost=*/false);
    if (addresses.empty()) addresses = net::interfaces::list_addresses(true);
  } else {
    addresses[listen.find(':') == std::string::npos ? net::protocol::ipv4 : net::protocol::ipv6].push_back(listen);
  }
  caf::anon_send(config_serv, caf::put_atom::value, std::string(kConnectivityKey),
                 caf::make_message(port, std::move(addresses)));
}

}  // namespace troupe
