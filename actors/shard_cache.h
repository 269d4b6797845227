#pragma once
// A node's shard cache (caf-node --cache DIR --cache-cap SIZE): stage shards received from
// clients, each stored under its content hash (SHA-256, actors/protocol/content_hash.h).
//
//   DIR/<sha256>.gguf          a complete shard, hash checked when it arrived
//   DIR/<sha256>.meta          its sidecar: size, model id, layer range, last use (for LRU)
//   DIR/partial/<sha256>.part  bytes received so far (a broken transfer resumes from its size)
//   DIR/partial/<sha256>.meta  the offer it belongs to
//
// A shard becomes complete atomically: the partial file is synced, its hash checked, then
// renamed into place, then the sidecar is written (temp + rename); a .gguf without a sidecar
// (a crash in between) is removed at start. The cap counts complete and partial shards; room
// for an incoming shard is made by evicting the least recently used complete shards (a stage
// that has one mapped keeps its pages: Linux frees them with the last mapping). A complete
// shard's hash is checked again when a client offers it (before every load from the cache), so
// a corrupted file is found, removed and received again. Thread-safe (one mutex).
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/protocol/messages.h"

namespace troupe {

class ShardCacheError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ShardCache {
 public:
  // Creates DIR and DIR/partial if needed, removes leftovers of a crash. `name` names the node in messages.
  ShardCache(std::string dir, uint64_t cap, std::string name);

  const std::string& dir() const { return dir_; }
  uint64_t cap() const { return cap_; }
  uint64_t used() const;                          // complete + partial bytes
  std::vector<proto::CachedShard> list() const;   // complete shards, most recently used first

  // Where to resume sending `offer`: its size when the shard is here and its hash checks (a
  // corrupted one is removed and 0 returned), the partial file's size after a broken
  // transfer, else 0. Makes room (LRU eviction) for the bytes still to come; throws
  // ShardCacheError when the cap (or the disk) cannot hold the shard, or the offer is malformed.
  uint64_t offer(const proto::ShardOffer& offer);
  // Appends `bytes` at `offset` of the partial shard (which must hold exactly `offset` bytes);
  // returns the bytes held now. Throws ShardCacheError (unknown shard, wrong offset, too long, I/O).
  uint64_t append(const std::string& sha256, uint64_t offset, const std::string& bytes);
  // The partial shard is complete: checks its size and hash, renames it into place. A hash
  // mismatch removes the partial file and throws.
  proto::CachedShard finish(const std::string& sha256);

  // The path of a complete shard to load (size checked against its sidecar; marks it used), or nothing.
  std::optional<std::string> path_for_load(const std::string& sha256);

 private:
  std::string shard_path(const std::string& sha) const;
  std::string meta_path(const std::string& sha) const;
  std::string part_path(const std::string& sha) const;
  std::string part_meta_path(const std::string& sha) const;
  std::optional<proto::CachedShard> read_meta(const std::string& path, uint64_t* last_used) const;
  void write_meta(const std::string& path, const proto::CachedShard& s, uint64_t last_used) const;
  void remove_shard(const std::string& sha) const;
  uint64_t used_locked() const;
  void make_room(uint64_t needed, const std::string& keep);

  std::string dir_;
  uint64_t cap_ = 0;
  std::string name_;
  mutable std::mutex mutex_;
};

}  // namespace troupe
