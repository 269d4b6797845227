// Built into troupe_actors with deploy.cpp (see actors/CMakeLists.txt).
#include "framework/deploy/deploy_supervision.h"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "framework/cluster/cluster.h"
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

}  // namespace

const char* to_string(PipelineHealth::State state) {
  switch (state) {
    case PipelineHealth::State::ok: return "ok";
    case PipelineHealth::State::degraded: return "degraded";
    case PipelineHealth::State::unavailable: return "unavailable";
  }
  return "?";
}

Supervisor::Supervisor(caf::actor_system& sys, const DeployOptions& options, caf::actor client,
                       caf::actor local_node, std::vector<DeployedStage>& stages,
                       std::vector<proto::SpawnStage> spawns)
    : sys_(sys),
      options_(options),
      client_(std::move(client)),
      local_node_(std::move(local_node)),
      stages_(stages),
      spawns_(std::move(spawns)) {
  for (const auto& s : stages_) homes_.push_back(s.endpoint);
  last_heal_ = Clock::now();
}

Supervisor::~Supervisor() { stop(); }

void Supervisor::start() {
  // deploy has reached every node already: this only looks up the node actors again.
  for (const auto& s : stages_) {
    if (nodes_.count(s.endpoint)) continue;
    nodes_[s.endpoint] = s.endpoint.empty()
                           ? local_node_
                           : connect_node(sys_, parse_endpoint(s.endpoint), options_.connect_timeout).actor;
  }
  std::weak_ptr<Supervisor> weak = shared_from_this();
  watcher_ = spawn_supervisor_actor(
    sys_, HeartbeatTimes{options_.heartbeat_interval, options_.heartbeat_timeout, options_.stage_stall_timeout},
    [weak](size_t stage, FailureKind kind, const std::string& cause, uint64_t epoch) {
      auto self = weak.lock();
      return !self || self->report_failure(stage, kind, cause, epoch);
    },
    [weak] {
      if (auto self = weak.lock()) self->on_tick();
    });
  std::vector<caf::actor> actors, nodes;
  for (const auto& s : stages_) {
    actors.push_back(s.actor);
    nodes.push_back(s.endpoint.empty() ? caf::actor{} : nodes_.at(s.endpoint));
  }
  caf::anon_send(watcher_, proto::watch_atom::value, std::move(actors), std::move(nodes), uint64_t{0});
}

void Supervisor::stop() {
  std::thread worker, healer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    worker = std::move(worker_);
    healer = std::move(healer_);
  }
  cv_.notify_all();
  if (watcher_) {
    caf::scoped_actor self{sys_};
    self->monitor(watcher_);
    self->send_exit(watcher_, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds(5)) >> [] {});
    watcher_ = caf::actor{};
  }
  if (worker.joinable()) worker.join();
  if (healer.joinable()) healer.join();
}

std::string Supervisor::label(size_t index) const {
  const DeployedStage& s = stages_[index];
  return "stage " + s.describe + (s.endpoint.empty() ? " in this process" : " on node " + s.endpoint);
}

caf::actor Supervisor::node_for(const std::string& endpoint) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(endpoint);
  return it == nodes_.end() ? caf::actor{} : it->second;
}

std::vector<DeployedStage> Supervisor::stages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stages_;
}

std::vector<Recovery> Supervisor::recoveries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return recoveries_;
}

PipelineHealth Supervisor::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  PipelineHealth h;
  if (!broken_.empty()) return {PipelineHealth::State::unavailable, broken_};
  if (recovering_) return {PipelineHealth::State::degraded, "repairing " + label(broken_stage_)};
  for (size_t i = 0; i < stages_.size(); ++i) {
    if (stages_[i].endpoint == homes_[i]) continue;
    h.state = PipelineHealth::State::degraded;
    h.detail += (h.detail.empty() ? "" : "; ") + label(i) + " instead of node " + homes_[i] + " (gone)";
  }
  return h;
}

Supervisor::Session Supervisor::open_session(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  ++active_sessions_;
  Session s;
  s.id = id;
  s.epoch = epoch_;
  return s;
}

void Supervisor::close_session() {
  std::lock_guard<std::mutex> lock(mu_);
  --active_sessions_;
}

