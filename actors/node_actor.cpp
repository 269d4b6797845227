#include "actors/node_actor.h"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "actors/protocol/actor_system.h"
#include "actors/shard_cache.h"
#include "actors/shard_receiver_actor.h"
#include "models/runtime/byte_size.h"
#include "models/machine/process_memory.h"

namespace troupe {

namespace fs = std::filesystem;

namespace {

// How long a stage may take to map and load its weights.
constexpr auto kLoadTimeout = std::chrono::minutes(10);
// How long connecting to a peer node may take.
constexpr auto kPeerTimeout = std::chrono::seconds(10);
// How long NodeInfo waits for a stage's statistics (a stage answers between forward passes).
constexpr auto kStatsTimeout = std::chrono::seconds(1);
// How often the node tells its stages to measure their hop to the next stage. The node keeps
// the timer: a detached stage must hold no timer (see ping_next in stage_actor.cpp).
constexpr auto kHopPingInterval = std::chrono::seconds(5);

// What the node knows of its stages' work, for idle re-probing: bumped on every spawn and
// whenever the stages' computed layers move. A probe running on its own thread reads it.
struct WorkSeen {
  std::atomic<uint64_t> events{0};
  std::atomic<bool> stopping{false};  // the node is going down: a running probe stops
};

struct ReprobeState {
  std::shared_ptr<WorkSeen> seen = std::make_shared<WorkSeen>();
  uint64_t layers_seen = 0;  // sum of the stages' StageWork::layers at the last check
  std::chrono::steady_clock::time_point last_work{};  // or last probe: idleness counts from it
  std::chrono::milliseconds wait{0};  // idle time the next probe waits for (random, reprobe_idle..2x)
  bool probing = false;
  uint64_t events_at_start = 0;  // WorkSeen::events when the running probe started
  int32_t probes = 1;            // the start-up measurement counts
  std::mt19937_64 rng{std::random_device{}()};
};

struct NodeState {
  NodeConfig cfg;
  ReprobeState reprobe;
  std::set<proto::stage_actor> stages;
  std::map<caf::actor_addr, std::shared_ptr<StageWork>> work;  // per stage, for progress_atom
  // Peers connected to, by "host:port": connected once and reused (see connect_peer).
  std::map<std::string, std::pair<caf::node_id, proto::node_actor>> peers;
  std::shared_ptr<ShardCache> cache;  // with --cache
  proto::shard_receiver receiver;     // writes the cache (detached; see shard_receiver_actor.h)
  static inline const char* name = "troupe.node";
};

using NodeActor = proto::node_actor::stateful_base<NodeState>;

uint64_t meminfo_bytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size() + 1, key + ":") != 0) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    uint64_t kib = 0;
    fields >> kib;
    return kib * 1024;
  }
  return 0;
}

// Model files (*.gguf) and Hugging Face directories (with config.json) under `dir`.
std::vector<std::string> list_models(const std::string& dir) {
  std::vector<std::string> models;
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return models;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (it.depth() > 3) {
      it.disable_recursion_pending();
      continue;
    }
    const fs::path& p = it->path();
    const bool gguf = it->is_regular_file(ec) && p.extension() == ".gguf";
    const bool hf = it->is_directory(ec) && fs::exists(p / "config.json", ec);
    if (gguf || hf) models.push_back(fs::relative(p, dir, ec).generic_string());
  }
  std::sort(models.begin(), models.end());
  return models;
}

// Why a stage would not fit under --memory-limit (its weights as stored, plus the KV cache
// of one session at full length, on top of what the daemon already holds), or nothing.
std::optional<std::string> exceeds_memory_limit(const NodeConfig& node, const StageConfig& stage) {
  try {
    const StageBytes bytes = node.runtime.stage_bytes(stage);
    const uint64_t weights = bytes.weights, kv = bytes.kv_cache;
    const uint64_t in_use = process_memory().rss;
    if (in_use + weights + kv <= node.memory_limit) return std::nullopt;
    return "stage " + stage.spec.describe() + " needs " + format_size(weights) + " of weights + " + format_size(kv) +
           " of KV cache, but --memory-limit " + format_size(node.memory_limit) + " leaves " +
           format_size(node.memory_limit > in_use ? node.memory_limit - in_use : 0) + " (the daemon holds " +
           format_size(in_use) + ")";
  } catch (const std::exception& e) {
    return std::string("cannot size the stage: ") + e.what();
  }
}

