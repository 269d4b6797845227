// Built into troupe_deploy, beside deploy.cpp, which calls it before the stages load.
#include "framework/deploy/shard_transfer.h"

#include <caf/all.hpp>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "actors/node_actor.h"
#include "actors/protocol/content_hash.h"
#include "models/arch/open_checkpoint.h"
#include "models/convert/model_split.h"
#include "models/format/checkpoint.h"
#include "models/runtime/byte_size.h"

namespace troupe {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

std::mutex index_mutex;  // one index file per build dir, shared by the deploys of this process

// A model file (or directory) as the index knows it: absolute path, size, modification time.
std::string model_identity(const std::string& model_path) {
  std::error_code ec;
  const fs::path p = fs::absolute(model_path, ec).lexically_normal();
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return p.string() + " ? ?";
  uint64_t size = static_cast<uint64_t>(st.st_size);
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (S_ISDIR(st.st_mode))  // a Hugging Face directory: the sum of its files and their newest change
    for (const auto& e : fs::directory_iterator(p, ec)) {
      struct stat f {};
      if (::stat(e.path().c_str(), &f) != 0) continue;
      size += static_cast<uint64_t>(f.st_size);
      mtime = std::max<int64_t>(mtime, static_cast<int64_t>(f.st_mtim.tv_sec) * 1000000000 + f.st_mtim.tv_nsec);
    }
  // Paths hold no tabs in practice; the fields are tab-separated.
  return p.string() + "\t" + std::to_string(size) + "\t" + std::to_string(mtime);
}

std::string spec_key(const StageSpec& s) {
  return std::to_string(s.layer_first) + "-" + std::to_string(s.layer_last) + (s.has_embedding ? "e" : "") +
         (s.has_head ? "h" : "");
}

// Index line: identity(3 fields) \t spec \t sha \t size \t model_id
struct IndexLine {
  std::string identity, spec, sha, model_id;
  uint64_t size = 0;
};

std::vector<IndexLine> read_index(const std::string& file) {
  std::vector<IndexLine> lines;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string field;
    while (std::getline(ss, field, '\t')) f.push_back(field);
    if (f.size() != 7 || !is_sha256_hex(f[4])) continue;
    try {
      lines.push_back({f[0] + "\t" + f[1] + "\t" + f[2], f[3], f[4], f[6], std::stoull(f[5])});
    } catch (const std::exception&) {
    }
  }
  return lines;
}

StageSpec parse_spec_key(const std::string& key) {
  StageSpec s;
  const auto dash = key.find('-');
  s.layer_first = std::stoll(key.substr(0, dash));
  size_t used = 0;
  s.layer_last = std::stoll(key.substr(dash + 1), &used);
  const std::string flags = key.substr(dash + 1 + used);
  s.has_embedding = flags.find('e') != std::string::npos;
  s.has_head = flags.find('h') != std::string::npos;
  return s;
}

// One transfer to one node: chunks read from the built shard, `window` in flight.
struct Transfer {
  proto::node_actor node;
  std::string endpoint, stage, sha, path;
  uint64_t size = 0, resumed_from = 0, next = 0, acked = 0;
  int in_flight = 0;
  int fd = -1;
  ShardTransferOptions options;
  Clock::time_point started = Clock::now(), last_report{};
  std::string failure;
  std::promise<void> done;
  bool settled = false;

  TransferProgress progress(bool finished) const {
    TransferProgress p;
    p.node = endpoint;
    p.stage = stage;
    p.sha256 = sha;
    p.bytes_done = acked;
    p.bytes_total = size;
    p.resumed_from = resumed_from;
    const double s = std::chrono::duration<double>(Clock::now() - started).count();
    p.bytes_per_s = s > 0 ? static_cast<double>(acked - resumed_from) / s : 0;
    p.eta_s = p.bytes_per_s > 0 ? static_cast<double>(size - acked) / p.bytes_per_s : 0;
    p.done = finished;
    return p;
  }
  void report(bool finished) {
    if (!options.on_progress) return;
    const auto now = Clock::now();
    if (!finished && now - last_report < std::chrono::milliseconds(250)) return;
    last_report = now;
    options.on_progress(progress(finished));
  }
  void settle(std::string why) {
    if (settled) return;
    settled = true;
    failure = std::move(why);
    if (fd >= 0) ::close(fd), fd = -1;
    done.set_value();
  }
};

void pump(caf::event_based_actor* self, const std::shared_ptr<Transfer>& t);

void finish(caf::event_based_actor* self, const std::shared_ptr<Transfer>& t) {
  self->request(t->node, t->options.chunk_timeout * 10, proto::shard_done_atom::value, t->sha)
    .then(
      [self, t](const proto::CachedShard&) {
        t->report(true);
        t->settle("");
        self->quit();
      },
      [self, t](caf::error& e) {
        t->settle(proto::error_text(e));
        self->quit();
      });
}