bool Supervisor::report_failure(size_t stage, FailureKind kind, const std::string& cause, uint64_t epoch) {
  const auto detected_at = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || !broken_.empty() || epoch != epoch_ || stage >= stages_.size()) return true;  // nothing to do
  if (recovering_) return false;  // a repair or a move is under way: report it again later
  recovering_ = true;
  broken_stage_ = stage;
  const std::string why = label(stage) + " " + cause;
  spdlog::warn("supervisor: {} ({}); restarting it", why, to_string(kind));
  // Nothing in flight will come back: fail it now, the generations wait for the repair.
  caf::anon_send(client_, proto::fail_atom::value, why);
  // The previous recovery has finished (recovering_ was false) and no longer needs the lock.
  if (worker_.joinable()) worker_.join();
  worker_ = std::thread([this, stage, kind, cause, detected_at] { recover(stage, kind, cause, detected_at); });
  return true;
}

void Supervisor::on_tick() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  if (stopping_ || recovering_ || healing_ || now - last_heal_ < options_.heal_interval) return;
  last_heal_ = now;
  if (!broken_.empty()) {
    // Try the repair again: a node may have come back, or another may have room now.
    recovering_ = true;
    const size_t stage = broken_stage_;
    const std::string cause = broken_cause_;
    spdlog::info("supervisor: trying again to repair {}", label(stage));
    if (worker_.joinable()) worker_.join();
    worker_ = std::thread([this, stage, cause, now] { recover(stage, FailureKind::down, cause, now); });
    return;
  }
  bool away = false;
  for (size_t i = 0; i < stages_.size(); ++i) away = away || stages_[i].endpoint != homes_[i];
  if (!away || active_sessions_ > 0) return;
  healing_ = true;
  if (healer_.joinable()) healer_.join();  // healing_ was false: it has ended
  healer_ = std::thread([this] { heal(); });
}

void Supervisor::fail_for_good(size_t index, const std::string& cause, const std::string& why) {
  spdlog::error("supervisor: {}", why);
  {
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = why;
    broken_cause_ = cause;
    broken_stage_ = index;
    recovering_ = false;
    last_heal_ = Clock::now();
  }
  cv_.notify_all();
  caf::anon_send(client_, proto::fail_atom::value, why);
}

bool Supervisor::answers(caf::scoped_actor& self, const caf::actor& node) {
  if (!node) return false;
  if (node == local_node_) return true;
  bool ok = false;
  self->request(node, options_.heartbeat_timeout, proto::ping_atom::value)
    .receive([&](caf::ok_atom) { ok = true; }, [](caf::error&) {});
  return ok;
}

caf::actor Supervisor::reach(caf::scoped_actor& self, const std::string& endpoint, milliseconds timeout) {
  if (endpoint.empty()) return local_node_;
  caf::actor node = connect_node(sys_, parse_endpoint(endpoint), timeout).actor;  // throws when unreachable
  if (!answers(self, node)) throw std::runtime_error("node " + endpoint + " did not answer a ping");
  return node;
}

std::vector<std::string> Supervisor::candidates(size_t index, FailureKind kind) const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string own = stages_[index].endpoint;
  std::vector<std::string> out;
  auto add = [&](const std::string& ep) {
    if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
  };
  // A stage that threw: its node is fine. Otherwise its node is dead or hung: it comes last
  // (a caf-node restarted on the same port, a laptop that wakes up).
  if (kind == FailureKind::exception || own.empty()) add(own);
  for (const auto& ep : options_.standby_nodes)
    if (ep != own) add(ep);
  if (options_.survivors_take_over)
    for (const auto& s : stages_)
      if (s.endpoint != own) add(s.endpoint);
  add(own);
  return out;
}

std::optional<Supervisor::Placement> Supervisor::place(caf::scoped_actor& self, size_t index, FailureKind kind,
                                                       Clock::time_point deadline, proto::StageReady& ready,
                                                       std::string& reasons) {
  const auto list = candidates(index, kind);
  uint64_t weights = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    weights = stages_[index].weight_bytes;
  }
  for (;;) {
    reasons.clear();
    auto why_not = [&](const std::string& ep, const std::string& why) {
      reasons += (reasons.empty() ? "" : "; ") + (ep.empty() ? std::string("this process") : "node " + ep) + ": " + why;
    };
    // The candidates that answer, those with more free memory first (standbys and the own
    // node keep their place in front).
    struct Live {
      std::string endpoint;
      caf::actor node;
      uint64_t free = 0;
      bool ranked = false;
    };
    std::vector<Live> live;
    for (const auto& ep : list) {
      Live l{ep, {}, 0, false};
      try {
        l.node = reach(self, ep, std::min(options_.connect_timeout, left_until(deadline, milliseconds(500))));
      } catch (const std::exception& e) {
        why_not(ep, e.what());
        continue;
      }
      bool survivor = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (size_t i = 0; i < stages_.size(); ++i) survivor = survivor || (i != index && stages_[i].endpoint == ep);
      }
      if (survivor && !ep.empty()) {
        proto::NodeInfo info;
        std::string failure;
        self->request(l.node, options_.connect_timeout, proto::info_atom::value)
          .receive([&](proto::NodeInfo& i) { info = std::move(i); },
                   [&](caf::error& e) { failure = proto::error_text(e); });
        if (!failure.empty()) {
          why_not(ep, failure);
          continue;
        }
        l.free = info.memory_limit > 0 ? (info.memory_limit > info.rss ? info.memory_limit - info.rss : 0)
                                       : info.mem_available;
        l.ranked = true;
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
      std::string failure;
      self->request(l.node, options_.spawn_timeout, proto::spawn_atom::value, spawns_[index])
        .receive([&](proto::StageReady& r) { ready = std::move(r); },
                 [&](caf::error& e) { failure = proto::error_text(e); });
      if (failure.empty()) return Placement{l.endpoint, l.node};
      why_not(l.endpoint, failure);
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_ || Clock::now() >= deadline) return std::nullopt;
    cv_.wait_for(lock, std::min(milliseconds(250), left_until(deadline)), [&] { return stopping_; });
    if (stopping_) return std::nullopt;
  }
}