caf::error node_error(const NodeState& st, const std::string& what) {
  return caf::make_error(caf::sec::runtime_error, "node " + st.cfg.name + ": " + what);
}

caf::result<proto::StageReady> spawn_stage(NodeActor* self, proto::SpawnStage req) {
  auto& st = self->state;
  if (req.wire_dtype > static_cast<uint8_t>(WireDType::bf16))
    return node_error(st, "unknown wire dtype code " + std::to_string(req.wire_dtype));
  StageConfig cfg;
  cfg.node = st.cfg.name;
  cfg.model = req.model;
  std::optional<std::string> path;
  if (!req.shard.empty()) {  // a shard a client sent: by its content hash, from the cache only
    if (!st.cache) return node_error(st, "has no --cache, so it holds no shard " + req.shard);
    path = st.cache->path_for_load(req.shard);
    if (!path) return node_error(st, "shard " + req.shard + " (" + req.model + ", " + req.spec.describe() +
                                       ") is not in its cache " + st.cache->dir());
  } else {
    path = model_path_inside(st.cfg.models_dir, req.model);
  }
  // One answer for missing and outside alike; the path shown is the request joined as text,
  // never resolved, so it says nothing about what exists outside the models dir.
  if (!path)
    return node_error(st, "model not found: " + st.cfg.models_dir + "/" + req.model + " ('" + req.model +
                            "' under the node's models dir; nothing outside it is served)");
  if (st.cfg.max_stages > 0 && static_cast<int32_t>(st.stages.size()) >= st.cfg.max_stages)
    return node_error(st, "already hosts " + std::to_string(st.stages.size()) + " stages, its --max-stages");
  cfg.model_path = *path;
  cfg.spec = req.spec;
  cfg.wire_dtype = static_cast<WireDType>(req.wire_dtype);
  cfg.threads = req.threads > 0 ? req.threads : st.cfg.threads;
  cfg.max_positions = req.max_positions;
  cfg.with_sampler = req.with_sampler;
  if (req.max_batch > 0) cfg.max_batch = req.max_batch;
  cfg.max_sessions = st.cfg.max_sessions;
  cfg.progress = req.progress;
  if (st.cfg.memory_limit > 0) {
    if (auto refusal = exceeds_memory_limit(st.cfg, cfg)) return node_error(st, *refusal);
  }

  st.reprobe.seen->events++;  // a running re-probe stops: the machine is about to work
  spdlog::info("node {}: spawning stage {} of {}", st.cfg.name, cfg.spec.describe(), cfg.model_path);
  cfg.work = std::make_shared<StageWork>();
  proto::stage_actor stage;
  try {
    stage = st.cfg.runtime.spawn_stage(self->system(), cfg, req.owner);
  } catch (const std::exception& e) {
    return node_error(st, e.what());
  }
  self->monitor(stage);
  st.stages.insert(stage);
  st.work[stage.address()] = cfg.work;
  auto rp = self->make_response_promise<proto::StageReady>();
  const caf::actor_addr weak_stage = stage.address();  // a pending handler must not keep it alive
  self->request(stage, kLoadTimeout, proto::load_atom::value)
    .then([rp](proto::StageReady& ready) mutable { rp.deliver(std::move(ready)); },
          [self, rp, weak_stage](caf::error& err) mutable {
            self->send_exit(weak_stage, caf::exit_reason::user_shutdown);
            rp.deliver(std::move(err));
          });
  return rp;
}

