// caf-node: the daemon each laptop of the cluster runs. Publishes a node actor on a TCP
// port; clients connect, ask what the machine has and have it load pipeline stages.
//
//   caf-node --port 7000 --listen 0.0.0.0 --models ~/models --threads 4 --cluster-key ~/cluster.pem
//
// With a cluster key (troupe keys init) every link is mutually authenticated TLS; without
// one the daemon listens only on loopback, unless --insecure says otherwise.
// Stops cleanly (its stages first) on SIGINT/SIGTERM.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/publish.hpp>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "launch/caf_node/speed_probe_process.h"
#include "launch/troupe/cli_checks.h"
#include "actors/node_actor.h"
#include "actors/protocol/actor_system.h"
#include "actors/protocol/cluster_key.h"
#include "actors/stage_runtime_module.h"
#include "framework/cluster/discovery.h"
#include "models/runtime/byte_size.h"
#include "models/machine/openmp_wait_policy.h"
#include "models/machine/process_memory.h"

namespace {

// After a stop signal, how long the actor system may take to stop before the daemon exits anyway.
constexpr auto kShutdownDeadline = std::chrono::seconds(5);

// A port that is free on `listen` right now (for --port 0).
int free_port(const std::string& listen) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
  addrinfo* found = nullptr;
  if (getaddrinfo(listen.c_str(), "0", &hints, &found) != 0 || found == nullptr) return 0;
  int port = 0;
  const int fd = socket(found->ai_family, SOCK_STREAM, 0);
  if (fd >= 0 && bind(fd, found->ai_addr, found->ai_addrlen) == 0) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(found);
  return port;
}

// This program's own path (/proc/self/exe).
std::string executable_path() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).string();
}

