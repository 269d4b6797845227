#include "actors/supervisor_actor.h"

#include <caf/all.hpp>

#include <chrono>
#include <set>

#include "actors/protocol/messages.h"

namespace troupe {

const char* to_string(FailureKind kind) {
  switch (kind) {
    case FailureKind::down: return "down";
    case FailureKind::hang: return "hung";
    case FailureKind::exception: return "exception";
  }
  return "?";
}

namespace {

struct SupervisorState {
  HeartbeatTimes times;
  FailureHandler on_failure;
  TickHandler on_tick;
  std::vector<proto::stage_actor> stages;
  std::vector<proto::node_actor> nodes;  // per stage; invalid for in-process stages
  std::vector<bool> probing;      // per stage: a progress probe is out
  std::vector<uint64_t> layers_seen;                         // per stage: its layer count at the last change
  std::vector<std::chrono::steady_clock::time_point> moved;  // per stage: when it last computed a layer (or was idle)
  uint64_t epoch = 0;
  bool reported = false;  // one report per epoch: the next watch brings the repaired topology

  static inline const char* name = "troupe.supervisor";

  void report(size_t stage, FailureKind kind, const std::string& cause) {
    if (reported) return;
    reported = on_failure(stage, kind, cause, epoch);
  }
};

using SupervisorActor = caf::stateful_actor<SupervisorState>;

// Pings every node once (a node holding two stages is pinged once, and reported for its first).
void heartbeat(SupervisorActor* self) {
  auto& st = self->state;
  std::set<caf::actor_addr> pinged;
  for (size_t i = 0; i < st.nodes.size(); ++i) {
    const proto::node_actor& node = st.nodes[i];
    if (!node || !pinged.insert(node.address()).second) continue;
    const uint64_t epoch = st.epoch;
    const auto timeout = st.times.timeout;
    self->request(node, timeout, proto::ping_atom::value)
      .then([](caf::ok_atom) {},
            [self, i, epoch, timeout](caf::error& err) {
              if (self->state.epoch != epoch) return;  // about a topology already replaced
              if (err == caf::sec::request_timeout)
                self->state.report(i, FailureKind::hang,
                                   "did not answer a heartbeat within " + std::to_string(timeout.count()) +
                                     " ms (its node is hung or asleep)");
              else
                self->state.report(i, FailureKind::down, "went down with its node (" + proto::error_text(err) + ")");
            });
  }
  // Progress probes, answered by the stage's node while the stage computes: a stage is stuck
  // when a forward pass of it is running and has computed no layer for `stall`. A long
  // prefill computes layers all along, so however long it takes it is never taken for stuck.
  if (st.times.stall.count() <= 0) return;
  for (size_t i = 0; i < st.stages.size(); ++i) {
    if (!st.stages[i] || !st.nodes[i] || st.probing[i]) continue;
    st.probing[i] = true;
    const uint64_t epoch = st.epoch;
    self->request(st.nodes[i], st.times.timeout, proto::progress_atom::value, st.stages[i])
      .then(
        [self, i, epoch](bool busy, uint64_t layers) {
          auto& st = self->state;
          if (st.epoch != epoch) return;
          st.probing[i] = false;
          const auto now = std::chrono::steady_clock::now();
          if (!busy || layers != st.layers_seen[i]) {
            st.layers_seen[i] = layers;
            st.moved[i] = now;
            return;
          }
          const auto still = std::chrono::duration_cast<std::chrono::milliseconds>(now - st.moved[i]);
          if (still >= st.times.stall)
            st.report(i, FailureKind::hang,
                      "made no progress for " + std::to_string(still.count()) +
                        " ms (a forward pass is running and has computed no layer: the stage is stuck)");
        },
        [self, i, epoch](caf::error&) {  // an unanswered node is the heartbeat's to report
          if (self->state.epoch == epoch) self->state.probing[i] = false;
        });
  }
}

caf::behavior supervisor_behavior(SupervisorActor* self, HeartbeatTimes times, FailureHandler on_failure,
                                  TickHandler on_tick) {
  self->state.times = times;
  self->state.on_failure = std::move(on_failure);
  self->state.on_tick = std::move(on_tick);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    for (size_t i = 0; i < st.stages.size(); ++i) {
      if (st.stages[i].address() == dm.source) {
        st.report(i, FailureKind::down, "went down (" + proto::error_text(dm.reason) + ")");
        return;
      }
      if (st.nodes[i] && st.nodes[i].address() == dm.source) {
        st.report(i, FailureKind::down, "went down with its node (" + proto::error_text(dm.reason) + ")");
        return;
      }
    }
  });
  self->send(self, proto::tick_atom::value);
  return {
    [self](proto::watch_atom, std::vector<proto::stage_actor>& stages, std::vector<proto::node_actor>& nodes,
           uint64_t epoch) {
      auto& st = self->state;
      for (const auto& a : st.stages) self->demonitor(a.address());
      for (const auto& a : st.nodes)
        if (a) self->demonitor(a.address());
      st.stages = std::move(stages);
      st.nodes = std::move(nodes);
      st.nodes.resize(st.stages.size());
      st.probing.assign(st.stages.size(), false);
      st.layers_seen.assign(st.stages.size(), 0);
      st.moved.assign(st.stages.size(), std::chrono::steady_clock::now());
      st.epoch = epoch;
      st.reported = false;
      // Monitoring an actor that is already gone reports it at once: a second failure during
      // a recovery is noticed here.
      for (const auto& a : st.stages) self->monitor(a);
      for (const auto& a : st.nodes)
        if (a) self->monitor(a);
      return caf::ok_atom::value;
    },
    [self](proto::tick_atom) {
      heartbeat(self);
      if (self->state.on_tick) self->state.on_tick();
      self->delayed_send(self, self->state.times.interval, proto::tick_atom::value);
    },
  };
}

}  // namespace

caf::actor spawn_supervisor_actor(caf::actor_system& sys, HeartbeatTimes times, FailureHandler on_failure,
                                  TickHandler on_tick) {
  return sys.spawn(supervisor_behavior, times, std::move(on_failure), std::move(on_tick));
}

}  // namespace troupe
