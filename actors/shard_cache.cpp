#include "actors/shard_cache.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "actors/protocol/content_hash.h"
#include "models/runtime/byte_size.h"

namespace troupe {

namespace fs = std::filesystem;

namespace {

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
}

uint64_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(n);
}

void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

ShardCache::ShardCache(std::string dir, uint64_t cap, std::string name)
    : dir_(std::move(dir)), cap_(cap), name_(std::move(name)) {
  std::error_code ec;
  fs::create_directories(fs::path(dir_) / "partial", ec);
  if (ec) throw ShardCacheError("--cache " + dir_ + ": cannot create it: " + ec.message());
  // Leftovers of a crash: temp sidecars, and shards renamed into place whose sidecar was not written.
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const fs::path p = e.path();
    const std::string stem = p.stem().string();
    if (p.extension() == ".tmp") fs::remove(p, ec);
    if (p.extension() == ".gguf" && (!is_sha256_hex(stem) || !fs::exists(meta_path(stem)))) {
      spdlog::warn("node {}: cache: removing {} (no sidecar: an interrupted install)", name_, p.string());
      fs::remove(p, ec);
    }
  }
}

std::string ShardCache::shard_path(const std::string& sha) const { return dir_ + "/" + sha + ".gguf"; }
std::string ShardCache::meta_path(const std::string& sha) const { return dir_ + "/" + sha + ".meta"; }
std::string ShardCache::part_path(const std::string& sha) const { return dir_ + "/partial/" + sha + ".part"; }
std::string ShardCache::part_meta_path(const std::string& sha) const { return dir_ + "/partial/" + sha + ".meta"; }

std::optional<proto::CachedShard> ShardCache::read_meta(const std::string& path, uint64_t* last_used) const {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  proto::CachedShard s;
  uint64_t used = 0;
  std::string line;
  int fields = 0;
  while (std::getline(in, line)) {
    const auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    const std::string key = line.substr(0, sp), value = line.substr(sp + 1);
    try {
      if (key == "sha256") s.sha256 = value, ++fields;
      else if (key == "size") s.size = std::stoull(value), ++fields;
      else if (key == "model_id") s.model_id = value, ++fields;
      else if (key == "layer_first") s.spec.layer_first = std::stoll(value), ++fields;
      else if (key == "layer_last") s.spec.layer_last = std::stoll(value), ++fields;
      else if (key == "has_embedding") s.spec.has_embedding = value == "1", ++fields;
      else if (key == "has_head") s.spec.has_head = value == "1", ++fields;
      else if (key == "last_used") used = std::stoull(value);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  if (fields != 7 || !is_sha256_hex(s.sha256)) return std::nullopt;
  if (last_used) *last_used = used;
  return s;
}

void ShardCache::write_meta(const std::string& path, const proto::CachedShard& s, uint64_t last_used) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "sha256 " << s.sha256 << "\nsize " << s.size << "\nmodel_id " << s.model_id << "\nlayer_first "
        << s.spec.layer_first << "\nlayer_last " << s.spec.layer_last << "\nhas_embedding " << s.spec.has_embedding
        << "\nhas_head " << s.spec.has_head << "\nlast_used " << last_used << "\n";
    if (!out) throw ShardCacheError("node " + name_ + ": cache: cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw ShardCacheError("node " + name_ + ": cache: cannot rename " + tmp);
}

void ShardCache::remove_shard(const std::string& sha) const {
  std::error_code ec;
  fs::remove(meta_path(sha), ec);  // the sidecar first: a .gguf without one is not an entry
  fs::remove(shard_path(sha), ec);
}

uint64_t ShardCache::used_locked() const {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& sub : {fs::path(dir_), fs::path(dir_) / "partial"})
    for (const auto& e : fs::directory_iterator(sub, ec)) {
      const auto ext = e.path().extension();
      if (ext == ".gguf" || ext == ".part") total += file_size_or_zero(e.path().string());
    }
  return total;
}

uint64_t ShardCache::used() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return used_locked();
}

std::vector<proto::CachedShard> ShardCache::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<uint64_t, proto::CachedShard>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".meta") continue;
    uint64_t last_used = 0;
    auto s = read_meta(e.path().string(), &last_used);
    if (s && file_size_or_zero(shard_path(s->sha256)) == s->size) found.emplace_back(last_used, std::move(*s));
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<proto::CachedShard> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

void ShardCache::make_room(uint64_t needed, const std::string& keep) {
  uint64_t used = used_locked();
  if (used + needed <= cap_) return;
  // Least recently used complete shards first, then other clients' partial shards (oldest first).
  std::vector<std::pair<uint64_t, std::string>> complete;
  std::vector<std::pair<fs::file_time_type, std::string>> partial;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".meta") continue;
    uint64_t last_used = 0;
    if (auto s = read_meta(e.path().string(), &last_used); s && s->sha256 != keep) complete.emplace_back(last_used, s->sha256);
  }
  for (const auto& e : fs::directory_iterator(fs::path(dir_) / "partial", ec))
    if (e.path().extension() == ".part" && e.path().stem().string() != keep)
      partial.emplace_back(fs::last_write_time(e.path(), ec), e.path().stem().string());
  std::sort(complete.begin(), complete.end());
  std::sort(partial.begin(), partial.end());
  for (const auto& c : complete) {
    if (used + needed <= cap_) return;
    const uint64_t n = file_size_or_zero(shard_path(c.second));
    spdlog::info("node {}: cache: evicting {} ({}, least recently used) to make room", name_, c.second.substr(0, 12),
                 format_size(n));
    remove_shard(c.second);
    used -= std::min(used, n);
  }
  for (const auto& p : partial) {
    if (used + needed <= cap_) return;
    const uint64_t n = file_size_or_zero(part_path(p.second));
    spdlog::info("node {}: cache: dropping the partial shard {} ({}) to make room", name_, p.second.substr(0, 12),
                 format_size(n));
    fs::remove(part_path(p.second), ec);
    fs::remove(part_meta_path(p.second), ec);
    used -= std::min(used, n);
  }
  if (used + needed > cap_)
    throw ShardCacheError("node " + name_ + ": --cache-cap " + format_size(cap_) + " cannot hold " +
                          format_size(needed) + " more (" + format_size(used) + " held)");
}

