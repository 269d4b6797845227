#include "framework/deploy/deploy_supervision.h"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <thread>

#include "framework/cluster/cluster.h"
#include "framework/deploy/stage_spawning.h"
#include "models/runtime/byte_size.h"

namespace troupe {

namespace {

using Clock = Supervisor::Clock;
using std::chrono::milliseconds;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

milliseconds left_until(Clock::time_point deadline, milliseconds at_least = milliseconds(1)) {
  return std::max(at_least, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
}

using NodeMap = std::map<std::string, proto::node_actor>;  // endpoint -> node actor ("" : this process)

// Where a stage could run: a node actor and its endpoint ("" : this process).
struct Placement {
  std::string endpoint;
  proto::node_actor node;
};

// What a repair (or a move home) gave, sent by its worker to the supervision actor.
struct RepairOutcome {
  bool move_home = false;  // a stage moving back to its own node (else a repair after a failure)
  size_t index = 0;
  FailureKind kind = FailureKind::down;
  std::string cause;
  Clock::time_point detected_at;
  Placement to;
  proto::StageReady ready;
  std::string failure;  // "" : the stage runs at `to` and its live neighbours are wired to it
};

// How a step request is answered (with the epoch, a failure text and the replies).
enum StepAnswer : int32_t {
  step_done = 0,   // the replies, one per part
  step_stale = 1,  // the session's caches are of an older epoch: replay it into `epoch` first
  step_retry = 2,  // a failure that is being repaired (the text says which): send it again
};

}  // namespace
}  // namespace troupe

// Messages between the supervision actor, its workers and the façade, all in this process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<troupe::DeployedStage>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<troupe::Recovery>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::PipelineHealth)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::RepairOutcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::NodeMap)

namespace troupe {

const char* to_string(PipelineHealth::State state) {
  switch (state) {
    case PipelineHealth::State::ok: return "ok";
    case PipelineHealth::State::degraded: return "degraded";
    case PipelineHealth::State::unavailable: return "unavailable";
  }
  return "?";
}

namespace {

using start_atom = caf::atom_constant<caf::atom("sv_start")>;
using stop_atom = caf::atom_constant<caf::atom("sv_stop")>;
using open_atom = caf::atom_constant<caf::atom("sv_open")>;
using close_atom = caf::atom_constant<caf::atom("sv_close")>;
using step_atom = caf::atom_constant<caf::atom("sv_step")>;
using end_atom = caf::atom_constant<caf::atom("sv_end")>;
using replayed_atom = caf::atom_constant<caf::atom("sv_replay")>;
using failed_atom = caf::atom_constant<caf::atom("sv_failed")>;
using repaired_atom = caf::atom_constant<caf::atom("sv_fixed")>;
using reached_atom = caf::atom_constant<caf::atom("sv_reach")>;
using tick_atom = caf::atom_constant<caf::atom("sv_tick")>;
using expire_atom = caf::atom_constant<caf::atom("sv_expire")>;
using news_atom = caf::atom_constant<caf::atom("sv_news")>;
using stages_atom = caf::atom_constant<caf::atom("sv_stages")>;
using recoveries_atom = caf::atom_constant<caf::atom("sv_recov")>;
using health_atom = caf::atom_constant<caf::atom("sv_health")>;
using standby_atom = caf::atom_constant<caf::atom("sv_standby")>;

std::string stage_label(const DeployedStage& s) {
  return "stage " + s.describe + (s.endpoint.empty() ? " in this process" : " on node " + s.endpoint);
}

// ---- Repair workers: blocking dialogues with nodes, on their own (detached) actor. They get
// a copy of what they need and answer with a message; they share nothing with the actor.

struct Topology {
  DeployOptions options;
  proto::node_actor local_node;
  std::vector<DeployedStage> stages;
  std::vector<proto::SpawnStage> spawns;
  std::map<std::string, proto::node_actor> nodes;  // endpoint -> node actor ("" : this process)
  std::vector<std::string> homes;           // the node each stage was deployed on
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);  // set when the pipeline stops
};

bool answers(caf::blocking_actor* self, const Topology& t, const proto::node_actor& node) {
  if (!node) return false;
  if (node == t.local_node) return true;
  bool ok = false;
  self->request(node, t.options.heartbeat_timeout, proto::ping_atom::value)
    .receive([&](caf::ok_atom) { ok = true; }, [](caf::error&) {});
  return ok;
}

// Reaches `endpoint` and checks it answers a ping; throws when it does not.
proto::node_actor reach(caf::blocking_actor* self, const Topology& t, const std::string& endpoint,
                        milliseconds timeout) {
  if (endpoint.empty()) return t.local_node;
  proto::node_actor node = connect_node(self->system(), parse_endpoint(endpoint), timeout).actor;  // throws when unreachable
  if (!answers(self, t, node)) throw std::runtime_error("node " + endpoint + " did not answer a ping");
  return node;
}

std::vector<std::string> candidates(const Topology& t, size_t index, FailureKind kind) {
  const std::string own = t.stages[index].endpoint;
  std::vector<std::string> out;
  auto add = [&](const std::string& ep) {
    if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
  };
  // A stage that threw: its node is fine. Otherwise its node is dead or hung: it comes last
  // (a caf-node restarted on the same port, a laptop that wakes up).
  if (kind == FailureKind::exception || own.empty()) add(own);
  for (const auto& ep : t.options.standby_nodes)
    if (ep != own) add(ep);
  if (t.options.survivors_take_over)
    for (const auto& s : t.stages)
      if (s.endpoint != own) add(s.endpoint);
  add(own);
  return out;
}

// Stage `index`'s spawn request for the node at `endpoint`. Weights travel as at deploy
// (shard_request_for): a node with a shard cache gets the stage's shard first when the model
// file is here, and loads from it; any other node (or this process) loads the model from its
// own models dir. `cache_cap`: the node's, when its NodeInfo was read already. Throws naming
// the node when the shard cannot be sent.
proto::SpawnStage spawn_request_for(caf::blocking_actor* self, const Topology& t, size_t index,
                                    const std::string& endpoint, const proto::node_actor& node,
                                    std::optional<uint64_t> cache_cap) {
  proto::SpawnStage spawn = t.spawns[index];
  spawn.shard.clear();
  if (endpoint.empty() || !t.options.send_weights) return spawn;
  if (!cache_cap) {
    std::string failure;
    self->request(node, t.options.connect_timeout, proto::info_atom::value)
      .receive([&](proto::NodeInfo& i) { cache_cap = i.cache_cap; },
               [&](caf::error& e) { failure = proto::error_text(e); });
    if (!failure.empty()) throw std::runtime_error(failure);
  }
  if (auto request =
        shard_request_for(node, endpoint, *cache_cap, t.options.local_models_dir, spawn.model, spawn.spec))
    spawn.shard = ensure_stage_shards(self->system(), {*request}, t.options.transfer).front().sha256;
  return spawn;
}

// Spawns stage `index` on the first candidate that loads it, trying again until `deadline`;
// `reasons` says why each candidate could not.
std::optional<Placement> place(caf::blocking_actor* self, const Topology& t, size_t index, FailureKind kind,
                               Clock::time_point deadline, proto::StageReady& ready, std::string& reasons) {
  const auto list = candidates(t, index, kind);
  const uint64_t weights = t.stages[index].weight_bytes;
  const auto& options = t.options;
  for (;;) {
    reasons.clear();
    auto why_not = [&](const std::string& ep, const std::string& why) {
      reasons += (reasons.empty() ? "" : "; ") + (ep.empty() ? std::string("this process") : "node " + ep) + ": " + why;
    };
    // The candidates that answer, those with more free memory first (standbys and the own
    // node keep their place in front).
    struct Live {
      std::string endpoint;
      proto::node_actor node;
      uint64_t free = 0;
      bool ranked = false;
      std::optional<uint64_t> cache_cap;  // from its NodeInfo, when read here
    };
    std::vector<Live> live;
    for (const auto& ep : list) {
      Live l{ep, {}, 0, false, std::nullopt};
      try {
        l.node = reach(self, t, ep, std::min(options.connect_timeout, left_until(deadline, milliseconds(500))));
      } catch (const std::exception& e) {
        why_not(ep, e.what());
        continue;
      }
      bool survivor = false;
      for (size_t i = 0; i < t.stages.size(); ++i) survivor = survivor || (i != index && t.stages[i].endpoint == ep);
      // A node without the memory for the stage is passed over, with why (not its own node:
      // what it holds includes the stage being replaced).
      if (!ep.empty() && ep != t.stages[index].endpoint) {
        proto::NodeInfo info;
        std::string failure;
        self->request(l.node, options.connect_timeout, proto::info_atom::value)
          .receive([&](proto::NodeInfo& i) { info = std::move(i); },
                   [&](caf::error& e) { failure = proto::error_text(e); });
        if (!failure.empty()) {
          why_not(ep, failure);
          continue;
        }
        l.free = info.memory_limit > 0 ? (info.memory_limit > info.rss ? info.memory_limit - info.rss : 0)
                                       : info.mem_available;
        l.ranked = survivor;  // survivors by free memory; standbys and the own node keep their place in front
        l.cache_cap = info.cache_cap;
        if (l.free < weights) {
          why_not(ep, "has " + format_size(l.free) + " free" +
                        (info.memory_limit > 0 ? " under --memory-limit " + format_size(info.memory_limit) : "") +
                        ", the stage needs " + format_size(weights) + " of weights");
          continue;
        }
      }
      live.push_back(std::move(l));
    }
    std::stable_sort(live.begin(), live.end(), [](const Live& a, const Live& b) {
      return a.ranked && b.ranked && a.free > b.free;
    });
    for (const auto& l : live) {
      proto::SpawnStage spawn;
      try {
        spawn = spawn_request_for(self, t, index, l.endpoint, l.node, l.cache_cap);
      } catch (const std::exception& e) {
        why_not(l.endpoint, e.what());
        continue;
      }
      SpawnOutcome o = spawn_on_nodes(self->system(), {l.node}, {spawn}, options.spawn_timeout).front();
      if (o.ready) {
        ready = std::move(*o.ready);
        return Placement{l.endpoint, l.node};
      }
      why_not(l.endpoint, o.error);
    }
    if (t.cancelled->load() || Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::min(milliseconds(250), left_until(deadline)));  // this worker's own thread
    if (t.cancelled->load()) return std::nullopt;
  }
}

// Connects the live neighbours' nodes to `to` directly (as deploy does), then points the
// predecessor at the new stage and the new stage at the successor. A dead neighbour is left
// out: the new epoch's watch reports it at once and it is repaired next. "" or the failure.
std::string wire_in(caf::blocking_actor* self, const Topology& t, size_t index, const Placement& to,
                    const proto::StageReady& ready) {
  const auto& now = t.stages;
  std::string failure;
  auto node_for = [&](const std::string& ep) {
    auto it = t.nodes.find(ep);
    return it == t.nodes.end() ? proto::node_actor{} : it->second;
  };
  auto alive = [&](size_t i) { return now[i].endpoint.empty() || answers(self, t, node_for(now[i].endpoint)); };
  auto peer = [&](const std::string& from, const proto::node_actor& from_node, const std::string& target,
                  const proto::stage_actor& to_stage) {
    if (!failure.empty() || from.empty() || target.empty() || from == target) return;
    const Endpoint ep = parse_endpoint(target);
    self->request(from_node, t.options.connect_timeout + std::chrono::seconds(10), proto::peer_atom::value, ep.host,
                  ep.port, to_stage.node())
      .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
  };
  auto wire = [&](const proto::stage_actor& from, const proto::stage_successor& target) {
    if (!failure.empty()) return;
    self->request(from, t.options.connect_timeout, proto::next_atom::value, target)
      .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
  };
  const bool before = index > 0 && alive(index - 1);
  const bool after = index + 1 < now.size() && alive(index + 1);
  if (before) peer(now[index - 1].endpoint, node_for(now[index - 1].endpoint), to.endpoint, ready.stage);
  if (after) peer(to.endpoint, to.node, now[index + 1].endpoint, now[index + 1].actor);
  if (after) wire(ready.stage, now[index + 1].actor);
  if (before) wire(now[index - 1].actor, ready.stage);
  return failure;
}

// A failed stage placed again and wired in.
void repair_worker(caf::blocking_actor* self, Topology t, caf::actor supervision, RepairOutcome out) {
  const std::string failed = stage_label(t.stages[out.index]);
  std::string reasons;
  const auto placed = place(self, t, out.index, out.kind, Clock::now() + t.options.replacement_wait, out.ready, reasons);
  if (!placed) {
    out.failure = failed + " " + out.cause + ", and no node could take it over within " +
                  std::to_string(t.options.replacement_wait.count()) + " ms (" +
                  (t.options.standby_nodes.empty() ? std::string("no standby nodes; ") : std::string()) + reasons + ")";
  } else {
    out.to = *placed;
    const std::string failure = wire_in(self, t, out.index, out.to, out.ready);
    if (!failure.empty()) {
      self->send_exit(out.ready.stage, caf::exit_reason::user_shutdown);
      out.failure = failed + " " + out.cause + "; restarted on " +
                    (placed->endpoint.empty() ? "this process" : placed->endpoint) +
                    " but could not be wired in: " + failure;
    }
  }
  self->send(supervision, repaired_atom::value, std::move(out));
}

// Probes the own node of each stage away from it, without holding anything up (it may be
// gone for good); the first that answers is reported.
void probe_worker(caf::blocking_actor* self, Topology t, caf::actor supervision) {
  for (size_t i = 0; i < t.stages.size(); ++i) {
    if (t.stages[i].endpoint == t.homes[i]) continue;
    try {
      proto::node_actor node = reach(self, t, t.homes[i], std::min(t.options.connect_timeout, milliseconds(1000)));
      self->send(supervision, reached_atom::value, true, i, node, t.stages[i].actor);
      return;
    } catch (const std::exception&) {
    }
  }
  self->send(supervision, reached_atom::value, false, size_t{0}, proto::node_actor{}, proto::stage_actor{});
}

// A stage spawned again on its own node (which answers again) and wired in.
void move_home_worker(caf::blocking_actor* self, Topology t, caf::actor supervision, RepairOutcome out) {
  SpawnOutcome o;
  try {
    const proto::SpawnStage spawn = spawn_request_for(self, t, out.index, out.to.endpoint, out.to.node, std::nullopt);
    o = spawn_on_nodes(self->system(), {out.to.node}, {spawn}, t.options.spawn_timeout).front();
  } catch (const std::exception& e) {
    o.error = e.what();
  }
  std::string failure = std::move(o.error);
  if (o.ready) {
    out.ready = std::move(*o.ready);
    failure = wire_in(self, t, out.index, out.to, out.ready);
    if (!failure.empty()) self->send_exit(out.ready.stage, caf::exit_reason::user_shutdown);
  }
  out.failure = failure;
  self->send(supervision, repaired_atom::value, std::move(out));
}

// ---- The supervision actor.

struct InFlight {  // a step forwarded to stage 0
  caf::response_promise rp;
  uint64_t epoch = 0;
  std::vector<proto::TokenReply> replies;
  size_t left = 0;
};

struct Queued {  // a step that arrived during a repair
  caf::response_promise rp;
  uint64_t epoch = 0;
  std::vector<std::string> parts;
};

struct Waiting {  // a failed step waiting to see whether a repair follows
  caf::response_promise rp;
  std::string failure;
};

struct Report {
  size_t stage = 0;
  FailureKind kind = FailureKind::down;
  std::string cause;
  uint64_t epoch = 0;
};

// The topology (what a worker gets a copy of) and what only the actor keeps.
struct SupervisionState : Topology {
  caf::actor watcher;                       // actors/supervisor_actor.h
  uint64_t epoch = 0;
  bool recovering = false;  // a repair or a move home is under way
  bool healing = false;     // a probe or a move home is under way
  bool worker_running = false;
  bool stopping = false;
  std::string broken;         // set when a stage could not be restarted: the pipeline cannot serve
  size_t broken_stage = 0;    // the stage being repaired, or that could not be
  std::string broken_cause;   // what happened to it ("went down (...)")
  Clock::time_point last_heal = Clock::now();  // the last look for returned nodes (or retry of a broken pipeline)
  int32_t active_sessions = 0;
  std::vector<Recovery> recoveries;
  std::optional<Report> deferred;  // a failure reported while a move home was under way
  uint64_t next_id = 0;
  std::map<uint64_t, InFlight> in_flight;
  std::map<uint64_t, Queued> queued;
  std::map<uint64_t, Waiting> waiting;

