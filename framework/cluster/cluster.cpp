#include "framework/cluster/cluster.h"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "actors/protocol/actor_system.h"
#include "actors/protocol/cluster_key.h"

namespace troupe {

using Clock = std::chrono::steady_clock;

std::string Endpoint::str() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Endpoint parse_endpoint(const std::string& text) {
  Endpoint ep;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw std::invalid_argument("bad node address '" + text + "' (expected [v6addr]:port)");
    ep.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0)
      throw std::invalid_argument("bad node address '" + text + "' (expected host:port)");
    ep.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  char* end = nullptr;
  const long value = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || value < 1 || value > 65535)
    throw std::invalid_argument("bad port in node address '" + text + "'");
  ep.port = static_cast<uint16_t>(value);
  return ep;
}

void probe_tcp(const Endpoint& ep, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(ep.port);
  if (int rc = getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw NodeUnreachable("cannot reach node " + ep.str() + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addrs(found, freeaddrinfo);
  std::string reason = "no address";
  for (addrinfo* a = addrs.get(); a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      reason = std::strerror(errno);
      continue;
    }
    int err = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      const int ready = poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0)));
      if (ready == 0) {
        err = ETIMEDOUT;
      } else {
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
    close(fd);
    if (err == 0) return;
    reason = err == ETIMEDOUT ? "no answer within " + std::to_string(timeout.count()) + " ms" : std::strerror(err);
    if (Clock::now() >= deadline) break;
  }
  throw NodeUnreachable("cannot reach node " + ep.str() + ": " + reason);
}

namespace {

// A connection CAF could not complete, said in terms of the cluster key: with a key, what a
// TLS handshake of our own tells (a node with another key, or one without TLS); without one,
// that the node may want a key.
std::string explain_refusal(caf::actor_system& sys, const Endpoint& ep, const std::string& failure) {
  if (!uses_tls(sys))
    return failure + " (if the node runs with --cluster-key, give this client the same key file: --cluster-key FILE or $" +
           kClusterKeyEnv + ")";
  const std::string tls = tls_handshake_failure(ep.host, ep.port, sys.config().openssl_cafile, std::chrono::seconds(3));
  return tls.empty() ? failure : tls;
}

}  // namespace

// The node actors this process has reached, by actor system and endpoint. CAF's plain
// middleman reuses a connection when asked to connect to the same host:port again; its OpenSSL
// one (0.17.6) opens a second TLS connection to the same node, and the BASP broker then drops
// the first one (every stage of a pipeline on it goes down). So a process connects to a node
// once and reuses the actor while it answers.
static std::mutex reached_mutex;
static std::map<std::pair<std::string, std::string>, proto::node_actor> reached;  // (this node id, endpoint)

ConnectedNode connect_node(caf::actor_system& sys, const Endpoint& ep, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const auto key = std::make_pair(caf::to_string(sys.node()), ep.str());
  proto::node_actor known;
  {
    std::lock_guard<std::mutex> lock(reached_mutex);
    if (auto it = reached.find(key); it != reached.end()) known = it->second;
  }
  if (known) {
    ConnectedNode node{known, {}};
    bool answered = false;
    caf::scoped_actor self{sys};
    // Half the time at most: a connection that went bad leaves the other half to reconnect.
    self->request(known, timeout / 2, proto::info_atom::value)
      .receive([&](proto::NodeInfo& info) { node.info = std::move(info), answered = true; }, [](caf::error&) {});
    if (answered) return node;
    std::lock_guard<std::mutex> lock(reached_mutex);
    reached.erase(key);  // gone (or restarted): connect anew
  }
  probe_tcp(ep, timeout);
  auto left = [&] {
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  };
  ConnectedNode node;
  std::string failure;
  caf::scoped_actor self{sys};
  // The middleman's own connect, but awaited for a bounded time (remote_actor waits forever).
  self->request(connection_manager(sys), left(), caf::connect_atom::value, ep.host, ep.port)
    .receive(
      [&](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
        if (ptr == nullptr)
          failure = "no troupe node is published there";
        else
          // The one place a node's handle arrives untyped (CAF's middleman hands out what a
          // port publishes): it is a node_actor, and hello below checks it speaks this version.
          node.actor = caf::actor_cast<proto::node_actor>(std::move(ptr));
      },
      [&](caf::error& err) {
        failure = err == caf::sec::request_timeout ? "no handshake within " + std::to_string(timeout.count()) + " ms"
                                                   : proto::error_text(err);
      });
  if (!failure.empty()) throw NodeUnreachable("cannot connect to node " + ep.str() + ": " + explain_refusal(sys, ep, failure));
  auto answer_failure = [&](caf::error& err) {
    failure = err == caf::sec::request_timeout ? "no answer within " + std::to_string(timeout.count()) + " ms"
                                               : proto::error_text(err);
  };
  // The version handshake comes first: plain integers, which every version decodes alike.
  uint32_t node_version = 0;
  self->request(node.actor, left(), proto::hello_atom::value, proto::kProtocolVersion)
    .receive([&](proto::hello_atom, uint32_t version) { node_version = version; }, answer_failure);
  if (!failure.empty()) throw NodeUnreachable("node " + ep.str() + " does not answer: " + failure);
  if (node_version != proto::kProtocolVersion)
    throw NodeUnreachable(proto::version_mismatch_text("node " + ep.str(), node_version, "this client"));
  self->request(node.actor, left(), proto::info_atom::value)
    .receive([&](proto::NodeInfo& info) { node.info = std::move(info); }, answer_failure);
  if (!failure.empty()) throw NodeUnreachable("node " + ep.str() + " does not answer: " + failure);
  if (uses_tls(sys)) {
    std::lock_guard<std::mutex> lock(reached_mutex);
    reached[key] = node.actor;
  }
  return node;
}

NodeCapacity capacity_of(const proto::NodeInfo& info) {
  NodeCapacity c;
  c.name = info.node;
  c.memory_bytes = info.memory_limit > 0 ? std::min(info.mem_available, info.memory_limit) : info.mem_available;
  c.gflops = info.gflops;
  c.mem_gbps = info.mem_gbps;
  c.disk_bytes = info.cache_cap;  // a node with a shard cache receives its shard there
  c.speed_spread = info.speed_spread;
  return c;
}

std::vector<NodeCapacity> query_node_capacities(caf::actor_system& sys, const std::vector<std::string>& endpoints,
                                                std::chrono::milliseconds timeout) {
  std::vector<NodeCapacity> nodes;
  for (const auto& e : endpoints) {
    NodeCapacity c = capacity_of(connect_node(sys, parse_endpoint(e), timeout).info);
    c.name = e;  // as the user named it: the plan's node list feeds --nodes again
    nodes.push_back(c);
  }
  even_out_measured_speeds(nodes);  // identical machines probed at different moments: one plan
  return nodes;
}

}  // namespace troupe
