#pragma once
// `troupe serve --discover`: a laptop that joins the cluster after the pipeline was deployed
// (it woke up, or was started later) is heard on the LAN and stands by to take a lost stage
// over (Pipeline::add_standby_nodes); /v1/status lists it under "standby_nodes".
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "framework/deploy/deploy.h"

namespace troupe::cli {

class JoiningNodes {
 public:
  // Listens on UDP `port` for nodes of the cluster of `key_path` ("" : keyless nodes) from a
  // thread of its own, until destroyed. A port that cannot be bound is logged, not thrown:
  // serving goes on without late joiners.
  JoiningNodes(const Pipeline& pipeline, const std::string& key_path, uint16_t port);
  ~JoiningNodes();
  JoiningNodes(const JoiningNodes&) = delete;
  JoiningNodes& operator=(const JoiningNodes&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace troupe::cli