// Connects this node directly to the node at host:port (expected to be `expected`), so that
// the stage here can send to the stage there without going through the client (automatic
// connections are off: see actor_system.h). Done before the stages are wired, over TLS when
// the node has a cluster key.
caf::result<caf::ok_atom> connect_peer(NodeActor* self, const std::string& host, uint16_t port,
                                       const caf::node_id& expected) {
  auto rp = self->make_response_promise<caf::ok_atom>();
  const std::string peer = host + ":" + std::to_string(port);
  const std::string me = self->state.cfg.name;
  // Already connected to that node (an earlier pipeline): keep that connection. Asking CAF's
  // OpenSSL middleman to connect again would open a second one, and the BASP broker would
  // drop the first, taking down the stages that use it.
  if (auto it = self->state.peers.find(peer); it != self->state.peers.end() && it->second.first == expected) {
    self->request(it->second.second, kPeerTimeout, proto::ping_atom::value)
      .then([rp](caf::ok_atom) mutable { rp.deliver(caf::ok_atom::value); },
            [self, rp, host, port, expected, peer](caf::error&) mutable {
              self->state.peers.erase(peer);
              rp.delegate(caf::actor_cast<proto::node_actor>(self), proto::peer_atom::value, host, port, expected);
            });
    return rp;
  }
  self->request(connection_manager(self->system()), kPeerTimeout, caf::connect_atom::value, host, port)
    .then(
      [self, rp, peer, me, expected](const caf::node_id& nid, caf::strong_actor_ptr& published,
                                     const std::set<std::string>&) mutable {
        if (nid != expected) {
          rp.deliver(caf::make_error(caf::sec::runtime_error,
                                     "node " + me + " reached a different node at " + peer +
                                       " than the client did (name nodes by addresses every node can reach)"));
          return;
        }
        if (!published) {
          rp.deliver(caf::make_error(caf::sec::runtime_error, "node " + me + ": no troupe node is published at " + peer));
          return;
        }
        // The version handshake first, as the client does (framework/cluster/cluster.cpp):
        // stages here will send that node's stages versioned structs. The published actor
        // comes from CAF's middleman untyped: it is the peer's node actor.
        auto other = caf::actor_cast<proto::node_actor>(published);
        self->request(other, kPeerTimeout, proto::hello_atom::value, proto::kProtocolVersion)
          .then(
            [self, rp, peer, me, nid, other](proto::hello_atom, uint32_t version) mutable {
              if (version != proto::kProtocolVersion) {
                rp.deliver(caf::make_error(caf::sec::runtime_error,
                                           "node " + me + ": " +
                                             proto::version_mismatch_text("node " + peer, version, "this node")));
                return;
              }
              self->state.peers[peer] = {nid, other};
              spdlog::debug("node {}: connected to peer {}", me, peer);
              rp.deliver(caf::ok_atom::value);
            },
            [rp, peer, me](caf::error& err) mutable {
              rp.deliver(caf::make_error(caf::sec::runtime_error, "node " + me + ": node " + peer +
                                                                    " does not answer hello: " + proto::error_text(err)));
            });
      },
      [rp, peer, me](caf::error& err) mutable {
        rp.deliver(caf::make_error(caf::sec::runtime_error,
                                   "node " + me + " cannot reach node " + peer + ": " + proto::error_text(err) +
                                     " (name nodes by addresses every node can reach)"));
      });
  return rp;
}

// NodeInfo with the statistics of every stage that answers within kStatsTimeout.
caf::result<proto::NodeInfo> node_info(NodeActor* self) {
  auto info = std::make_shared<proto::NodeInfo>(describe_node(self->state.cfg));
  info->speed_probes = self->state.reprobe.probes;
  info->stages = static_cast<int32_t>(self->state.stages.size());
  if (const auto& cache = self->state.cache) {
    info->cache_cap = cache->cap();
    const uint64_t used = cache->used();
    info->cache_free = cache->cap() > used ? cache->cap() - used : 0;
    info->cached = cache->list();
  }
  if (self->state.stages.empty()) return *info;
  auto rp = self->make_response_promise<proto::NodeInfo>();
  auto remaining = std::make_shared<size_t>(self->state.stages.size());
  auto one_done = [info, remaining, rp]() mutable {
    if (--*remaining > 0) return;
    std::sort(info->stage_stats.begin(), info->stage_stats.end(),
              [](const auto& a, const auto& b) { return a.describe < b.describe; });
    rp.deliver(*info);
  };
  for (const auto& stage : self->state.stages)
    self->request(stage, kStatsTimeout, proto::stats_atom::value)
      .then([info, one_done](proto::StageStats& stats) mutable {
              info->stage_stats.push_back(std::move(stats));
              one_done();
            },
            [one_done](caf::error&) mutable { one_done(); });
  return rp;
}