  static inline const char* name = "troupe.supervision";

  std::string label(size_t i) const { return stage_label(stages[i]); }

  Topology topology() const { return *this; }  // a copy of the Topology part, for a worker
};

using SupervisionActor = caf::stateful_actor<SupervisionState>;

caf::error failure_error(const std::string& text) { return caf::make_error(caf::sec::runtime_error, text); }

void deliver_retry(caf::response_promise& rp, const std::string& failure, uint64_t epoch) {
  rp.deliver(static_cast<int32_t>(step_retry), epoch, failure, std::vector<proto::TokenReply>{});
}

void handle_step(SupervisionActor* self, caf::response_promise rp, uint64_t epoch, std::vector<std::string> parts);
void report(SupervisionActor* self, const Report& r);

// A failed step learns whether a repair follows: it is answered "retry" at once when one is
// (or was) under way, else after a heartbeat round with its failure.
void step_failed(SupervisionActor* self, caf::response_promise rp, uint64_t epoch, const std::string& failure,
                 const std::optional<proto::StageFailure>& failed_stage) {
  auto& st = self->state;
  // A stage that threw says which it is (proto::StageFailure: its layers): restart it like a
  // dead one. Other failures (down, hung) the watcher reports itself.
  if (failed_stage)
    for (size_t i = 0; i < st.spawns.size() && i < st.stages.size(); ++i)
      if (st.spawns[i].spec == failed_stage->spec) {
        report(self, Report{i, FailureKind::exception, "threw: " + failure, epoch});
        break;
      }
  if (st.epoch != epoch || st.recovering || !st.broken.empty() || st.stopping) {
    deliver_retry(rp, failure, st.epoch);
    return;
  }
  const uint64_t id = st.next_id++;
  st.waiting.emplace(id, Waiting{std::move(rp), failure});
  self->delayed_send(self, st.options.heartbeat_interval + st.options.heartbeat_timeout + milliseconds(500),
                     news_atom::value, id);
}

// Something happened (a repair started or ended, the pipeline broke or stops): the failed
// steps waiting for news go again.
void tell_news(SupervisionActor* self) {
  auto waiting = std::move(self->state.waiting);
  self->state.waiting.clear();
  for (auto& [id, w] : waiting) deliver_retry(w.rp, w.failure, self->state.epoch);
}

// Nothing in flight will come back (a stage is gone or hung): its steps go again after the repair.
void fail_in_flight(SupervisionActor* self, const std::string& why) {
  auto in_flight = std::move(self->state.in_flight);
  self->state.in_flight.clear();
  for (auto& [id, f] : in_flight) deliver_retry(f.rp, why, self->state.epoch);
}

// The steps that waited for a repair to end go on (or fail with why the pipeline is broken).
void release_queued(SupervisionActor* self) {
  auto queued = std::move(self->state.queued);
  self->state.queued.clear();
  for (auto& [id, q] : queued) handle_step(self, std::move(q.rp), q.epoch, std::move(q.parts));
}

void forward(SupervisionActor* self, caf::response_promise rp, std::vector<std::string> parts) {
  auto& st = self->state;
  const uint64_t id = st.next_id++;
  InFlight& f = st.in_flight[id];
  f.rp = std::move(rp);
  f.epoch = st.epoch;
  f.replies.resize(parts.size());
  f.left = parts.size();
  // All parts go out at once (a chunked prefill: stage k computes part i while stage k+1
  // computes part i-1); a stage keeps one session's parts in order, and one part failing
  // fails those after it.
  const proto::stage_actor first = st.stages.front().actor;
  const auto timeout = st.options.step_timeout;
  for (size_t i = 0; i < parts.size(); ++i)
    self->request(first, timeout, proto::Activation{std::move(parts[i])})
      .then(
        [self, id, i](proto::TokenReply& reply) {
          auto it = self->state.in_flight.find(id);
          if (it == self->state.in_flight.end()) return;
          InFlight& f = it->second;
          f.replies[i] = std::move(reply);
          if (--f.left > 0) return;
          f.rp.deliver(static_cast<int32_t>(step_done), f.epoch, std::string(), std::move(f.replies));
          self->state.in_flight.erase(it);
        },
        [self, id, timeout](caf::error& e) {
          auto it = self->state.in_flight.find(id);
          if (it == self->state.in_flight.end()) return;  // the first failure says what happened
          InFlight f = std::move(it->second);
          self->state.in_flight.erase(it);
          step_failed(self, std::move(f.rp), f.epoch,
                      e == caf::sec::request_timeout ? "no token within " + std::to_string(timeout.count()) +
                                                         " ms (a node is down or overloaded)"
                                                     : proto::error_text(e),
                      proto::stage_failure_of(e));
        });
}

void handle_step(SupervisionActor* self, caf::response_promise rp, uint64_t epoch, std::vector<std::string> parts) {
  auto& st = self->state;
  if (st.stopping) {
    rp.deliver(failure_error("the pipeline was shut down"));
  } else if (st.recovering) {
    const uint64_t id = st.next_id++;
    st.queued.emplace(id, Queued{std::move(rp), epoch, std::move(parts)});
    self->delayed_send(self, st.options.repair_wait, expire_atom::value, id);
  } else if (!st.broken.empty()) {
    rp.deliver(failure_error(st.broken));
  } else if (epoch != st.epoch) {
    rp.deliver(static_cast<int32_t>(step_stale), st.epoch, std::string(), std::vector<proto::TokenReply>{});
  } else if (st.stages.empty()) {
    rp.deliver(failure_error("the pipeline has no stages"));
  } else {
    forward(self, std::move(rp), std::move(parts));
  }
}

// Sends the watcher the topology of this epoch. Watched only once the epoch has moved on: a
// neighbour that is dead too (monitoring it reports it at once) starts the next repair.
void watch(SupervisionActor* self) {
  auto& st = self->state;
  std::vector<proto::stage_actor> actors;
  std::vector<proto::node_actor> nodes;
  for (const auto& s : st.stages) {
    actors.push_back(s.actor);
    nodes.push_back(s.endpoint.empty() ? proto::node_actor{} : st.nodes.at(s.endpoint));
  }
  self->send(st.watcher, proto::watch_atom::value, std::move(actors), std::move(nodes), st.epoch);
}

void start_repair(SupervisionActor* self, size_t stage, FailureKind kind, const std::string& cause,
                  Clock::time_point detected_at) {
  auto& st = self->state;
  st.recovering = true;
  st.broken_stage = stage;
  st.worker_running = true;
  RepairOutcome out;
  out.index = stage;
  out.kind = kind;
  out.cause = cause;
  out.detected_at = detected_at;
  self->spawn<caf::detached>(repair_worker, st.topology(), caf::actor_cast<caf::actor>(self), std::move(out));
}

void report(SupervisionActor* self, const Report& r) {
  auto& st = self->state;
  if (st.stopping || !st.broken.empty() || r.epoch != st.epoch || r.stage >= st.stages.size()) return;  // nothing to do
  if (st.recovering) {  // a move home is under way: taken up when it ends
    if (!st.deferred) st.deferred = r;
    return;
  }
  const std::string why = st.label(r.stage) + " " + r.cause;
  spdlog::warn("supervisor: {} ({}); restarting it", why, to_string(r.kind));
  start_repair(self, r.stage, r.kind, r.cause, Clock::now());
  fail_in_flight(self, why);
  tell_news(self);
}

void fail_for_good(SupervisionActor* self, size_t index, const std::string& cause, const std::string& why) {
  auto& st = self->state;
  spdlog::error("supervisor: {}", why);
  st.broken = why;
  st.broken_cause = cause;
  st.broken_stage = index;
  st.recovering = false;
  st.deferred.reset();
  st.last_heal = Clock::now();
  auto in_flight = std::move(st.in_flight);
  st.in_flight.clear();
  for (auto& [id, f] : in_flight) f.rp.deliver(failure_error(why));
  tell_news(self);
  release_queued(self);
}

// Puts the replacement in place of its stage and moves to the next epoch.
void swap_in(SupervisionActor* self, RepairOutcome& o) {
  auto& st = self->state;
  const DeployedStage old = st.stages[o.index];
  st.stages[o.index] =
    DeployedStage{o.to.endpoint, o.ready.describe, o.ready.stage, o.ready.weight_bytes, o.ready.load_ms, o.ready.threads};
  st.nodes[o.to.endpoint] = o.to.node;
  // The old stage, if it still runs somewhere (an exception, a hung node that wakes up: it
  // drops its stale stage when it reads this).
  self->send_exit(old.actor, caf::exit_reason::user_shutdown);
  Recovery r;
  r.stage_index = o.index;
  r.stage = old.describe;
  r.from_node = old.endpoint;
  r.to_node = o.to.endpoint;
  r.kind = o.move_home ? "returned" : to_string(o.kind);
  r.cause = o.cause;
  r.detected_at = o.detected_at;
  r.restored_at = Clock::now();
  r.restore_ms = ms_between(r.detected_at, r.restored_at);
  spdlog::warn("supervisor: stage {} {} on {} in {:.0f} ms (cause: {}, {}); sessions in flight replay now", r.stage,
               o.move_home ? "moved back" : "restarted",
               o.to.endpoint.empty() ? "this process" : "node " + o.to.endpoint, r.restore_ms, r.kind, r.cause);
  st.recoveries.push_back(std::move(r));
  ++st.epoch;
  st.recovering = false;
  st.broken.clear();
  st.deferred.reset();  // about the old epoch: the new watch notices it again
  watch(self);
  tell_news(self);
  release_queued(self);  // answered "stale": they replay into the new epoch
}

void on_repaired(SupervisionActor* self, RepairOutcome& o) {
  auto& st = self->state;
  st.worker_running = false;
  if (o.move_home) st.healing = false;
  if (st.stopping) {
    if (o.failure.empty()) self->send_exit(o.ready.stage, caf::exit_reason::user_shutdown);
    self->quit(caf::exit_reason::user_shutdown);
    return;
  }
  if (o.failure.empty()) {
    swap_in(self, o);
    return;
  }
  if (!o.move_home) {
    fail_for_good(self, o.index, o.cause, o.failure);
    return;
  }
  spdlog::warn("supervisor: could not move {} back to node {}: {}", st.label(o.index), st.homes[o.index], o.failure);
  st.recovering = false;
  tell_news(self);
  release_queued(self);
  if (auto r = std::exchange(st.deferred, std::nullopt)) report(self, *r);
}

// Every heartbeat interval: retries a broken pipeline, or moves a stage home at a quiet moment.
void on_tick(SupervisionActor* self) {
  auto& st = self->state;
  const auto now = Clock::now();
  if (st.stopping || st.recovering || st.healing || now - st.last_heal < st.options.heal_interval) return;
  st.last_heal = now;
  if (!st.broken.empty()) {
    // Try the repair again: a node may have come back, or another may have room now.
    spdlog::info("supervisor: trying again to repair {}", st.label(st.broken_stage));
    start_repair(self, st.broken_stage, FailureKind::down, st.broken_cause, now);
    return;
  }
  bool away = false;
  for (size_t i = 0; i < st.stages.size(); ++i) away = away || st.stages[i].endpoint != st.homes[i];
  if (!away || st.active_sessions > 0) return;
  st.healing = true;
  self->spawn<caf::detached>(probe_worker, st.topology(), caf::actor_cast<caf::actor>(self));
}

void on_reached(SupervisionActor* self, bool found, size_t i, proto::node_actor node, const proto::stage_actor& probed) {
  auto& st = self->state;
  // Only at a quiet moment: a generation that starts now waits for the move (repair_wait).
  if (!found || st.stopping || st.recovering || !st.broken.empty() || st.active_sessions > 0 ||
      i >= st.stages.size() || st.stages[i].actor != probed) {
    st.healing = false;
    return;
  }
  st.recovering = true;
  st.broken_stage = i;
  st.worker_running = true;
  RepairOutcome out;
  out.move_home = true;
  out.index = i;
  out.cause = "node " + st.homes[i] + " answers again";
  out.detected_at = Clock::now();
  out.to = Placement{st.homes[i], std::move(node)};
  self->spawn<caf::detached>(move_home_worker, st.topology(), caf::actor_cast<caf::actor>(self), std::move(out));
}

PipelineHealth health_of(const SupervisionState& st) {
  PipelineHealth h;
  if (!st.broken.empty()) return {PipelineHealth::State::unavailable, st.broken};
  if (st.recovering) return {PipelineHealth::State::degraded, "repairing " + st.label(st.broken_stage)};
  for (size_t i = 0; i < st.stages.size(); ++i) {
    if (st.stages[i].endpoint == st.homes[i]) continue;
    h.state = PipelineHealth::State::degraded;
    h.detail += (h.detail.empty() ? "" : "; ") + st.label(i) + " instead of node " + st.homes[i] + " (gone)";
  }
  return h;
}

caf::behavior supervision_behavior(SupervisionActor* self, DeployOptions options, proto::node_actor local_node) {
  self->state.options = std::move(options);
  self->state.local_node = std::move(local_node);
  self->set_exception_handler([](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::error("supervisor: {}", x.what());
      return caf::make_error(caf::sec::runtime_error, x.what());
    }
  });
  return {
    [](caf::ok_atom) {},  // the watcher's answer to watch_atom
    [self](start_atom, std::vector<DeployedStage>& stages, std::vector<proto::SpawnStage>& spawns, NodeMap& nodes) {
      auto& st = self->state;
      st.stages = std::move(stages);
      st.spawns = std::move(spawns);
      st.nodes = std::move(nodes);
      for (const auto& s : st.stages) st.homes.push_back(s.endpoint);
      const caf::actor me = caf::actor_cast<caf::actor>(self);
      st.watcher = spawn_supervisor_actor(
        self->system(),
        HeartbeatTimes{st.options.heartbeat_interval, st.options.heartbeat_timeout, st.options.stage_stall_timeout},
        [me](size_t stage, FailureKind kind, const std::string& cause, uint64_t epoch) {
          caf::anon_send(me, failed_atom::value, stage, static_cast<int32_t>(kind), cause, epoch);
          return true;  // taken up later if a repair is under way (SupervisionState::deferred)
        });
      self->link_to(st.watcher);  // it ends with this actor
      watch(self);
      self->send(self, tick_atom::value);
      return caf::ok_atom::value;
    },
    [self](stop_atom) {
      auto& st = self->state;
      st.stopping = true;
      st.cancelled->store(true);
      const auto shut = failure_error("the pipeline was shut down");
      for (auto& [id, f] : st.in_flight) f.rp.deliver(shut);
      st.in_flight.clear();
      for (auto& [id, q] : st.queued) q.rp.deliver(shut);
      st.queued.clear();
      for (auto& [id, w] : st.waiting) w.rp.deliver(shut);
      st.waiting.clear();
      // A repair under way ends first (its worker sees `cancelled`), so that it cannot leave
      // a stage running once the pipeline is gone.
      if (!st.worker_running) self->quit(caf::exit_reason::user_shutdown);
    },
    [self](open_atom) {
      ++self->state.active_sessions;
      return self->state.epoch;
    },
    [self](close_atom) { --self->state.active_sessions; },
    [self](step_atom, uint64_t epoch, std::vector<std::string>& parts) {
      handle_step(self, self->make_response_promise(), epoch, std::move(parts));
    },
    [self](end_atom, uint64_t session) {
      // Ends the session on every stage, awaited: no cache of it survives, and a replay's
      // first step cannot overtake the end.
      auto rp = self->make_response_promise();
      auto left = std::make_shared<size_t>(self->state.stages.size());
      auto failed = std::make_shared<bool>(false);
      if (*left == 0) rp.deliver(caf::ok_atom::value);
      for (const auto& s : self->state.stages)
        self->request(s.actor, self->state.options.connect_timeout, proto::end_session_atom::value, session)
          .then(
            [rp, left, failed](caf::ok_atom) mutable {
              if (--*left == 0 && !*failed) rp.deliver(caf::ok_atom::value);
            },
            [rp, failed](caf::error& e) mutable {
              if (std::exchange(*failed, true)) return;
              rp.deliver(failure_error("ending session before replay: " + proto::error_text(e)));
            });
    },
    [self](replayed_atom, int64_t positions, double ms) {
      auto& st = self->state;
      if (st.recoveries.empty()) return;
      Recovery& r = st.recoveries.back();
      ++r.sessions_replayed;
      r.tokens_replayed += positions;
      r.replay_ms = std::max(r.replay_ms, ms);
    },
    [self](failed_atom, size_t stage, int32_t kind, std::string& cause, uint64_t epoch) {
      report(self, Report{stage, static_cast<FailureKind>(kind), std::move(cause), epoch});
    },
    [self](repaired_atom, RepairOutcome& outcome) { on_repaired(self, outcome); },
    [self](reached_atom, bool found, size_t i, proto::node_actor& node, proto::stage_actor& probed) {
      on_reached(self, found, i, std::move(node), probed);
    },
    [self](tick_atom) {
      on_tick(self);
      self->delayed_send(self, self->state.options.heartbeat_interval, tick_atom::value);
    },
    [self](expire_atom, uint64_t id) {
      auto& st = self->state;
      auto it = st.queued.find(id);
      if (it == st.queued.end()) return;
      it->second.rp.deliver(failure_error("the pipeline is still being repaired (" + st.label(st.broken_stage) +
                                          ") after " + std::to_string(st.options.repair_wait.count()) +
                                          " ms (repair_wait, --repair-wait)"));
      st.queued.erase(it);
    },
    [self](news_atom, uint64_t id) {
      auto it = self->state.waiting.find(id);
      if (it == self->state.waiting.end()) return;
      it->second.rp.deliver(failure_error(it->second.failure));  // nothing noticed: a plain error
      self->state.waiting.erase(it);
    },
    [self](stages_atom) { return self->state.stages; },
    [self](recoveries_atom) { return self->state.recoveries; },
    [self](health_atom) { return health_of(self->state); },
    [self](standby_atom) { return self->state.options.standby_nodes; },
    [self](standby_atom, const std::vector<std::string>& endpoints) {
      auto& standby = self->state.options.standby_nodes;
      for (const auto& ep : endpoints)
        if (std::find(standby.begin(), standby.end(), ep) == standby.end()) {
          standby.push_back(ep);
          spdlog::info("supervisor: node {} stands by to take a stage over", ep);
        }
    },
  };
}

}  // namespace