void pump(caf::event_based_actor* self, const std::shared_ptr<Transfer>& t) {
  while (!t->settled && t->in_flight < t->options.window && t->next < t->size) {
    if (t->options.max_bytes_per_s > 0) {  // a rate cap: wait until the budget allows the next chunk
      const double allowed = static_cast<double>(t->options.max_bytes_per_s) *
                             std::chrono::duration<double>(Clock::now() - t->started).count();
      const double ahead = static_cast<double>(t->next - t->resumed_from) - allowed;
      if (ahead > 0) {
        const auto wait = std::chrono::microseconds(
          static_cast<int64_t>(ahead / static_cast<double>(t->options.max_bytes_per_s) * 1e6) + 1000);
        self->delayed_send(self, wait, caf::ok_atom::value);
        return;
      }
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(t->options.chunk_bytes, t->size - t->next));
    std::string bytes(n, '\0');
    const ssize_t got = ::pread(t->fd, bytes.data(), n, static_cast<off_t>(t->next));
    if (got != static_cast<ssize_t>(n)) {
      t->settle("cannot read " + t->path + " at byte " + std::to_string(t->next));
      self->quit();
      return;
    }
    const uint64_t offset = t->next;
    t->next += n;
    ++t->in_flight;
    self->request(t->node, t->options.chunk_timeout, proto::shard_chunk_atom::value, t->sha, offset, std::move(bytes))
      .then(
        [self, t](uint64_t held) {
          --t->in_flight;
          t->acked = std::max(t->acked, held);
          t->report(false);
          if (t->acked == t->size && t->in_flight == 0)
            finish(self, t);
          else
            pump(self, t);
        },
        [self, t](caf::error& e) {
          t->settle(e == caf::sec::request_timeout
                      ? "no acknowledgement of a chunk within " + std::to_string(t->options.chunk_timeout.count()) + " ms"
                      : proto::error_text(e));
          self->quit();
        });
  }
}

// Builds the stage's shard under the build dir (temp + rename), unless a complete one from
// an earlier (broken) run is there; returns path, hash and size.
proto::CachedShard build_shard(const ShardRequest& r, const std::string& build_dir, const std::string& model_id,
                               std::string* path_out) {
  std::error_code ec;
  fs::create_directories(build_dir, ec);
  std::string stem = model_id;
  for (char& c : stem)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  const std::string path = build_dir + "/" + stem + "." + spec_key(r.spec) + ".gguf";
  const std::string tmp = path + ".tmp";
  write_stage_shard(r.model_path, r.spec, tmp);
  proto::CachedShard s;
  s.sha256 = sha256_of_file(tmp);
  s.size = static_cast<uint64_t>(fs::file_size(tmp));
  s.model_id = model_id;
  s.spec = r.spec;
  fs::rename(tmp, path);
  *path_out = path;
  return s;
}

}  // namespace

std::string default_shard_build_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/troupe/outgoing";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/troupe/outgoing";
  return "/tmp/troupe-outgoing";
}

ShardIndex::ShardIndex(std::string build_dir) : file_(std::move(build_dir) + "/index") {}

std::optional<proto::CachedShard> ShardIndex::find(const std::string& model_path, const StageSpec& spec) const {
  std::lock_guard<std::mutex> lock(index_mutex);
  const std::string id = model_identity(model_path), key = spec_key(spec);
  std::optional<proto::CachedShard> found;
  for (const auto& l : read_index(file_))
    if (l.identity == id && l.spec == key) found = proto::CachedShard{l.sha, l.size, l.model_id, spec};
  return found;
}

std::vector<proto::CachedShard> ShardIndex::of_model(const std::string& model_path) const {
  std::lock_guard<std::mutex> lock(index_mutex);
  const std::string id = model_identity(model_path);
  std::map<std::string, proto::CachedShard> by_spec;  // the newest line per spec
  for (const auto& l : read_index(file_))
    if (l.identity == id) by_spec[l.spec] = proto::CachedShard{l.sha, l.size, l.model_id, parse_spec_key(l.spec)};
  std::vector<proto::CachedShard> out;
  for (auto& kv : by_spec) out.push_back(std::move(kv.second));
  return out;
}

void ShardIndex::add(const std::string& model_path, const proto::CachedShard& shard) {
  std::lock_guard<std::mutex> lock(index_mutex);
  std::error_code ec;
  fs::create_directories(fs::path(file_).parent_path(), ec);
  std::ofstream out(file_, std::ios::app);
  out << model_identity(model_path) << "\t" << spec_key(shard.spec) << "\t" << shard.sha256 << "\t" << shard.size
      << "\t" << shard.model_id << "\n";
}

std::optional<ShardRequest> shard_request_for(const proto::node_actor& node, const std::string& endpoint,
                                              uint64_t cache_cap, const std::string& local_models_dir,
                                              const std::string& model, const StageSpec& spec) {
  if (endpoint.empty() || cache_cap == 0) return std::nullopt;
  const std::string path = resolve_model_path(local_models_dir, model);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  return ShardRequest{node, endpoint, path, spec};
}