// Hands a shard_* request to the receiver, or refuses it on a node without a cache.
template <class Answer, class... Ts>
caf::result<Answer> to_receiver(NodeActor* self, Ts&&... xs) {
  if (!self->state.receiver)
    return node_error(self->state, "has no --cache: weights cannot be sent to it (start it with --cache DIR)");
  return self->delegate(self->state.receiver, std::forward<Ts>(xs)...);
}

// Whether the message being handled was sent by an actor of this process.
bool from_this_process(NodeActor* self) {
  const auto& sender = self->current_sender();
  return sender && sender->node() == self->node();
}

// How often an idle-watching node looks at its stages' work: often enough that a probe starts
// within a fraction of --reprobe-idle after it is due.
std::chrono::milliseconds reprobe_check_interval(std::chrono::milliseconds idle) {
  return std::clamp(idle / 4, std::chrono::milliseconds(20), std::chrono::milliseconds(5000));
}

void draw_reprobe_wait(ReprobeState& r, std::chrono::milliseconds idle) {
  r.wait = idle + std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(0, idle.count())(r.rng));
}

// Notes the stages' work since the last look and starts a re-probe when the node has been idle
// long enough. The probe runs on a detached actor (it blocks for a second or two) and stops
// at its next round once work is seen; its figures are kept only if no work came at all.
void check_idle(NodeActor* self) {
  auto& st = self->state;
  auto& r = st.reprobe;
  const auto now = std::chrono::steady_clock::now();
  uint64_t layers = 0;
  bool busy = false;
  for (const auto& [addr, work] : st.work) {
    layers += work->layers.load();
    busy = busy || work->busy.load();
  }
  if (busy || layers != r.layers_seen) {
    r.layers_seen = layers;
    r.last_work = now;
    r.seen->events++;
  }
  if (r.probing || busy || now - r.last_work < r.wait) return;
  r.probing = true;
  r.events_at_start = r.seen->events.load();
  auto seen = r.seen;
  const uint64_t at_start = r.events_at_start;
  std::vector<std::shared_ptr<StageWork>> works;
  for (const auto& [addr, work] : st.work) works.push_back(work);
  // Work is seen between checks too: a pass running, or layers moved since the probe began.
  auto keep_going = [seen, at_start, works, layers] {
    uint64_t now_layers = 0;
    for (const auto& w : works) {
      if (w->busy.load()) return false;
      now_layers += w->layers.load();
    }
    return !seen->stopping.load() && seen->events.load() == at_start && now_layers == layers;
  };
  const int threads = st.cfg.threads;
  const caf::actor node = caf::actor_cast<caf::actor>(self);
  spdlog::debug("node {}: idle for {} ms, measuring its speed again", st.cfg.name,
                std::chrono::duration_cast<std::chrono::milliseconds>(now - r.last_work).count());
  self->spawn<caf::detached>([node, threads, keep_going, probe_speed = st.cfg.runtime.probe_speed](
                               caf::event_based_actor* probe) {
    MachineSpeed speed;
    try {
      speed = probe_speed(threads, keep_going);
    } catch (const std::exception& e) {
      spdlog::warn("cannot measure the machine's speed again: {}", e.what());
      speed.complete = false;
    }
    probe->send(node, proto::reprobe_atom::value, speed.complete && keep_going(), speed.gflops.median,
                speed.mem_gbps.median, speed.spread());
    probe->quit();
  });
}