std::string Supervisor::swap_in(caf::scoped_actor& self, size_t index, const Placement& to,
                                const proto::StageReady& ready, Recovery r) {
  // Re-wire: connect the live neighbours' nodes to the new one directly (as deploy does),
  // then point the predecessor at the new stage and the new stage at the successor. A dead
  // neighbour is left out: the new epoch's watch reports it at once and it is repaired next.
  std::vector<DeployedStage> now = stages();
  std::string failure;
  auto alive = [&](size_t i) { return now[i].endpoint.empty() || answers(self, node_for(now[i].endpoint)); };
  auto peer = [&](const std::string& from, const caf::actor& from_node, const std::string& target,
                  const caf::actor& to_stage) {
    if (!failure.empty() || from.empty() || target.empty() || from == target) return;
    const Endpoint ep = parse_endpoint(target);
    self->request(from_node, options_.connect_timeout + std::chrono::seconds(10), proto::peer_atom::value, ep.host,
                  ep.port, to_stage.node())
      .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
  };
  auto wire = [&](const caf::actor& from, const caf::actor& target) {
    if (!failure.empty()) return;
    self->request(from, options_.connect_timeout, proto::next_atom::value, target)
      .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
  };
  const bool before = index > 0 && alive(index - 1);
  const bool after = index + 1 < now.size() && alive(index + 1);
  if (before) peer(now[index - 1].endpoint, node_for(now[index - 1].endpoint), to.endpoint, ready.stage);
  if (after) peer(to.endpoint, to.node, now[index + 1].endpoint, now[index + 1].actor);
  if (after) wire(ready.stage, now[index + 1].actor);
  if (before) wire(now[index - 1].actor, ready.stage);
  if (!failure.empty()) return failure;

  uint64_t new_epoch = 0;
  std::vector<caf::actor> actors, nodes;
  std::vector<std::string> labels;
  DeployedStage old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = stages_[index];
    stages_[index] = DeployedStage{to.endpoint, ready.describe, ready.stage, ready.weight_bytes, ready.load_ms, ready.threads};
    nodes_[to.endpoint] = to.node;
    new_epoch = epoch_ + 1;
    for (size_t i = 0; i < stages_.size(); ++i) {
      actors.push_back(stages_[i].actor);
      nodes.push_back(stages_[i].endpoint.empty() ? caf::actor{} : nodes_.at(stages_[i].endpoint));
      labels.push_back(label(i));
    }
  }
  self->request(client_, options_.connect_timeout, proto::watch_atom::value, actors, labels)
    .receive([](caf::ok_atom) {}, [](caf::error&) {});
  // The old stage, if it still runs somewhere (an exception, a hung node that wakes up: it
  // drops its stale stage when it reads this).
  self->send_exit(old.actor, caf::exit_reason::user_shutdown);

  r.to_node = to.endpoint;
  r.restored_at = Clock::now();
  r.restore_ms = ms_between(r.detected_at, r.restored_at);
  spdlog::warn("supervisor: stage {} {} on {} in {:.0f} ms (cause: {}, {}); sessions in flight replay now", r.stage,
               r.kind == "returned" ? "moved back" : "restarted", to.endpoint.empty() ? "this process" : "node " + to.endpoint,
               r.restore_ms, r.kind, r.cause);
  {
    std::lock_guard<std::mutex> lock(mu_);
    recoveries_.push_back(std::move(r));
    epoch_ = new_epoch;
    recovering_ = false;
    broken_.clear();
  }
  cv_.notify_all();
  // Watched only now that the epoch has moved on: a neighbour that is dead too (monitoring
  // it reports it at once) starts the next repair.
  self->request(watcher_, options_.connect_timeout, proto::watch_atom::value, actors, nodes, new_epoch)
    .receive([](caf::ok_atom) {}, [](caf::error&) {});
  return {};
}