std::vector<ShardOutcome> ensure_stage_shards(caf::actor_system& sys, const std::vector<ShardRequest>& requests,
                                              const ShardTransferOptions& given) {
  ShardTransferOptions options = given;
  if (options.build_dir.empty()) options.build_dir = default_shard_build_dir();
  if (options.chunk_bytes == 0) options.chunk_bytes = size_t(1) << 20;
  options.window = std::max(1, options.window);
  ShardIndex index(options.build_dir);
  std::vector<ShardOutcome> outcomes(requests.size());
  std::vector<std::shared_ptr<Transfer>> transfers(requests.size());
  std::map<std::string, std::string> model_ids;  // model path -> fingerprint
  std::string failures;
  auto fail = [&](size_t i, const std::string& why) {
    failures += (failures.empty() ? "" : "; ") + std::string("sending the shard of ") + requests[i].spec.describe() +
                " to node " + requests[i].endpoint + ": " + why;
  };
  caf::scoped_actor self{sys};
  auto offer = [&](size_t i, const proto::CachedShard& s, uint64_t* resume) {
    std::string failure;
    self->request(requests[i].node, options.chunk_timeout * 10, proto::shard_offer_atom::value, proto::ShardOffer{s})
      .receive([&](uint64_t at) { *resume = at; }, [&](caf::error& e) { failure = proto::error_text(e); });
    return failure;
  };

  for (size_t i = 0; i < requests.size(); ++i) {
    const ShardRequest& r = requests[i];
    uint64_t resume = 0;
    // 1. Known hash: the node may hold it already.
    if (auto known = index.find(r.model_path, r.spec)) {
      const std::string failure = offer(i, *known, &resume);
      if (!failure.empty()) {
        fail(i, failure);
        continue;
      }
      if (resume == known->size) {
        spdlog::info("node {} holds the shard of {} ({}, SHA-256 {}): nothing to send", r.endpoint, r.spec.describe(),
                     format_size(known->size), known->sha256.substr(0, 16));
        outcomes[i] = ShardOutcome{known->sha256, known->size, 0, resume, false, 0};
        continue;
      }
    }
    // 2. Build it here (again: the client keeps no copy once a node has one; the bytes are
    // the same every time, so a transfer broken in an earlier run resumes).
    std::string path;
    proto::CachedShard shard;
    try {
      auto& id = model_ids[r.model_path];
      if (id.empty()) id = open_checkpoint(r.model_path)->model_id();
      shard = build_shard(r, options.build_dir, id, &path);
    } catch (const std::exception& e) {
      fail(i, std::string("cannot build it: ") + e.what());
      continue;
    }
    index.add(r.model_path, shard);
    if (const std::string failure = offer(i, shard, &resume); !failure.empty()) {
      fail(i, failure);
      continue;
    }
    outcomes[i] = ShardOutcome{shard.sha256, shard.size, 0, resume, true, 0};
    if (resume == shard.size) {
      std::error_code ec;
      fs::remove(path, ec);
      continue;
    }
    // 3. Send from where the node is.
    spdlog::info("sending the shard of {} to node {}: {} (SHA-256 {}){}", r.spec.describe(), r.endpoint,
                 format_size(shard.size), shard.sha256.substr(0, 16),
                 resume > 0 ? ", resuming at byte " + std::to_string(resume) + " (kept from a broken transfer)" : "");
    auto t = std::make_shared<Transfer>();
    t->node = r.node;
    t->endpoint = r.endpoint;
    t->stage = r.spec.describe();
    t->sha = shard.sha256;
    t->path = path;
    t->size = shard.size;
    t->resumed_from = t->next = t->acked = resume;
    t->options = options;
    t->fd = ::open(path.c_str(), O_RDONLY);
    if (t->fd < 0) {
      fail(i, "cannot open " + path);
      continue;
    }
    transfers[i] = t;
    sys.spawn([t](caf::event_based_actor* a) -> caf::behavior {
      pump(a, t);
      return {[a, t](caf::ok_atom) { pump(a, t); }};  // the rate cap's wake-up
    });
  }
  for (size_t i = 0; i < transfers.size(); ++i) {
    const auto& t = transfers[i];
    if (!t) continue;
    t->done.get_future().wait();
    outcomes[i].bytes_sent = t->acked - t->resumed_from;
    outcomes[i].seconds = std::chrono::duration<double>(Clock::now() - t->started).count();
    if (!t->failure.empty()) {
      fail(i, t->failure);
      continue;
    }
    spdlog::info("node {} has the shard of {}: {} sent in {:.2f} s ({:.1f} MB/s), SHA-256 checked by the node",
                 requests[i].endpoint, requests[i].spec.describe(), format_size(outcomes[i].bytes_sent),
                 outcomes[i].seconds, outcomes[i].seconds > 0 ? outcomes[i].bytes_sent / outcomes[i].seconds / 1e6 : 0.0);
    std::error_code ec;
    fs::remove(t->path, ec);  // 4. the node has it now
  }
  if (!failures.empty()) throw ShardTransferError(failures);
  return outcomes;
}

}  // namespace troupe