// A re-probe's result: kept when no work came while it ran.
void reprobe_done(NodeActor* self, bool complete, double gflops, double mem_gbps, double spread) {
  auto& st = self->state;
  auto& r = st.reprobe;
  r.probing = false;
  r.last_work = std::chrono::steady_clock::now();
  draw_reprobe_wait(r, st.cfg.reprobe_idle);
  if (!complete || r.seen->events.load() != r.events_at_start) {
    spdlog::debug("node {}: work arrived while measuring its speed; the figures of {} s ago stay", st.cfg.name,
                  std::chrono::duration_cast<std::chrono::seconds>(r.last_work - st.cfg.speed_measured_at).count());
    return;
  }
  spdlog::info("node {}: measured again while idle: {:.0f} GFLOP/s (was {:.0f}), {:.1f} GB/s (was {:.1f})",
               st.cfg.name, gflops, st.cfg.gflops, mem_gbps, st.cfg.mem_gbps);
  st.cfg.gflops = gflops;
  st.cfg.mem_gbps = mem_gbps;
  st.cfg.speed_spread = spread;
  st.cfg.speed_measured_at = r.last_work;
  ++r.probes;
}

proto::node_actor::behavior_type node_behavior(NodeActor* self, NodeConfig cfg, std::shared_ptr<ShardCache> cache) {
  self->state.cfg = std::move(cfg);
  if (cache) {
    self->state.cache = cache;
    self->state.receiver = spawn_shard_receiver(self->system(), std::move(cache));
  }
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& stages = self->state.stages;
    for (auto it = stages.begin(); it != stages.end(); ++it)
      if (it->address() == dm.source) {
        stages.erase(it);
        self->state.work.erase(dm.source);
        break;
      }
    // A stage's weights are mapped and unmapped, but its KV caches and activations were heap:
    // give what they leave free back to the kernel once nothing is hosted.
    if (stages.empty()) release_free_heap();
  });
  if (self->state.cfg.reprobe_idle.count() > 0) {
    self->state.reprobe.last_work = self->state.cfg.speed_measured_at;
    draw_reprobe_wait(self->state.reprobe, self->state.cfg.reprobe_idle);
    self->delayed_send(self, reprobe_check_interval(self->state.cfg.reprobe_idle), proto::reprobe_atom::value);
  }
  self->delayed_send(self, kHopPingInterval, proto::tick_atom::value);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    spdlog::info("node {}: shutting down {} stage(s)", self->state.cfg.name, self->state.stages.size());
    self->state.reprobe.seen->stopping = true;
    for (const auto& stage : self->state.stages) self->send_exit(stage, msg.reason);
    self->state.stages.clear();
    if (self->state.receiver) self->send_exit(self->state.receiver, msg.reason);
    self->state.work.clear();
    self->quit(msg.reason);
  });
  return {
    [](proto::hello_atom, uint32_t) {
      return caf::result<proto::hello_atom, uint32_t>(proto::hello_atom::value, proto::kProtocolVersion);
    },
    [self](proto::info_atom) { return node_info(self); },
    [self](proto::spawn_atom, proto::SpawnStage& req) { return spawn_stage(self, std::move(req)); },
    [](proto::ping_atom) { return caf::ok_atom::value; },
    [self](proto::shard_offer_atom a, proto::ShardOffer& offer) {
      return to_receiver<uint64_t>(self, a, std::move(offer));
    },
    [self](proto::shard_chunk_atom a, std::string& sha, uint64_t offset, std::string& bytes) {
      return to_receiver<uint64_t>(self, a, std::move(sha), offset, std::move(bytes));
    },
    [self](proto::shard_done_atom a, std::string& sha) { return to_receiver<proto::CachedShard>(self, a, std::move(sha)); },
    [self](proto::progress_atom, const proto::stage_actor& stage) -> caf::result<bool, uint64_t> {
      const auto it = self->state.work.find(stage.address());
      if (it == self->state.work.end()) return {false, uint64_t{0}};  // gone: its down message tells
      return {it->second->busy.load(), it->second->layers.load()};
    },
    [self](proto::tick_atom) {
      for (const auto& stage : self->state.stages) self->send(stage, proto::tick_atom::value);
      self->delayed_send(self, kHopPingInterval, proto::tick_atom::value);
    },
    [self](proto::peer_atom, const std::string& host, uint16_t port, const caf::node_id& expected) {
      return connect_peer(self, host, port, expected);
    },
    // Local only: the node's own timer and its probe. The same message from another node
    // (which the interface cannot rule out) is dropped.
    [self](proto::reprobe_atom) {
      if (!from_this_process(self)) return;
      check_idle(self);
      self->delayed_send(self, reprobe_check_interval(self->state.cfg.reprobe_idle), proto::reprobe_atom::value);
    },
    [self](proto::reprobe_atom, bool complete, double gflops, double mem_gbps, double spread) {
      if (!from_this_process(self)) return;
      reprobe_done(self, complete, gflops, mem_gbps, spread);
    },
  };
}

}  // namespace