// `caf-node --probe-speed THREADS` (speed_probe_process.h): the daemon's speed probe, run as a
// child so that the daemon does not load LibTorch for it.
int probe_speed_and_print(const std::string& module, const char* threads_arg) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("caf-node probe"));  // stdout carries the figures
  const int threads = std::atoi(threads_arg);
  if (threads <= 0) {
    spdlog::error("--probe-speed: thread count must be at least 1, got '{}'", threads_arg);
    return 2;
  }
  try {
    const troupe::MachineSpeed speed = troupe::open_stage_runtime_module(module, threads).probe_speed(threads, {});
    std::fputs(troupe::format_machine_speed(speed).c_str(), stdout);
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Every stage runs its own OpenMP team (one per detached stage thread): idle members must
  // sleep, not spin, or they starve the other teams and processes on the same cores.
  troupe::use_passive_openmp_wait(argv);
  // The stage runtime (LibTorch and the model core) is a module opened when the first stage
  // comes; a build or install tree holds it beside this program or in ../lib/troupe.
  const std::string exe = executable_path();
  const std::string module = troupe::find_stage_runtime_module(std::filesystem::path(exe).parent_path().string());
  if (module.empty()) {
    std::fprintf(stderr, "caf-node: its stage runtime %s is neither beside %s nor in ../lib/troupe: rebuild or "
                 "reinstall troupe\n", troupe::kStageRuntimeModule, exe.c_str());
    return 2;
  }
  if (argc == 3 && std::string(argv[1]) == "--probe-speed") return probe_speed_and_print(module, argv[2]);
  CLI::App app{"caf-node: runs troupe pipeline stages for clients on the network"};
  int port = 0;
  std::string listen = "127.0.0.1";
  std::string models_dir = ".";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string port_file;
  std::string log_level = "info";
  app.add_option("--port", port, "TCP port to listen on (0: any free port)")->required()->check(troupe::cli::between(0, 65535));
  app.add_option("--listen", listen, "address to listen on (0.0.0.0 for every interface)")->capture_default_str();
  app.add_option("--models", models_dir, "directory that model paths are relative to")->capture_default_str();
  app.add_option("--threads", threads, "LibTorch threads per stage")->capture_default_str()->check(troupe::cli::positive());
  app.add_option("--port-file", port_file, "write the port actually bound to this file once listening");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  std::string memory_limit;
  app.add_option("--memory-limit", memory_limit,
                 "memory troupe may use on this machine, e.g. 6G; stages that would exceed it are refused "
                 "(default: the memory available when the daemon starts, less 10% of the total, at least 512M)");
  std::string cluster_key;
  bool insecure = false;
  app.add_option("--cluster-key", cluster_key,
                 "cluster key file (troupe keys init): only processes holding the same file may connect, over TLS "
                 "(default: $TROUPE_CLUSTER_KEY, else ~/.config/troupe/cluster.pem if it exists)");
  app.add_flag("--insecure", insecure,
               "allow listening beyond loopback without a cluster key: anyone who can reach the port can then use "
               "this node, read and change what it computes, and see prompts and activations in clear text");
  int max_stages = 16;
  int max_sessions = 256;
  app.add_option("--max-stages", max_stages, "stages this node hosts at once, for all clients together")
    ->capture_default_str()->check(troupe::cli::positive());
  app.add_option("--max-sessions", max_sessions, "sessions each stage on this node holds at once")
    ->capture_default_str()->check(troupe::cli::positive());
  app.set_version_flag("--version", troupe::cli::version_text("caf-node"));
  std::string cache_dir, cache_cap;
  app.add_option("--cache", cache_dir,
                 "keep the stage shards clients send here, by content hash (then no model file is needed under "
                 "--models: the client with the model sends each node its part once)");
  app.add_option("--cache-cap", cache_cap,
                 "bytes of shards the cache may hold, e.g. 20G; least recently used shards are evicted beyond it "
                 "(default: 90% of the disk space free when the daemon starts)");
  std::string announce = "auto";
  uint16_t discovery_port = troupe::kDiscoveryPort;
  app.add_option("--announce", announce,
                 "announce this node by UDP broadcast, so that `troupe ... --discover` finds it: on, off, or auto "
                 "(on unless listening on loopback only)")
    ->capture_default_str()->check(CLI::IsMember({"auto", "on", "off"}));
  app.add_option("--discovery-port", discovery_port, "UDP port announcements go to")->capture_default_str();
  double reprobe_idle_s = 600;
  app.add_option("--reprobe-idle", reprobe_idle_s,
                 "measure the machine's speed again once no stage has worked for a random time between this many "
                 "seconds and twice that (never while a stage works), so planners see what the machine does now; "
                 "0: only at start")
    ->capture_default_str()->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  std::error_code ec;
  models_dir = std::filesystem::absolute(models_dir, ec).lexically_normal().string();

  auto logger = spdlog::stderr_color_mt("caf-node");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("[%H:%M:%S.%e] [caf-node %P] [%^%l%$] %v");

  // Block the stop signals in every thread (the actor system's threads inherit this mask);
  // the main thread waits for them with sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  cluster_key = troupe::find_cluster_key(cluster_key);
  if (!cluster_key.empty()) {
    try {
      const troupe::ClusterKeyInfo key = troupe::check_cluster_key(cluster_key);
      spdlog::info("cluster key {} ({}, SHA-256 {}): links are mutually authenticated TLS", cluster_key, key.subject,
                   key.fingerprint);
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 2;
    }
  } else if (!troupe::is_loopback_address(listen)) {
    if (!insecure) {
      spdlog::error("refusing to listen on {} without a cluster key: anyone who can reach it could use this node. "
                    "Make a key once with `troupe keys init`, copy it to every laptop and pass --cluster-key FILE "
                    "(or pass --insecure to accept that risk on a network you trust)",
                    listen);
      return 2;
    }
    spdlog::warn("--insecure: listening on {} without a cluster key; anyone who can reach this port can use this "
                 "node, and prompts and activations cross the network in clear text",
                 listen);
  }

  caf::actor_system_config cfg;
  troupe::configure_actor_system(cfg, 2, cluster_key);
  caf::actor_system sys{cfg};

  if (port == 0) port = free_port(listen);
  troupe::NodeConfig node_cfg;
  // Errors and logs name the node by the address clients use; for a wildcard listen
  // address that is best guessed by the host name.
  std::string host = listen;
  if (listen == "0.0.0.0" || listen == "::") {
    char name[256] = {0};
    if (gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0') host = name;
  }
  node_cfg.name = host + ":" + std::to_string(port);
  node_cfg.models_dir = models_dir;
  node_cfg.threads = threads;
  node_cfg.max_stages = max_stages;
  node_cfg.max_sessions = max_sessions;
  try {
    node_cfg.memory_limit = memory_limit.empty() ? troupe::default_memory_limit() : troupe::parse_size(memory_limit);
  } catch (const std::exception& e) {
    spdlog::error("--memory-limit: {}", e.what());
    return 2;
  }
  if (!cache_dir.empty()) {
    node_cfg.cache_dir = std::filesystem::absolute(cache_dir, ec).lexically_normal().string();
    std::filesystem::create_directories(node_cfg.cache_dir, ec);
    try {
      node_cfg.cache_cap = cache_cap.empty() ? std::filesystem::space(node_cfg.cache_dir).available / 10 * 9
                                             : troupe::parse_size(cache_cap);
    } catch (const std::exception& e) {
      spdlog::error("--cache-cap: {}", e.what());
      return 2;
    }
  } else if (!cache_cap.empty()) {
    spdlog::error("--cache-cap needs --cache DIR");
    return 2;
  }
  // Measured for planners: how fast this machine multiplies and streams memory. Repeated in
  // rounds at random moments and summarised by the median: a neighbour starting at the same
  // moment (its own probes) slows a few rounds, not the figure. Measured again later when the
  // node has been idle a while (--reprobe-idle; actors/node_actor.h). In a child process, so
  // that LibTorch is loaded only with the first stage.
  auto probe_speed = [exe](int threads, const std::function<bool()>& keep_going) {
    return troupe::probe_speed_in_child(exe, threads, keep_going);
  };
  node_cfg.runtime = troupe::stage_runtime_module(module, threads, probe_speed);
  troupe::MachineSpeed speed;
  try {
    speed = probe_speed(threads, {});
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
  node_cfg.gflops = speed.gflops.median;
  node_cfg.mem_gbps = speed.mem_gbps.median;
  node_cfg.speed_spread = speed.spread();
  node_cfg.speed_measured_at = std::chrono::steady_clock::now();
  node_cfg.reprobe_idle = std::chrono::milliseconds(static_cast<int64_t>(reprobe_idle_s * 1000));
  if (speed.uncertain())
    spdlog::warn("speed probes disagree ({} rounds: ±{:.0f}% GFLOP/s, {} rounds: ±{:.0f}% GB/s): is the machine busy?",
                 speed.gflops.rounds, 50 * speed.gflops.spread, speed.mem_gbps.rounds, 50 * speed.mem_gbps.spread);
  troupe::proto::node_actor node;
  try {
    node = troupe::spawn_node_actor(sys, node_cfg);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
  if (!node_cfg.cache_dir.empty())
    spdlog::info("shard cache {} (cap {})", node_cfg.cache_dir, troupe::format_size(node_cfg.cache_cap));
  auto bound = cluster_key.empty()
                 ? sys.middleman().publish(node, static_cast<uint16_t>(port), listen.c_str(), /*reuse_addr=*/true)
                 : caf::openssl::publish(node, static_cast<uint16_t>(port), listen.c_str(), /*reuse=*/true);
  if (!bound) {
    spdlog::error("cannot listen on {}:{}: the port is taken by another program (another caf-node?) or the address "
                  "is not this machine's; choose another with --port (0: any free port)",
                  listen, port);
    spdlog::debug("CAF said: {}", sys.render(bound.error()));
    caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
    return 1;
  }
  if (!std::filesystem::is_directory(models_dir, ec)) spdlog::warn("models dir '{}' does not exist", models_dir);
  spdlog::info("node {} listening{} (models dir '{}', {} threads per stage, {:.0f} GFLOP/s, {:.1f} GB/s, memory limit {}, "
               "at most {} stages of {} sessions)",
               node_cfg.name, cluster_key.empty() ? " without TLS" : " with TLS", models_dir, threads, node_cfg.gflops,
               node_cfg.mem_gbps, troupe::format_size(node_cfg.memory_limit), max_stages, max_sessions);
  // Announcements carry the cluster identity (a hash of the key's certificate, never a secret)
  // and the port; the client's TLS connection decides who may use the node.
  std::unique_ptr<troupe::Announcer> announcer;
  if (announce == "on" || (announce == "auto" && !troupe::is_loopback_address(listen))) {
    try {
      announcer = std::make_unique<troupe::Announcer>(listen, static_cast<uint16_t>(*bound),
                                                      troupe::cluster_identity(cluster_key), discovery_port);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const auto targets = announcer->targets();
      std::string where;
      for (const auto& t : targets) where += (where.empty() ? "" : ", ") + t;
      spdlog::info("announcing on UDP port {} to {}", discovery_port, where.empty() ? "no interface yet" : where);
    } catch (const std::exception& e) {
      spdlog::warn("not announcing: {}", e.what());
    }
  }
  // What an idle daemon holds (see README "Memory"): CAF, OpenSSL and thread stacks; LibTorch
  // comes with the first stage.
  const troupe::MemoryBreakdown idle = troupe::memory_breakdown();
  spdlog::info("idle memory: RSS {} ({} anonymous, {} pages of mapped files such as shared libraries; PSS {})",
               troupe::format_size(idle.rss), troupe::format_size(idle.anonymous), troupe::format_size(idle.file()),
               troupe::format_size(idle.pss));
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << *bound << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  announcer.reset();  // a leaving node stops announcing first
  spdlog::info("node {}: {} received, stopping", node_cfg.name, strsignal(sig));
  caf::anon_send(troupe::connection_manager(sys), caf::unpublish_atom::value, node.address(),
                 static_cast<uint16_t>(*bound));
  caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
  // ~actor_system waits for the node and its stages to finish. It also waits for every
  // detached stage to be destroyed, which a reference CAF keeps can delay for ever (seen when
  // stopped in the middle of a generation); a stop signal must stop the daemon, so bound it.
  std::thread([name = node_cfg.name] {
    std::this_thread::sleep_for(kShutdownDeadline);
    spdlog::warn("node {}: the actor system did not finish stopping within {} s; exiting anyway", name,
                 std::chrono::duration_cast<std::chrono::seconds>(kShutdownDeadline).count());
    std::_Exit(0);
  }).detach();
  return 0;
}