Supervisor::Supervisor(caf::actor_system& sys, const DeployOptions& options, proto::node_actor local_node)
    : sys_(sys), options_(options), local_node_(local_node), actor_(sys.spawn(supervision_behavior, options, local_node)) {}

Supervisor::~Supervisor() { stop(); }

void Supervisor::start(std::vector<DeployedStage> stages, std::vector<proto::SpawnStage> spawns) {
  NodeMap nodes;
  for (const auto& s : stages) {
    if (nodes.count(s.endpoint)) continue;
    // deploy has reached every node already: this only looks up the node actors again.
    nodes[s.endpoint] = s.endpoint.empty() ? local_node_
                                           : connect_node(sys_, parse_endpoint(s.endpoint), options_.connect_timeout).actor;
  }
  caf::scoped_actor self{sys_};
  std::string failure;
  self->request(actor_, caf::infinite, start_atom::value, std::move(stages), std::move(spawns), std::move(nodes))
    .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
  if (!failure.empty()) throw std::runtime_error(failure);
}

void Supervisor::stop() {
  if (!actor_) return;
  caf::scoped_actor self{sys_};
  self->monitor(actor_);
  self->send(actor_, stop_atom::value);
  // A repair under way ends within its timeouts (spawning a stage: spawn_timeout).
  self->receive([](const caf::down_msg&) {},
                caf::after(options_.spawn_timeout + options_.connect_timeout) >> [&] {
                  spdlog::warn("supervisor: a repair did not end; stopping without it");
                  self->send_exit(actor_, caf::exit_reason::kill);
                });
  actor_ = caf::actor{};
}