void Supervisor::recover(size_t index, FailureKind kind, std::string cause, Clock::time_point detected_at) {
  DeployedStage old;
  std::string failed_label;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = stages_[index];
    failed_label = label(index);
  }
  caf::scoped_actor self{sys_};
  proto::StageReady ready;
  std::string reasons;
  const auto placed = place(self, index, kind, Clock::now() + options_.replacement_wait, ready, reasons);
  if (!placed) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {  // the pipeline is being shut down: nothing to report
        recovering_ = false;
        return;
      }
    }
    fail_for_good(index, cause, failed_label + " " + cause + ", and no node could take it over within " +
                           std::to_string(options_.replacement_wait.count()) + " ms (" +
                           (options_.standby_nodes.empty() ? std::string("no standby nodes; ") : std::string()) +
                           reasons + ")");
    return;
  }
  Recovery r;
  r.stage_index = index;
  r.stage = old.describe;
  r.from_node = old.endpoint;
  r.kind = to_string(kind);
  r.cause = cause;
  r.detected_at = detected_at;
  const std::string failure = swap_in(self, index, *placed, ready, std::move(r));
  if (!failure.empty()) {
    self->send_exit(ready.stage, caf::exit_reason::user_shutdown);
    fail_for_good(index, cause, failed_label + " " + cause + "; restarted on " +
                           (placed->endpoint.empty() ? "this process" : placed->endpoint) +
                           " but could not be wired in: " + failure);
  }
}

void Supervisor::heal() {
  caf::scoped_actor self{sys_};
  const std::vector<DeployedStage> now = stages();
  for (size_t i = 0; i < now.size(); ++i) {
    if (now[i].endpoint == homes_[i]) continue;
    // Probe the stage's own node without holding anything up: it may be gone for good.
    caf::actor node;
    try {
      node = reach(self, homes_[i], std::min(options_.connect_timeout, milliseconds(1000)));
    } catch (const std::exception&) {
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Only at a quiet moment: a generation that starts now waits for the move (repair_wait).
      if (stopping_ || recovering_ || !broken_.empty() || active_sessions_ > 0 || stages_[i].actor != now[i].actor)
        break;
      recovering_ = true;
      broken_stage_ = i;
    }
    const auto t0 = Clock::now();
    proto::StageReady ready;
    std::string failure;
    self->request(node, options_.spawn_timeout, proto::spawn_atom::value, spawns_[i])
      .receive([&](proto::StageReady& r) { ready = std::move(r); }, [&](caf::error& e) { failure = proto::error_text(e); });
    if (failure.empty()) {
      Recovery r;
      r.stage_index = i;
      r.stage = now[i].describe;
      r.from_node = now[i].endpoint;
      r.kind = "returned";
      r.cause = "node " + homes_[i] + " answers again";
      r.detected_at = t0;
      failure = swap_in(self, i, Placement{homes_[i], node}, ready, std::move(r));
      if (!failure.empty()) self->send_exit(ready.stage, caf::exit_reason::user_shutdown);
    }
    if (!failure.empty()) {
      spdlog::warn("supervisor: could not move {} back to node {}: {}", label(i), homes_[i], failure);
      {
        std::lock_guard<std::mutex> lock(mu_);
        recovering_ = false;
      }
      cv_.notify_all();
    }
    break;  // one move per round; the next tick looks again
  }
  std::lock_guard<std::mutex> lock(mu_);
  healing_ = false;
}

uint64_t Supervisor::wait_until_serving(Session& session) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, options_.repair_wait, [&] { return !recovering_ || stopping_; }))
    throw PipelineError("the pipeline is still being repaired (" + label(broken_stage_) + ") after " +
                        std::to_string(options_.repair_wait.count()) + " ms (repair_wait, --repair-wait)");
  if (stopping_) throw PipelineError("the pipeline was shut down");
  if (!broken_.empty()) throw PipelineError(broken_);
  (void)session;
  return epoch_;
}

bool Supervisor::wait_for_news(uint64_t epoch, milliseconds window) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, window, [&] { return epoch_ != epoch || recovering_ || !broken_.empty() || stopping_; }) ||
         epoch_ != epoch || recovering_;
}

