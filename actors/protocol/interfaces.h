#pragma once
// The troupe protocol as the compiler sees it: what each actor takes and what it answers.
// Every actor below is a caf::typed_actor, so a handler that drifts from this list, or a
// request that asks an actor something it does not take, does not compile. The message
// structs are in messages.h; one token's path, hop by hop, is in docs/architecture.md:
//
//   client ──Activation{tokens}──▶ stage 0 ──Activation{hidden}──▶ stage 1 ──▶ … ──▶ last stage
//        ◀──────────────── TokenReply ─────────────── sampler ◀──LogitsRow── (same node)
//
// Each stage forwards the request with CAF's `delegate`, so the sampler's reply goes
// straight back to whoever sent the Activation to stage 0 (the pipeline's supervision actor).
//
// Handles cross the network typed inside messages (StageReady::stage, next_atom's successor), and
// untyped in one place: the node actor a caf-node daemon publishes, which a client reaches
// through CAF's middleman as a strong_actor_ptr (framework/cluster/cluster.cpp) and a node
// reaches the same way when it peers (actors/node_actor.cpp). There it is cast to node_actor,
// after which the version handshake (hello) is the first message, before any struct crosses.
//
// The client's end (the pipeline's supervision actor, framework/deploy/deploy_supervision.cpp,
// which owns the stages and sends each step to stage 0) and its watcher
// (actors/supervisor_actor.h) live in the client process only and stay untyped.
#include <caf/node_id.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "actors/protocol/atoms.h"

namespace troupe {
namespace proto {

// The structs, defined in messages.h (which includes this header: StageReady and SpawnStage
// hold handles of the actors below).
struct Activation;
struct TokenReply;
struct LogitsRow;
struct StageReady;
struct StageStats;
struct SpawnStage;
struct NodeInfo;
struct ShardOffer;
struct CachedShard;
struct LoadProgress;

// What a stage sends to the stage after it (a stage_actor converts to this handle).
using stage_successor = caf::typed_actor<
  // One hop of one request (token ids into stage 0, hidden states after): delegated on, so
  // the reply, the sampler's token, comes from the end of the chain; or an error carrying
  // a StageFailure (messages.h) of the stage that failed, or a refusal (--max-sessions).
  caf::replies_to<Activation>::with<TokenReply>,
  // The hop's round trip, measured while idle: answered with hop_pong_atom, seq to the sender.
  caf::reacts_to<hop_ping_atom, uint64_t>>;

// A pipeline stage: one layer range of one model, one KV cache per session (actors/stage_actor.h).
using stage_actor = stage_successor::extend<
  // From its node, once: read the weights (SpawnStage::progress hears how far), and say what
  // was loaded; the sampler beside the last stage is spawned then.
  caf::replies_to<load_atom>::with<StageReady>,
  // From its owner: the stage to send its activations to (the last stage feeds its sampler).
  caf::replies_to<next_atom, stage_successor>::with<caf::ok_atom>,
  // From its owner: forget the session's KV cache.
  caf::replies_to<end_session_atom, uint64_t>::with<caf::ok_atom>,
  // Its counters (its node collects them for NodeInfo).
  caf::replies_to<stats_atom>::with<StageStats>,
  // Tests, from its owner: throw inside compute once the stage has handled that many steps ...
  caf::replies_to<fault_atom, uint64_t>::with<caf::ok_atom>,
  // ... or freeze there for ms (progressing: run slowly, counting layers as a long pass does).
  caf::replies_to<fault_atom, uint64_t, uint32_t, bool>::with<caf::ok_atom>,
  // The next stage's answer to a hop ping.
  caf::reacts_to<hop_pong_atom, uint64_t>,
  // From its node every few seconds: ping the next stage if idle.
  caf::reacts_to<tick_atom>,
  // To itself: run the pending steps as one batch.
  caf::reacts_to<flush_atom>>;

// The sampler, on the last stage's node, spawned by that stage: logits never cross the network.
using sampler_actor = caf::typed_actor<
  // The newest position's logits row (or every row of a speculative step) -> the token.
  caf::replies_to<LogitsRow>::with<TokenReply>>;

// A node's shard cache writer (actors/shard_receiver_actor.h); the node delegates these to it.
using shard_receiver = caf::typed_actor<
  // A node with --cache: where to resume this shard's bytes (== size when it holds it).
  caf::replies_to<shard_offer_atom, ShardOffer>::with<uint64_t>,
  // sha256, offset, bytes -> the bytes held after this chunk (a few chunks are in flight).
  caf::replies_to<shard_chunk_atom, std::string, uint64_t, std::string>::with<uint64_t>,
  // sha256 -> the shard, hash checked, renamed into the cache (older ones evicted).
  caf::replies_to<shard_done_atom, std::string>::with<CachedShard>>;

// The node: the one actor a caf-node daemon publishes on its port (actors/node_actor.h).
// It takes the shard_receiver's messages too (refused on a node without --cache).
using node_actor = shard_receiver::extend<
  // The version handshake, the first message on every connection: plain integers, which
  // every version decodes alike. Answers the node's own version; the asker compares.
  caf::replies_to<hello_atom, uint32_t>::with<hello_atom, uint32_t>,
  // What the machine has and hosts (memory, speed, models, every stage's StageStats).
  caf::replies_to<info_atom>::with<NodeInfo>,
  // Load a stage (and its sampler if asked); refused under --memory-limit or --max-stages.
  caf::replies_to<spawn_atom, SpawnStage>::with<StageReady>,
  // Connect directly to the node at host:port, which must be that node id (and speak this
  // version); sent before wiring a stage here to a stage there.
  caf::replies_to<peer_atom, std::string, uint16_t, caf::node_id>::with<caf::ok_atom>,
  // The supervisor's heartbeat.
  caf::replies_to<ping_atom>::with<caf::ok_atom>,
  // Whether a forward pass of that stage is running, and the layers it has computed so far
  // (answered while the stage's own thread computes).
  caf::replies_to<progress_atom, stage_actor>::with<bool, uint64_t>,
  // To itself every few seconds: passed on to its stages.
  caf::reacts_to<tick_atom>,
  // To itself (--reprobe-idle): look whether it has been idle long enough to measure its speed
  // again; and from its probe, the figures measured (complete, GFLOP/s, GB/s, spread).
  caf::reacts_to<reprobe_atom>,
  caf::reacts_to<reprobe_atom, bool, double, double, double>>;

// Whoever deploys, while a stage loads (SpawnStage::progress): how far its weights are read.
using load_listener = caf::typed_actor<caf::reacts_to<LoadProgress>>;

}  // namespace proto
}  // namespace troupe