namespace {

template <class T, class... Ask>
T ask(caf::actor_system& sys, const caf::actor& actor, Ask... what) {
  T out{};
  if (!actor) return out;
  caf::scoped_actor self{sys};
  self->request(actor, caf::infinite, what...).receive([&](T& r) { out = std::move(r); }, [](caf::error&) {});
  return out;
}

}  // namespace

std::vector<DeployedStage> Supervisor::stages() const {
  return ask<std::vector<DeployedStage>>(sys_, actor_, stages_atom::value);
}

std::vector<Recovery> Supervisor::recoveries() const {
  return ask<std::vector<Recovery>>(sys_, actor_, recoveries_atom::value);
}

std::vector<std::string> Supervisor::standby_nodes() const {
  return ask<std::vector<std::string>>(sys_, actor_, standby_atom::value);
}

void Supervisor::add_standby_nodes(const std::vector<std::string>& endpoints) {
  caf::anon_send(actor_, standby_atom::value, endpoints);
}

PipelineHealth Supervisor::health() const {
  if (!actor_) return {PipelineHealth::State::unavailable, "the pipeline was shut down"};
  return ask<PipelineHealth>(sys_, actor_, health_atom::value);
}

Supervisor::Session Supervisor::open_session(uint64_t id) {
  Session s;
  s.id = id;
  s.epoch = ask<uint64_t>(sys_, actor_, open_atom::value);
  return s;
}

