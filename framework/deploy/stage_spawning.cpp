#include "framework/deploy/stage_spawning.h"

#include <caf/all.hpp>

#include "actors/protocol/actor_system.h"

#include <future>
#include <memory>
#include <map>

namespace troupe {

std::string timeout_or_text(const caf::error& e, const std::string& what, std::chrono::milliseconds timeout) {
  return e == caf::sec::request_timeout ? what + " within " + std::to_string(timeout.count()) + " ms"
                                        : proto::error_text(e);
}

std::vector<SpawnOutcome> spawn_on_nodes(caf::actor_system& sys, const std::vector<proto::node_actor>& nodes,
                                       const std::vector<proto::SpawnStage>& requests,
                                       std::chrono::milliseconds timeout) {
  struct Shared {
    std::vector<SpawnOutcome> outcomes;
    size_t left = 0;
    std::promise<void> done;
  };
  auto shared = std::make_shared<Shared>();
  shared->outcomes.resize(requests.size());
  shared->left = requests.size();
  if (requests.empty()) return {};
  // Only the helper touches `shared` until `done` is set.
  auto settle = [shared](size_t i, std::optional<proto::StageReady> r, std::string error) {
    SpawnOutcome& o = shared->outcomes[i];
    if (o.ready || !o.error.empty()) return;  // settled already (down, then an answer)
    o.ready = std::move(r);
    o.error = std::move(error);
    if (--shared->left == 0) shared->done.set_value();
  };
  auto helper = sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
    using Clock = std::chrono::steady_clock;
    // Settles every request still waiting on `node`.
    auto fail_node = [=](const caf::actor_addr& node, const std::string& why) {
      for (size_t i = 0; i < nodes.size(); ++i)
        if (nodes[i].address() == node) settle(i, std::nullopt, why);
    };
    self->set_down_handler([=](caf::down_msg& dm) {
      fail_node(dm.source, "its node went down while loading (" + proto::error_text(dm.reason) + ")");
    });
    auto last_answer = std::make_shared<std::map<proto::node_actor, Clock::time_point>>();
    for (size_t i = 0; i < requests.size(); ++i) {
      if (last_answer->emplace(nodes[i], Clock::now()).second) self->monitor(nodes[i]);
      self->request(nodes[i], timeout, proto::spawn_atom::value, requests[i])
        .then([=](proto::StageReady& r) { settle(i, std::move(r), ""); },
              [=](caf::error& e) { settle(i, std::nullopt, timeout_or_text(e, "not loaded", timeout)); });
    }
    self->send(self, proto::tick_atom::value);
    return {
      [](caf::ok_atom) {},
      [=](proto::tick_atom) {
        for (auto& [node, seen] : *last_answer) {
          if (Clock::now() - seen > kLoadingNodeHangTimeout) {
            fail_node(node.address(), "its node stopped answering while loading (no answer to a heartbeat within " +
                                        std::to_string(kLoadingNodeHangTimeout.count()) + " s)");
            continue;
          }
          self->request(node, kLoadingNodeHangTimeout, proto::ping_atom::value)
            .then([last_answer, node = node](caf::ok_atom) { (*last_answer)[node] = Clock::now(); },
                  [](caf::error&) {});  // a silent node is caught by the next tick
        }
        self->delayed_send(self, kHeartbeatInterval, proto::tick_atom::value);
      },
    };
  });
  shared->done.get_future().wait();
  caf::anon_send_exit(helper, caf::exit_reason::user_shutdown);
  return std::move(shared->outcomes);
}

}  // namespace troupe
