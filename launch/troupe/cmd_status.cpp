// `troupe status`: what each node has and does, reachable or not.

#include <cstdio>
#include <string>

#include "models/runtime/byte_size.h"
#include "framework/cluster/cluster.h"
#include "framework/cluster/cluster_file.h"
#include "framework/deploy/pipeline_plan.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "launch/troupe/node_options.h"

namespace troupe::cli {
namespace {

struct StatusOptions {
  std::string nodes, cluster;
  DiscoverOptions discovery;
};

// How long ago the node measured its speed: "40s ago", "12m ago", "3h ago" ("-": unknown).
std::string speed_age(double seconds) {
  if (seconds < 0) return "-";
  if (seconds < 120) return std::to_string(static_cast<int64_t>(seconds)) + "s ago";
  if (seconds < 7200) return std::to_string(static_cast<int64_t>(seconds / 60)) + "m ago";
  return std::to_string(static_cast<int64_t>(seconds / 3600)) + "h ago";
}

void run_status(const StatusOptions& o) {
  std::vector<std::string> endpoints;
  if (!o.cluster.empty()) {
    for (const auto& n : read_cluster_file(o.cluster).nodes) endpoints.push_back(n.address);
  } else {
    endpoints = o.discovery.endpoints(o.nodes);
  }
  ClientActorSystem sys;
  std::printf("%-22s %-12s %-10s %-10s %-10s %-10s %-6s %-9s %-8s %-9s %s\n", "node", "state", "memory", "available",
              "limit", "rss", "cores", "GFLOP/s", "GB/s", "measured", "stages");
  int unreachable = 0;
  for (const auto& e : endpoints) {
    try {
      const proto::NodeInfo i = connect_node(sys.get(), parse_endpoint(e), std::chrono::seconds(3)).info;
      std::printf("%-22s %-12s %-10s %-10s %-10s %-10s %-6d %-9.0f %-8.1f %-9s %d\n", e.c_str(), "reachable",
                  format_size(i.mem_total).c_str(), format_size(i.mem_available).c_str(),
                  i.memory_limit ? format_size(i.memory_limit).c_str() : "none", format_size(i.rss).c_str(), i.cores,
                  i.gflops, i.mem_gbps, speed_age(i.speed_age_s).c_str(), i.stages);
      if (i.cache_cap > 0)
        std::printf("    shard cache: %zu shard(s), %s free of %s\n", i.cached.size(), format_size(i.cache_free).c_str(),
                    format_size(i.cache_cap).c_str());
      for (const auto& st : i.stage_stats)
        std::printf("    %-32s %3d sessions  %7.1f tokens/s (last 10 s)  %10s KV  %llu steps in %llu passes\n",
                    st.describe.c_str(), st.sessions, st.recent_tokens_per_s, format_size(st.cache_bytes).c_str(),
                    static_cast<unsigned long long>(st.steps), static_cast<unsigned long long>(st.batches));
      if (static_cast<int32_t>(i.stage_stats.size()) < i.stages)
        std::printf("    (%d stage(s) busy, no statistics within 1 s)\n",
                    i.stages - static_cast<int32_t>(i.stage_stats.size()));
    } catch (const std::exception& ex) {
      ++unreachable;
      std::printf("%-22s %-12s %s\n", e.c_str(), "UNREACHABLE", ex.what());
    }
  }
  if (unreachable) throw std::runtime_error(std::to_string(unreachable) + " of " + std::to_string(endpoints.size()) + " nodes unreachable");
}

}  // namespace

void add_status_command(CLI::App& app) {
  auto o = std::make_shared<StatusOptions>();
  auto* cmd = app.add_subcommand("status", "show each node: reachable or not, memory, speed, and per hosted stage its sessions and recent tokens/s");
  auto* nodes = cmd->add_option("--nodes", o->nodes, "caf-node daemons host:port,...");
  auto* cluster = cmd->add_option("--cluster", o->cluster, "cluster file naming the nodes");
  nodes->excludes(cluster);
  o->discovery.add_to(cmd);
  cmd->callback([o, nodes, cluster] {
    run_reporting_errors([&] {
      if (!nodes->count() && !cluster->count() && !o->discovery.discover)
        throw std::invalid_argument("give --nodes, --cluster or --discover");
      run_status(*o);
    });
  });
}

}  // namespace troupe::cli
