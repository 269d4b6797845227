#pragma once
// Supervision of a deployed pipeline (built into troupe_actors with deploy.cpp): notices a
// failed stage, restarts it, rebuilds the KV caches it lost, and lets every generation in
// flight go on as if nothing had happened. See "Supervision and failover" in
// docs/architecture.md.
//
//   who notices      the supervisor actor (actors/supervisor_actor.h): monitors on stages and
//                    nodes, heartbeats to nodes; the generating thread for an exception that
//                    a stage returns.
//   who repairs      Supervisor::recover, on its own thread, one failure at a time: spawns the
//                    stage again (its own node if alive, a standby, or a surviving node of
//                    the pipeline with room for it), peers and wires its live neighbours to
//                    it (a dead neighbour is repaired next, in the new epoch), tells the
//                    client actor and the supervisor actor, and moves the topology to the
//                    next epoch.
//   who heals        Supervisor::on_tick, after each heartbeat round: when no generation
//                    runs, a stage away from its own node moves back once that node answers
//                    again; a pipeline that could not be repaired is tried again.
//   who replays      each generating thread, for its own session, when it sees a new epoch:
//                    ends the session on every stage, then resends the session's steps
//                    exactly as first sent (the prompt in the chunks it was sent in, then each
//                    step), checking that each gives back the token it gave the first time.
#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "actors/supervisor_actor.h"
#include "framework/deploy/deploy.h"

namespace troupe {

class Supervisor : public std::enable_shared_from_this<Supervisor> {
 public:
  using Clock = std::chrono::steady_clock;

  // `stages` is the Pipeline's list, which recoveries update in place (under the lock);
  // `spawns[i]` is what stage i was spawned with.
  Supervisor(caf::actor_system& sys, const DeployOptions& options, caf::actor client, caf::actor local_node,
             std::vector<DeployedStage>& stages, std::vector<proto::SpawnStage> spawns);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Connects to every node (already reached by deploy) and starts watching.
  void start();
  // Stops watching and waits for a recovery under way to end.
  void stop();

  // What a generation remembers to be replayed: every step as it was sent, and its token.
  struct Session {
    uint64_t id = 0;
    uint64_t epoch = 0;              // the topology its KV caches were built on
    std::vector<std::string> sent;   // encoded Activation of each completed step
    std::vector<int32_t> tokens;     // the token each gave
    int64_t positions = 0;           // input tokens over all completed steps
    int32_t recoveries = 0;
    int64_t tokens_replayed = 0;
  };
  // Opens a generation (counted: healing waits until none runs); close it when it ends.
  Session open_session(uint64_t id);
  void close_session();

  // One step through the pipeline (`bytes`: an encoded Activation of `n_inputs` tokens).
  // Survives stage failures: waits for the repair, replays the session, tries again. Throws
  // PipelineError naming the stage and node when the pipeline cannot be repaired.
  proto::TokenReply step(caf::scoped_actor& self, Session& session, const std::string& bytes, int64_t n_inputs);
  // Several consecutive steps of one session sent at once (`n_inputs[i]` tokens in `parts[i]`),
  // without waiting for one reply before sending the next: a prompt in chunks flows through
  // the stages as a pipeline. Returns the last part's reply; all parts are replayed as sent.
  proto::TokenReply step(caf::scoped_actor& self, Session& session, const std::vector<std::string>& parts,
                         const std::vector<int64_t>& n_inputs);

  std::vector<DeployedStage> stages() const;
  std::vector<Recovery> recoveries() const;
  PipelineHealth health() const;

  // From the supervisor actor or a generating thread; starts a recovery unless one is under
  // way or the failure is about an epoch already repaired. Never blocks for long.
  // Returns false when it could not be taken up now (another repair or a move is under way).
  bool report_failure(size_t stage, FailureKind kind, const std::string& cause, uint64_t epoch);

 private:
  // Where a stage could run: a node actor and its endpoint ("" : this process).
  struct Placement {
    std::string endpoint;
    caf::actor node;
  };

  void recover(size_t index, FailureKind kind, std::string cause, Clock::time_point detected_at);
  // Spawns stage `index` on the first candidate that loads it, trying again until `deadline`;
  // `reasons` says why each candidate could not.
  std::optional<Placement> place(caf::scoped_actor& self, size_t index, FailureKind kind, Clock::time_point deadline,
                                 proto::StageReady& ready, std::string& reasons);
  std::vector<std::string> candidates(size_t index, FailureKind kind) const;
  // Reaches `endpoint` and checks it answers a ping within the heartbeat timeout.
  caf::actor reach(caf::scoped_actor& self, const std::string& endpoint, std::chrono::milliseconds timeout);
  bool answers(caf::scoped_actor& self, const caf::actor& node);
  // Puts `ready` in place of stage `index` (running on `to`): re-wires the live neighbours,
  // publishes the new topology and moves to the next epoch. Returns "" or why it could not.
  std::string swap_in(caf::scoped_actor& self, size_t index, const Placement& to, const proto::StageReady& ready,
                      Recovery r);
  void heal();  // on the healer thread
  std::string label(size_t index) const;  // "stage layers 2-3 on node host:port"
  caf::actor node_for(const std::string& endpoint) const;
  uint64_t wait_until_serving(Session& session);  // the epoch to run in; throws when broken
  bool wait_for_news(uint64_t epoch, std::chrono::milliseconds window);
  std::string replay(caf::scoped_actor& self, Session& session, uint64_t epoch);  // "" or the failure
  void fail_for_good(size_t index, const std::string& cause, const std::string& why);
  void on_tick();  // from the supervisor actor; never blocks

  caf::actor_system& sys_;
  DeployOptions options_;
  caf::actor client_;
  caf::actor local_node_;
  std::vector<DeployedStage>& stages_;
  std::vector<proto::SpawnStage> spawns_;
  caf::actor watcher_;  // the supervisor actor

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, caf::actor> nodes_;  // endpoint -> node actor ("" : this process)
  uint64_t epoch_ = 0;
  bool recovering_ = false;
  bool stopping_ = false;
  std::string broken_;  // set when a stage could not be restarted: the pipeline cannot serve
  size_t broken_stage_ = 0;   // the stage being repaired, or that could not be
  std::string broken_cause_;  // what happened to it ("went down (...)")
  Clock::time_point last_heal_;  // the last look for returned nodes (or retry of a broken pipeline)
  std::vector<std::string> homes_;  // the node each stage was deployed on
  int32_t active_sessions_ = 0;
  bool healing_ = false;  // the healer thread runs
  std::vector<Recovery> recoveries_;
  std::thread worker_;
  std::thread healer_;
};

}  // namespace troupe