std::string Supervisor::replay(caf::scoped_actor& self, Session& session, uint64_t epoch) {
  const auto t0 = Clock::now();
  // End the session everywhere first, awaited: no cache of it survives, and the replay's
  // first step cannot overtake the end.
  for (const auto& s : stages()) {
    std::string failure;
    self->request(s.actor, options_.connect_timeout, proto::end_session_atom::value, session.id)
      .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
    if (!failure.empty()) return "ending session before replay: " + failure;
  }
  // The same steps, chunked as first sent, so every stage computes bitwise the same cache.
  for (size_t k = 0; k < session.sent.size(); ++k) {
    std::string failure;
    int32_t token = -1;
    self->request(client_, options_.step_timeout + std::chrono::seconds(1), proto::Activation{session.sent[k]})
      .receive([&](proto::TokenReply& r) { token = r.token; }, [&](caf::error& e) { failure = proto::error_text(e); });
    if (!failure.empty()) return failure;
    if (token != session.tokens[k])
      return "replay of session " + std::to_string(session.id) + " diverged at step " + std::to_string(k) + ": token " +
             std::to_string(token) + " instead of " + std::to_string(session.tokens[k]);
  }
  const double ms = ms_between(t0, Clock::now());
  session.epoch = epoch;
  if (!session.sent.empty()) {
    ++session.recoveries;
    session.tokens_replayed += session.positions;
    std::lock_guard<std::mutex> lock(mu_);
    if (!recoveries_.empty()) {
      Recovery& r = recoveries_.back();
      ++r.sessions_replayed;
      r.tokens_replayed += session.positions;
      r.replay_ms = std::max(r.replay_ms, ms);
    }
    spdlog::info("supervisor: session {} replayed {} positions in {} steps ({:.0f} ms)", session.id,
                 session.positions, session.sent.size(), ms);
  }
  return {};
}

proto::TokenReply Supervisor::step(caf::scoped_actor& self, Session& session, const std::string& bytes,
                                   int64_t n_inputs) {
  return step(self, session, std::vector<std::string>{bytes}, std::vector<int64_t>{n_inputs});
}

proto::TokenReply Supervisor::step(caf::scoped_actor& self, Session& session, const std::vector<std::string>& parts,
                                   const std::vector<int64_t>& n_inputs) {
  std::string failure;
  for (int32_t attempt = 0;; ++attempt) {
    if (attempt > options_.max_recoveries_per_step) throw PipelineError(failure);
    const uint64_t epoch = wait_until_serving(session);
    failure.clear();
    if (epoch != session.epoch) failure = replay(self, session, epoch);
    std::vector<proto::TokenReply> replies(parts.size());
    if (failure.empty()) {
      // Via the client actor (it fails the request at once if a stage goes down), which waits
      // step_timeout for the chain; this wait is only a backstop. All parts go out at once
      // (a chunked prefill: stage k computes part i while stage k+1 computes part i-1); a
      // stage keeps one session's parts in order, and one part failing fails those after it.
      const auto timeout = options_.step_timeout + std::chrono::seconds(1);
      using Handle = decltype(self->request(client_, timeout, proto::Activation{}));
      std::vector<Handle> sent;
      for (const auto& bytes : parts) sent.push_back(self->request(client_, timeout, proto::Activation{bytes}));
      for (size_t i = 0; i < sent.size(); ++i)
        sent[i].receive([&](proto::TokenReply& r) { replies[i] = std::move(r); },
                        [&](caf::error& e) {
                          if (!failure.empty()) return;  // the first failure says what happened
                          failure = e == caf::sec::request_timeout
                                      ? "no token within " + std::to_string(options_.step_timeout.count()) +
                                          " ms (a node is down or overloaded)"
                                      : proto::error_text(e);
                        });
    }
    if (failure.empty()) {
      for (size_t i = 0; i < parts.size(); ++i) {
        session.sent.push_back(parts[i]);
        session.tokens.push_back(replies[i].token);
        session.positions += n_inputs[i];
      }
      return std::move(replies.back());
    }
    // A stage that threw names itself ("stage layers 2-3 of <model> on node ..."): restart it
    // like a dead one. Other failures (down, hung) the supervisor actor reports itself.
    const auto now = stages();
    for (size_t i = 0; i < now.size(); ++i)
      if (failure.find("stage " + now[i].describe + " of ") != std::string::npos) {
        report_failure(i, FailureKind::exception, "threw: " + failure, epoch);
        break;
      }
    // Give the supervisor the time to notice (a heartbeat round); nothing noticed: a plain error.
    if (!wait_for_news(epoch, options_.heartbeat_interval + options_.heartbeat_timeout + milliseconds(500)))
      throw PipelineError(failure);
  }
}

}  // namespace troupe
