#include "actors/client_actor.h"

#include <caf/all.hpp>

#include <unordered_map>

#include "actors/protocol/messages.h"

namespace troupe {

namespace {

struct ClientState {
  std::chrono::milliseconds step_timeout{0};
  std::vector<caf::actor> stages;
  std::vector<std::string> labels;  // "stage layers 0-2 +embedding on 10.0.0.2:7000"
  std::unordered_map<uint64_t, caf::response_promise> pending;
  uint64_t next_request = 0;
  std::string down;  // set once a stage went down: the pipeline cannot serve anymore

  static inline const char* name = "troupe.client";

  void fail_all(const std::string& why) {
    for (auto& [id, rp] : pending) rp.deliver(caf::make_error(caf::sec::runtime_error, why));
    pending.clear();
  }
};

using ClientActor = caf::stateful_actor<ClientState>;

caf::behavior client_behavior(ClientActor* self, std::chrono::milliseconds step_timeout) {
  self->state.step_timeout = step_timeout;
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    for (size_t i = 0; i < st.stages.size(); ++i) {
      if (st.stages[i].address() != dm.source) continue;
      st.down = st.labels[i] + " went down (" + proto::error_text(dm.reason) + ")";
      st.fail_all(st.down);
    }
  });
  return {
    [self](proto::watch_atom, std::vector<caf::actor>& stages, std::vector<std::string>& labels) {
      // Also after a recovery, with the replacement in the list: the pipeline serves again.
      auto& st = self->state;
      for (const auto& s : st.stages) self->demonitor(s);
      st.down.clear();
      for (const auto& s : stages) self->monitor(s);
      st.stages = std::move(stages);
      st.labels = std::move(labels);
      return caf::ok_atom::value;
    },
    [self](proto::fail_atom, const std::string& why) {
      // The supervisor found a stage hung or failed: nothing in flight will come back.
      self->state.fail_all(why);
    },
    [self](proto::Activation& in) -> caf::result<proto::TokenReply> {
      auto& st = self->state;
      if (!st.down.empty()) return caf::make_error(caf::sec::runtime_error, st.down);
      if (st.stages.empty()) return caf::make_error(caf::sec::runtime_error, "the pipeline has no stages");
      const uint64_t id = st.next_request++;
      auto rp = self->make_response_promise();
      st.pending.emplace(id, rp);
      self->request(st.stages.front(), st.step_timeout, std::move(in))
        .then(
          [self, id](proto::TokenReply& reply) {
            auto it = self->state.pending.find(id);
            if (it == self->state.pending.end()) return;
            it->second.deliver(std::move(reply));
            self->state.pending.erase(it);
          },
          [self, id](caf::error& err) {
            auto it = self->state.pending.find(id);
            if (it == self->state.pending.end()) return;
            it->second.deliver(std::move(err));
            self->state.pending.erase(it);
          });
      return rp;
    },
  };
}

}  // namespace

caf::actor spawn_client_actor(caf::actor_system& sys, std::chrono::milliseconds step_timeout) {
  return sys.spawn(client_behavior, step_timeout);
}

}  // namespace troupe
