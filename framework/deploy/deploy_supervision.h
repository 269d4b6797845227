#pragma once
// Supervision of a deployed pipeline: notices a failed stage, restarts it, rebuilds the KV
// caches it lost, and lets every generation in flight go on as if nothing had happened. See
// "Supervision and failover" in docs/architecture.md.
//
// One actor per pipeline (the supervision actor, a caf::stateful_actor in
// deploy_supervision.cpp) owns all of it: the stages, the topology epoch, the repair under
// way, the sessions open, the recoveries so far. Nothing else writes that state, so there
// is no lock. It is also the pipeline's client: the stages' owner, and the one actor a
// generating thread asks for each step, which it forwards to stage 0 (the reply comes back
// from the sampler at the end of the chain).
//
//   who notices      the watcher (actors/supervisor_actor.h, a child of the supervision
//                    actor): monitors on stages and nodes, heartbeats, stall probes; a step
//                    that fails with a stage's exception.
//   who repairs      a repair worker (a detached actor spawned per repair, as connecting to
//                    a node and loading a stage are blocking dialogues): places the stage
//                    again (its own node if alive, a standby, or a surviving node with room)
//                    and wires its live neighbours to it; the supervision actor then swaps it
//                    in and moves to the next epoch.
//   who heals        the supervision actor's tick: when no generation runs, a stage away
//                    from its own node moves back once that node answers again (probed by a
//                    worker, so nothing waits for it); a broken pipeline is tried again.
//   who replays      each generating thread, for its own session, when a step is answered
//                    "stale" (a new epoch): ends the session on every stage, then resends the
//                    session's steps exactly as first sent, checking each gives back the
//                    token it gave the first time.
//
// Supervisor is the blocking façade for threads outside CAF (the CLI, HTTP server threads):
// each call is one request to the supervision actor.
#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <string>
#include <vector>

#include "actors/supervisor_actor.h"
#include "framework/deploy/deploy.h"

namespace troupe {

class Supervisor {
 public:
  using Clock = std::chrono::steady_clock;

  // Spawns the supervision actor (deploy makes it the owner of the stages it spawns).
  Supervisor(caf::actor_system& sys, const DeployOptions& options, proto::node_actor local_node);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // The supervision actor: the stages' owner, the receiver of every step.
  const caf::actor& actor() const { return actor_; }

  // Starts watching the deployed and wired `stages`; `spawns[i]` is what stage i was spawned
  // with (to spawn it again).
  void start(std::vector<DeployedStage> stages, std::vector<proto::SpawnStage> spawns);
  // Stops watching, waits for a repair under way to end, and stops the supervision actor.
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

  // Several consecutive steps of one session sent at once (`n_inputs[i]` tokens in the
  // encoded Activation `parts[i]`), without waiting for one reply before sending the next: a
  // prompt in chunks flows through the stages as a pipeline. Returns the last part's reply.
  // Survives stage failures: waits for the repair, replays the session, tries again. Throws
  // PipelineError naming the stage and node when the pipeline cannot be repaired.
  proto::TokenReply step(caf::scoped_actor& self, Session& session, const std::vector<std::string>& parts,
                         const std::vector<int64_t>& n_inputs);

  std::vector<DeployedStage> stages() const;
  std::vector<Recovery> recoveries() const;
  PipelineHealth health() const;
  // The nodes tried first when a stage must be placed again (DeployOptions::standby_nodes,
  // plus those added since); adding one that is listed already does nothing.
  std::vector<std::string> standby_nodes() const;
  void add_standby_nodes(const std::vector<std::string>& endpoints);

 private:
  // "" or why the replay failed (the step is then tried again, as after any failure).
  std::string replay(caf::scoped_actor& self, Session& session, uint64_t epoch);

  caf::actor_system& sys_;
  DeployOptions options_;
  proto::node_actor local_node_;
  caf::actor actor_;
};

}  // namespace troupe
