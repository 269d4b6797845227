#pragma once
// The shard receiver: the node's end of a weights transfer (framework/deploy/shard_transfer.h).
// A detached actor (its own thread) owning the node's ShardCache writes, so that writing
// chunks and hashing a whole shard never hold up the node actor's heartbeats and stage
// traffic. The node actor delegates the shard_* requests to it.
#include <caf/fwd.hpp>
#include <memory>

#include "actors/protocol/interfaces.h"

namespace troupe {

class ShardCache;

//   (shard_offer_atom, ShardOffer)                               -> uint64_t resume offset
//   (shard_chunk_atom, string sha256, uint64_t offset, string)   -> uint64_t bytes held
//   (shard_done_atom, string sha256)                             -> CachedShard
// Failures (cap, wrong offset, hash mismatch) are errors naming the node and the shard.
proto::shard_receiver spawn_shard_receiver(caf::actor_system& sys, std::shared_ptr<ShardCache> cache);

}  // namespace troupe