void Supervisor::close_session() { caf::anon_send(actor_, close_atom::value); }

namespace {

struct Answer {
  int32_t kind = step_done;
  uint64_t epoch = 0;
  std::string failure;
  std::vector<proto::TokenReply> replies;
};

// One step request to the supervision actor; throws PipelineError when it fails for good.
Answer ask_step(caf::scoped_actor& self, const caf::actor& actor, const DeployOptions& options, uint64_t epoch,
                const std::vector<std::string>& parts) {
  // A backstop only: the actor answers every step within step_timeout, or repair_wait.
  const auto backstop = options.repair_wait + options.step_timeout + std::chrono::minutes(1);
  Answer a;
  std::string error;
  self->request(actor, backstop, step_atom::value, epoch, parts)
    .receive(
      [&](int32_t kind, uint64_t now, std::string& failure, std::vector<proto::TokenReply>& replies) {
        a = Answer{kind, now, std::move(failure), std::move(replies)};
      },
      [&](caf::error& e) { error = proto::error_text(e); });
  if (!error.empty()) throw PipelineError(error);
  return a;
}

}  // namespace

std::string Supervisor::replay(caf::scoped_actor& self, Session& session, uint64_t epoch) {
  const auto t0 = Clock::now();
  std::string failure;
  self->request(actor_, caf::infinite, end_atom::value, session.id)
    .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
  if (!failure.empty()) return failure;
  // The same steps, chunked as first sent, so every stage computes bitwise the same cache.
  for (size_t k = 0; k < session.sent.size(); ++k) {
    const Answer a = ask_step(self, actor_, options_, epoch, {session.sent[k]});
    if (a.kind != step_done) return a.kind == step_stale ? "the topology changed again during the replay" : a.failure;
    const int32_t token = a.replies.front().token;
    if (token != session.tokens[k])
      throw PipelineError("replay of session " + std::to_string(session.id) + " diverged at step " +
                          std::to_string(k) + ": token " + std::to_string(token) + " instead of " +
                          std::to_string(session.tokens[k]));
  }
  const double ms = ms_between(t0, Clock::now());
  session.epoch = epoch;
  if (!session.sent.empty()) {
    ++session.recoveries;
    session.tokens_replayed += session.positions;
    caf::anon_send(actor_, replayed_atom::value, session.positions, ms);
    spdlog::info("supervisor: session {} replayed {} positions in {} steps ({:.0f} ms)", session.id,
                 session.positions, session.sent.size(), ms);
  }
  return {};
}

proto::TokenReply Supervisor::step(caf::scoped_actor& self, Session& session, const std::vector<std::string>& parts,
                                   const std::vector<int64_t>& n_inputs) {
  std::string failure;
  for (int32_t attempt = 0;; ++attempt) {
    if (attempt > options_.max_recoveries_per_step) throw PipelineError(failure);
    Answer a = ask_step(self, actor_, options_, session.epoch, parts);
    if (a.kind == step_stale) {
      failure = replay(self, session, a.epoch);
      if (failure.empty()) --attempt;  // a replay is not a failure of this step
      continue;
    }
    if (a.kind == step_retry) {
      failure = a.failure;
      continue;
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      session.sent.push_back(parts[i]);
      session.tokens.push_back(a.replies[i].token);
      session.positions += n_inputs[i];
    }
    return std::move(a.replies.back());
  }
}

}  // namespace troupe
