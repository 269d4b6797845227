#include "launch/troupe/joining_nodes.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "framework/cluster/discovery.h"

namespace troupe::cli {

JoiningNodes::JoiningNodes(const Pipeline& pipeline, const std::string& key_path, uint16_t port) {
  // The nodes the pipeline knows now (its stages, its standbys) are not news. Read here, on
  // the deploying thread: Pipeline::stages() must not be read while another thread generates.
  std::set<std::string> known;
  for (const auto& s : pipeline.stages()) known.insert(s.endpoint);
  for (const auto& n : pipeline.standby_nodes()) known.insert(n);
  const ClusterIdentity cluster = cluster_identity(key_path);
  thread_ = std::thread([this, &pipeline, known, cluster, port]() mutable {
    try {
      DiscoveryListener listener(cluster, port);
      while (!stop_.load()) {
        listener.listen(std::chrono::milliseconds(500));
        for (const auto& node : listener.nodes()) {
          if (!known.insert(node).second) continue;
          spdlog::info("node {} joined the cluster", node);
          pipeline.add_standby_nodes({node});
        }
      }
    } catch (const std::exception& e) {
      spdlog::warn("not listening for nodes that join later: {}", e.what());
    }
  });
}

JoiningNodes::~JoiningNodes() {
  stop_.store(true);
  thread_.join();
}

}  // namespace troupe::cli
