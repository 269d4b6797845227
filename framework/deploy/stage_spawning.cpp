#include "framework/deploy/stage_spawning.h"

#include <caf/all.hpp>

#include <future>
#include <memory>
#include <set>

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
    self->set_down_handler([=](caf::down_msg& dm) {
      for (size_t i = 0; i < nodes.size(); ++i)
        if (nodes[i].address() == dm.source)
          settle(i, std::nullopt, "its node went down while loading (" + proto::error_text(dm.reason) + ")");
    });
    std::set<proto::node_actor> watched;
    for (size_t i = 0; i < requests.size(); ++i) {
      if (watched.insert(nodes[i]).second) self->monitor(nodes[i]);
      self->request(nodes[i], timeout, proto::spawn_atom::value, requests[i])
        .then([=](proto::StageReady& r) { settle(i, std::move(r), ""); },
              [=](caf::error& e) { settle(i, std::nullopt, timeout_or_text(e, "not loaded", timeout)); });
    }
    return {[](caf::ok_atom) {}};
  });
  shared->done.get_future().wait();
  caf::anon_send_exit(helper, caf::exit_reason::user_shutdown);
  return std::move(shared->outcomes);
}

}  // namespace troupe
