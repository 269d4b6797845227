// Built into troupe_actors with deploy.cpp (see actors/CMakeLists.txt).
#include "framework/deploy/deploy_supervision.h"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "framework/cluster/cluster.h"

namespace troupe {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

milliseconds left_until(Clock::time_point deadline, milliseconds at_least = milliseconds(1)) {
  return std::max(at_least, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
}

}  // namespace

Supervisor::Supervisor(caf::actor_system& sys, const DeployOptions& options, caf::actor client,
                       caf::actor local_node, std::vector<DeployedStage>& stages,
                       std::vector<proto::SpawnStage> spawns)
    : sys_(sys),
      options_(options),
      client_(std::move(client)),
      local_node_(std::move(local_node)),
      stages_(stages),
      spawns_(std::move(spawns)) {}

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
    sys_, HeartbeatTimes{options_.heartbeat_interval, options_.heartbeat_timeout},
    [weak](size_t stage, FailureKind kind, const std::string& cause, uint64_t epoch) {
      if (auto self = weak.lock()) self->report_failure(stage, kind, cause, epoch);
    });
  std::vector<caf::actor> actors, nodes;
  for (const auto& s : stages_) {
    actors.push_back(s.actor);
    nodes.push_back(s.endpoint.empty() ? caf::actor{} : nodes_.at(s.endpoint));
  }
  caf::anon_send(watcher_, proto::watch_atom::value, std::move(actors), std::move(nodes), uint64_t{0});
}

void Supervisor::stop() {
  std::thread worker;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    worker = std::move(worker_);
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

Supervisor::Session Supervisor::open_session(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  Session s;
  s.id = id;
  s.epoch = epoch_;
  return s;
}

void Supervisor::report_failure(size_t stage, FailureKind kind, const std::string& cause, uint64_t epoch) {
  const auto detected_at = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || recovering_ || !broken_.empty() || epoch != epoch_ || stage >= stages_.size()) return;
  recovering_ = true;
  const std::string why = label(stage) + " " + cause;
  spdlog::warn("supervisor: {} ({}); restarting it", why, to_string(kind));
  // Nothing in flight will come back: fail it now, the generations wait for the repair.
  caf::anon_send(client_, proto::fail_atom::value, why);
  // The previous recovery has finished (recovering_ was false) and no longer needs the lock.
  if (worker_.joinable()) worker_.join();
  worker_ = std::thread([this, stage, kind, cause, epoch, detected_at] { recover(stage, kind, cause, epoch, detected_at); });
}

void Supervisor::fail_for_good(const std::string& why) {
  spdlog::error("supervisor: {}", why);
  {
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = why;
    recovering_ = false;
  }
  cv_.notify_all();
  caf::anon_send(client_, proto::fail_atom::value, why);
}

