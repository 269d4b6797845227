#include "actors/supervisor_actor.h"

#include <caf/all.hpp>

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
  std::vector<caf::actor> stages;
  std::vector<caf::actor> nodes;  // per stage; invalid for in-process stages
  std::vector<bool> probing;      // per stage: a stats request (progress probe) is out
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
    const caf::actor& node = st.nodes[i];
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
  // Progress probes: one stats request per stage at a time, each with the stall deadline.
  if (st.times.stall.count() <= 0) return;
  for (size_t i = 0; i < st.stages.size(); ++i) {
    if (!st.stages[i] || st.probing[i]) continue;
    st.probing[i] = true;
    const uint64_t epoch = st.epoch;
    const auto stall = st.times.stall;
    self->request(st.stages[i], stall, proto::stats_atom::value)
      .then(
        [self, i, epoch](const proto::StageStats&) {
          if (self->state.epoch == epoch) self->state.probing[i] = false;
        },
        [self, i, epoch, stall](caf::error& err) {
          if (self->state.epoch != epoch) return;
          self->state.probing[i] = false;
          if (err == caf::sec::request_timeout)
            self->state.report(i, FailureKind::hang,
                               "made no progress for " + std::to_string(stall.count()) +
                                 " ms (no answer between forward passes; the stage is stuck)");
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
    [self](proto::watch_atom, std::vector<caf::actor>& stages, std::vector<caf::actor>& nodes, uint64_t epoch) {
      auto& st = self->state;
      for (const auto& a : st.stages) self->demonitor(a);
      for (const auto& a : st.nodes)
        if (a) self->demonitor(a);
      st.stages = std::move(stages);
      st.nodes = std::move(nodes);
      st.nodes.resize(st.stages.size());
      st.probing.assign(st.stages.size(), false);
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
