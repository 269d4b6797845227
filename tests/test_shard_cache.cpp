// A node's shard cache (actors/shard_cache.h) on its own: content-hash names, resumable
// appends, the hash check, least-recently-used eviction under the cap.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "actors/protocol/content_hash.h"
#include "actors/shard_cache.h"
#include "tests/test_support.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;

struct Blob {
  std::string bytes;
  proto::ShardOffer offer;
};

Blob blob(char fill, size_t n, int64_t first) {
  Blob b;
  b.bytes = std::string(n, fill);
  Sha256 h;
  h.update(b.bytes.data(), n);
  b.offer.shard.sha256 = h.hex();
  b.offer.shard.size = n;
  b.offer.shard.model_id = "test";
  b.offer.shard.spec = StageSpec{first, first, first == 0, false};
  return b;
}

void send(ShardCache& cache, const Blob& b) {
  uint64_t at = cache.offer(b.offer);
  while (at < b.bytes.size()) {
    const size_t n = std::min<size_t>(300, b.bytes.size() - at);
    at = cache.append(b.offer.shard.sha256, at, b.bytes.substr(at, n));
  }
  cache.finish(b.offer.shard.sha256);
}

TEST(ShardCache, LeastRecentlyUsedShardsAreEvictedToMakeRoomUnderTheCap) {
  test::TempDir dir;
  ShardCache cache(dir.file("cache"), 3000, "test");
  const Blob a = blob('a', 1000, 0), b = blob('b', 1000, 1), c = blob('c', 1000, 2), d = blob('d', 1000, 3);
  send(cache, a);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  send(cache, b);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  send(cache, c);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(cache.path_for_load(a.offer.shard.sha256));  // a is used again: b is now the oldest
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  send(cache, d);
  EXPECT_EQ(cache.used(), 3000u);
  EXPECT_TRUE(cache.path_for_load(a.offer.shard.sha256));
  EXPECT_FALSE(cache.path_for_load(b.offer.shard.sha256));
  EXPECT_TRUE(cache.path_for_load(c.offer.shard.sha256));
  EXPECT_TRUE(cache.path_for_load(d.offer.shard.sha256));
  EXPECT_EQ(cache.list().size(), 3u);
  EXPECT_EQ(sha256_of_file(*cache.path_for_load(d.offer.shard.sha256)), d.offer.shard.sha256);
  // Larger than the cap: refused, naming the cap.
  const Blob big = blob('x', 4000, 4);
  try {
    cache.offer(big.offer);
    ADD_FAILURE() << "a shard larger than the cap was accepted";
  } catch (const ShardCacheError& e) {
    EXPECT_NE(std::string(e.what()).find("--cache-cap"), std::string::npos) << e.what();
  }
}

TEST(ShardCache, ATransferResumesAtTheBytesHeldAndOnlyThere) {
  test::TempDir dir;
  const Blob a = blob('a', 1000, 0);
  {
    ShardCache cache(dir.file("cache"), 10000, "test");
    EXPECT_EQ(cache.offer(a.offer), 0u);
    EXPECT_EQ(cache.append(a.offer.shard.sha256, 0, a.bytes.substr(0, 400)), 400u);
    EXPECT_THROW(cache.append(a.offer.shard.sha256, 100, a.bytes.substr(100, 100)), ShardCacheError);
    EXPECT_THROW(cache.finish(a.offer.shard.sha256), ShardCacheError);  // incomplete
  }
  ShardCache again(dir.file("cache"), 10000, "test");  // a restarted node keeps the partial file
  EXPECT_EQ(again.offer(a.offer), 400u);
  EXPECT_EQ(again.append(a.offer.shard.sha256, 400, a.bytes.substr(400)), 1000u);
  EXPECT_EQ(again.finish(a.offer.shard.sha256).sha256, a.offer.shard.sha256);
  EXPECT_EQ(again.offer(a.offer), 1000u);  // held: nothing to send
}

TEST(ShardCache, WrongBytesAreRefusedAtTheEndAndACorruptedShardIsDroppedWhenOffered) {
  test::TempDir dir;
  ShardCache cache(dir.file("cache"), 10000, "test");
  const Blob a = blob('a', 1000, 0);
  cache.offer(a.offer);
  cache.append(a.offer.shard.sha256, 0, std::string(1000, 'z'));
  EXPECT_THROW(cache.finish(a.offer.shard.sha256), ShardCacheError);
  EXPECT_TRUE(cache.list().empty());
  EXPECT_EQ(cache.offer(a.offer), 0u);  // the wrong bytes were removed: start again
  send(cache, a);
  {
    std::fstream f(*cache.path_for_load(a.offer.shard.sha256), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(500);
    f.put('q');
  }
  EXPECT_EQ(cache.offer(a.offer), 0u);  // hash re-checked: corrupted, removed, to be sent again
  EXPECT_FALSE(cache.path_for_load(a.offer.shard.sha256));
  EXPECT_THROW(cache.offer(proto::ShardOffer{proto::CachedShard{"../../etc/passwd", 10, "", {}}}), ShardCacheError);
}

}  // namespace
}  // namespace troupe