uint64_t ShardCache::offer(const proto::ShardOffer& offer) {
  const proto::CachedShard& s = offer.shard;
  if (!is_sha256_hex(s.sha256)) throw ShardCacheError("node " + name_ + ": cache: not a SHA-256 hash: '" + s.sha256 + "'");
  std::lock_guard<std::mutex> lock(mutex_);
  if (s.size > cap_)
    throw ShardCacheError("node " + name_ + ": the shard " + s.spec.describe() + " (" + format_size(s.size) +
                          ") is larger than its --cache-cap " + format_size(cap_));
  uint64_t last_used = 0;
  if (auto have = read_meta(meta_path(s.sha256), &last_used)) {
    // Re-check the bytes before a stage loads them: a disk error or a stray write must not
    // become wrong tokens.
    std::string actual;
    try {
      actual = file_size_or_zero(shard_path(s.sha256)) == have->size ? sha256_of_file(shard_path(s.sha256)) : "";
    } catch (const std::exception&) {
    }
    if (actual == s.sha256) {
      write_meta(meta_path(s.sha256), *have, now_ms());
      return have->size;
    }
    spdlog::warn("node {}: cache: shard {} is corrupted (its bytes hash to {}); removed, to be received again", name_,
                 s.sha256, actual.empty() ? "nothing: wrong size or unreadable" : actual);
    remove_shard(s.sha256);
  }
  uint64_t held = file_size_or_zero(part_path(s.sha256));
  if (held > s.size) {
    std::error_code ec;
    fs::remove(part_path(s.sha256), ec);
    held = 0;
  }
  make_room(s.size - held, s.sha256);
  struct statvfs vfs {};
  if (::statvfs(dir_.c_str(), &vfs) == 0) {
    const uint64_t disk_free = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (disk_free < s.size - held)
      throw ShardCacheError("node " + name_ + ": the disk of " + dir_ + " has " + format_size(disk_free) +
                            " free, the shard needs " + format_size(s.size - held) + " more");
  }
  write_meta(part_meta_path(s.sha256), s, now_ms());
  if (held == 0) std::ofstream(part_path(s.sha256), std::ios::trunc | std::ios::binary);
  return held;
}

uint64_t ShardCache::append(const std::string& sha256, uint64_t offset, const std::string& bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!is_sha256_hex(sha256)) throw ShardCacheError("node " + name_ + ": cache: not a SHA-256 hash");
  const auto meta = read_meta(part_meta_path(sha256), nullptr);
  if (!meta) throw ShardCacheError("node " + name_ + ": cache: no transfer of shard " + sha256 + " was offered");
  const std::string path = part_path(sha256);
  const uint64_t held = file_size_or_zero(path);
  if (offset != held)
    throw ShardCacheError("node " + name_ + ": cache: chunk at byte " + std::to_string(offset) + " of shard " +
                          sha256.substr(0, 12) + ", but it holds " + std::to_string(held) + " bytes");
  if (held + bytes.size() > meta->size)
    throw ShardCacheError("node " + name_ + ": cache: chunk runs past the shard's " + std::to_string(meta->size) +
                          " bytes");
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) throw ShardCacheError("node " + name_ + ": cache: cannot open " + path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      ::close(fd);
      throw ShardCacheError("node " + name_ + ": cache: write error on " + path);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return held + bytes.size();
}

proto::CachedShard ShardCache::finish(const std::string& sha256) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto meta = read_meta(part_meta_path(sha256), nullptr);
  if (!meta) throw ShardCacheError("node " + name_ + ": cache: no transfer of shard " + sha256 + " was offered");
  const std::string path = part_path(sha256);
  const uint64_t held = file_size_or_zero(path);
  if (held != meta->size)
    throw ShardCacheError("node " + name_ + ": cache: shard " + sha256.substr(0, 12) + " has " +
                          std::to_string(held) + " of its " + std::to_string(meta->size) + " bytes");
  sync_file(path);
  const std::string actual = sha256_of_file(path);
  std::error_code ec;
  if (actual != sha256) {
    fs::remove(path, ec);
    fs::remove(part_meta_path(sha256), ec);
    throw ShardCacheError("node " + name_ + ": cache: the received shard hashes to " + actual + ", not " + sha256 +
                          " (removed; send it again)");
  }
  if (std::rename(path.c_str(), shard_path(sha256).c_str()) != 0)
    throw ShardCacheError("node " + name_ + ": cache: cannot rename " + path + " into place");
  write_meta(meta_path(sha256), *meta, now_ms());
  fs::remove(part_meta_path(sha256), ec);
  spdlog::info("node {}: cache: shard {} ({}, {}) received, SHA-256 checked", name_, sha256.substr(0, 12),
               meta->spec.describe(), format_size(meta->size));
  return *meta;
}

std::optional<std::string> ShardCache::path_for_load(const std::string& sha256) {
  if (!is_sha256_hex(sha256)) return std::nullopt;
  std::lock_guard<std::mutex> lock(mutex_);
  auto meta = read_meta(meta_path(sha256), nullptr);
  if (!meta || file_size_or_zero(shard_path(sha256)) != meta->size) return std::nullopt;
  write_meta(meta_path(sha256), *meta, now_ms());
  return shard_path(sha256);
}

}  // namespace troupe