void Supervisor::recover(size_t index, FailureKind kind, std::string cause, uint64_t epoch,
                         Clock::time_point detected_at) {
  DeployedStage old;
  std::string failed_label;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = stages_[index];
    failed_label = label(index);
  }
  // Where to restart: the same node unless it is hung (an exception leaves it alive; a dead
  // node may have been restarted on the same port), then the standby nodes, in order.
  std::vector<std::string> candidates;
  if (kind != FailureKind::hang || old.endpoint.empty()) candidates.push_back(old.endpoint);
  for (const auto& ep : options_.standby_nodes)
    if (ep != old.endpoint && std::find(candidates.begin(), candidates.end(), ep) == candidates.end())
      candidates.push_back(ep);

  caf::scoped_actor self{sys_};
  const auto deadline = Clock::now() + options_.replacement_wait;
  proto::StageReady ready;
  std::string where;
  caf::actor where_node;
  std::string reasons;
  for (int round = 0; where_node == caf::actor{}; ++round) {
    reasons.clear();
    for (const auto& ep : candidates) {
      caf::actor node;
      if (ep.empty()) {
        node = local_node_;
      } else if (kind == FailureKind::exception && ep == old.endpoint) {
        node = node_for(ep);
      } else {
        try {
          node = connect_node(sys_, parse_endpoint(ep), std::min(options_.connect_timeout, left_until(deadline, milliseconds(500))))
                   .actor;
        } catch (const std::exception& e) {
          reasons += (reasons.empty() ? "" : "; ") + std::string(e.what());
          continue;
        }
      }
      std::string failure;
      self->request(node, options_.spawn_timeout, proto::spawn_atom::value, spawns_[index])
        .receive([&](proto::StageReady& r) { ready = std::move(r); },
                 [&](caf::error& e) { failure = proto::error_text(e); });
      if (failure.empty()) {
        where = ep;
        where_node = node;
        break;
      }
      reasons += (reasons.empty() ? "" : "; ") + (ep.empty() ? "this process" : ep) + ": " + failure;
    }
    if (where_node) break;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_ || Clock::now() >= deadline) break;
      cv_.wait_for(lock, std::min(milliseconds(250), left_until(deadline)), [&] { return stopping_; });
      if (stopping_) break;
    }
  }
  if (!where_node) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {  // the pipeline is being shut down: nothing to report
        recovering_ = false;
        return;
      }
    }
    fail_for_good(failed_label + " " + cause + ", and no node could take it over within " +
                  std::to_string(options_.replacement_wait.count()) + " ms (" +
                  (options_.standby_nodes.empty() ? std::string("no standby nodes; ") : std::string()) +
                  reasons + ")");
    return;
  }

  // Re-wire: connect the neighbours' nodes to the new one directly (as deploy does), then
  // point the predecessor at the new stage and the new stage at the successor.
  std::vector<DeployedStage> now = stages();
  std::string failure;
  auto peer = [&](const std::string& from, const caf::actor& from_node, const std::string& to,
                  const caf::actor& to_stage) {
    if (!failure.empty() || from.empty() || to.empty() || from == to) return;
    const Endpoint ep = parse_endpoint(to);
    self->request(from_node, options_.connect_timeout + std::chrono::seconds(10), proto::peer_atom::value, ep.host,
                  ep.port, to_stage.node())
      .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
  };
  auto wire = [&](const caf::actor& from, const caf::actor& to) {
    if (!failure.empty()) return;
    self->request(from, options_.connect_timeout, proto::next_atom::value, to)
      .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
  };
  if (index > 0) peer(now[index - 1].endpoint, node_for(now[index - 1].endpoint), where, ready.stage);
  if (index + 1 < now.size()) peer(where, where_node, now[index + 1].endpoint, now[index + 1].actor);
  if (index + 1 < now.size()) wire(ready.stage, now[index + 1].actor);
  if (index > 0) wire(now[index - 1].actor, ready.stage);
  if (!failure.empty()) {
    self->send_exit(ready.stage, caf::exit_reason::user_shutdown);
    fail_for_good(failed_label + " " + cause + "; restarted on " + (where.empty() ? "this process" : where) +
                  " but could not be wired in: " + failure);
    return;
  }

  uint64_t new_epoch = 0;
  std::vector<caf::actor> actors, nodes;
  std::vector<std::string> labels;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stages_[index] = DeployedStage{where, ready.describe, ready.stage, ready.weight_bytes, ready.load_ms, ready.threads};
    nodes_[where] = where_node;
    new_epoch = epoch_ + 1;
    for (size_t i = 0; i < stages_.size(); ++i) {
      actors.push_back(stages_[i].actor);
      nodes.push_back(stages_[i].endpoint.empty() ? caf::actor{} : nodes_.at(stages_[i].endpoint));
      labels.push_back(label(i));
    }
  }
  self->request(client_, options_.connect_timeout, proto::watch_atom::value, actors, labels)
    .receive([](caf::ok_atom) {}, [](caf::error&) {});
  self->request(watcher_, options_.connect_timeout, proto::watch_atom::value, actors, nodes, new_epoch)
    .receive([](caf::ok_atom) {}, [](caf::error&) {});
  // The old stage, if it still runs somewhere (an exception, a hung node that wakes up).
  self->send_exit(old.actor, caf::exit_reason::user_shutdown);

  Recovery r;
  r.stage_index = index;
  r.stage = old.describe;
  r.from_node = old.endpoint;
  r.to_node = where;
  r.kind = to_string(kind);
  r.cause = cause;
  r.detected_at = detected_at;
  r.restored_at = Clock::now();
  r.restore_ms = ms_between(detected_at, r.restored_at);
  spdlog::warn("supervisor: {} restarted on {} in {:.0f} ms (cause: {}, {}); sessions in flight replay now",
               failed_label, where.empty() ? "this process" : "node " + where, r.restore_ms, to_string(kind), cause);
  {
    std::lock_guard<std::mutex> lock(mu_);
    recoveries_.push_back(std::move(r));
    epoch_ = new_epoch;
    recovering_ = false;
  }
  cv_.notify_all();
  (void)epoch;
}

uint64_t Supervisor::wait_until_serving(Session& session) {
  std::unique_lock<std::mutex> lock(mu_);
  // A recovery is bounded by its own timeouts; this is only a backstop.
  const auto bound = options_.replacement_wait + options_.spawn_timeout + 4 * options_.connect_timeout +
                     std::chrono::seconds(20);
  if (!cv_.wait_for(lock, bound, [&] { return !recovering_ || stopping_; }))
    throw PipelineError("the pipeline is still being repaired after " + std::to_string(bound.count()) + " ms");
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
  std::string failure;
  for (int32_t attempt = 0;; ++attempt) {
    if (attempt > options_.max_recoveries_per_step) throw PipelineError(failure);
    const uint64_t epoch = wait_until_serving(session);
    failure.clear();
    if (epoch != session.epoch) failure = replay(self, session, epoch);
    proto::TokenReply reply;
    if (failure.empty()) {
      // Via the client actor (it fails the request at once if a stage goes down), which waits
      // step_timeout for the chain; this wait is only a backstop.
      self->request(client_, options_.step_timeout + std::chrono::seconds(1), proto::Activation{bytes})
        .receive([&](proto::TokenReply& r) { reply = std::move(r); },
                 [&](caf::error& e) {
                   failure = e == caf::sec::request_timeout
                               ? "no token within " + std::to_string(options_.step_timeout.count()) +
                                   " ms (a node is down or overloaded)"
                               : proto::error_text(e);
                 });
    }
    if (failure.empty()) {
      session.sent.push_back(bytes);
      session.tokens.push_back(reply.token);
      session.positions += n_inputs;
      return reply;
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