std::string resolve_model_path(const std::string& models_dir, const std::string& model) {
  const fs::path p(model);
  if (p.is_absolute() || models_dir.empty()) return p.lexically_normal().string();
  return (fs::path(models_dir) / p).lexically_normal().string();
}

std::optional<std::string> model_path_inside(const std::string& models_dir, const std::string& model) {
  const fs::path p(model);
  if (models_dir.empty() || model.empty()) return std::nullopt;
  for (const auto& part : p)
    if (part == "..") return std::nullopt;
  std::error_code ec;
  const fs::path root = fs::canonical(models_dir, ec);
  if (ec) return std::nullopt;
  // An absolute path is taken as it is (scripts pass one with --models /); like every other
  // path it is served only if it really lies inside.
  const fs::path real = fs::canonical(p.is_absolute() ? p : root / p, ec);  // follows every link; fails if missing
  if (ec) return std::nullopt;
  // Inside: `root` is a prefix of `real`, component by component (not as text: /models2).
  auto r = real.begin();
  for (auto it = root.begin(); it != root.end(); ++it, ++r)
    if (r == real.end() || *r != *it) return std::nullopt;
  return real.string();
}

uint64_t default_memory_limit() {
  const uint64_t total = meminfo_bytes("MemTotal");
  const uint64_t available = meminfo_bytes("MemAvailable");
  const uint64_t margin = std::max<uint64_t>(total / 10, uint64_t(512) << 20);
  return available > margin ? available - margin : available / 2;
}

proto::NodeInfo describe_node(const NodeConfig& cfg) {
  proto::NodeInfo info;
  info.node = cfg.name;
  info.mem_total = meminfo_bytes("MemTotal");
  info.mem_available = meminfo_bytes("MemAvailable");
  info.cores = static_cast<int32_t>(std::thread::hardware_concurrency());
  info.threads = cfg.threads;
  info.models_dir = cfg.models_dir;
  info.models = list_models(cfg.models_dir);
  info.memory_limit = cfg.memory_limit;
  info.gflops = cfg.gflops;
  info.mem_gbps = cfg.mem_gbps;
  info.speed_spread = cfg.speed_spread;
  if (cfg.speed_measured_at != std::chrono::steady_clock::time_point{})
    info.speed_age_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - cfg.speed_measured_at).count();
  const ProcessMemory memory = process_memory();
  info.rss = memory.rss;
  info.peak_rss = memory.peak_rss;
  return info;
}

proto::node_actor spawn_node_actor(caf::actor_system& sys, NodeConfig cfg) {
  if (!cfg.runtime.stage_bytes || !cfg.runtime.spawn_stage || !cfg.runtime.probe_speed)
    throw std::invalid_argument("node " + cfg.name + ": NodeConfig::runtime is not set (linked_stage_runtime() in a "
                                "client, stage_runtime_module() in caf-node)");
  std::shared_ptr<ShardCache> cache;  // made here, so that a bad --cache is the caller's exception
  if (!cfg.cache_dir.empty()) cache = std::make_shared<ShardCache>(cfg.cache_dir, cfg.cache_cap, cfg.name);
  return sys.spawn(node_behavior, std::move(cfg), std::move(cache));
}

}  // namespace troupe
