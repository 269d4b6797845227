#include "actors/shard_receiver_actor.h"

#include <caf/all.hpp>

#include "actors/protocol/messages.h"
#include "actors/shard_cache.h"

namespace troupe {

namespace {

template <class F>
auto answer(F&& f) -> caf::result<decltype(f())> {
  try {
    return f();
  } catch (const std::exception& e) {
    return caf::make_error(caf::sec::runtime_error, std::string(e.what()));
  }
}

proto::shard_receiver::behavior_type receiver(std::shared_ptr<ShardCache> cache) {
  return {
    [cache](proto::shard_offer_atom, const proto::ShardOffer& offer) {
      return answer([&] { return cache->offer(offer); });
    },
    [cache](proto::shard_chunk_atom, const std::string& sha, uint64_t offset, const std::string& bytes) {
      return answer([&] { return cache->append(sha, offset, bytes); });
    },
    [cache](proto::shard_done_atom, const std::string& sha) { return answer([&] { return cache->finish(sha); }); },
  };
}

}  // namespace

proto::shard_receiver spawn_shard_receiver(caf::actor_system& sys, std::shared_ptr<ShardCache> cache) {
  return sys.spawn<caf::detached>(receiver, std::move(cache));
}

}  // namespace troupe
