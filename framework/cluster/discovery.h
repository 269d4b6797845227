#pragma once
// Finding the nodes of a cluster on the LAN. A caf-node announces itself by UDP broadcast
// every second; `troupe ... --discover` listens for a couple of seconds and uses every node of
// its own cluster. An announcement is a hint, never a credential: it carries no secret, and
// the client then connects with the cluster key (TLS), which decides.
//
// The datagram (26 bytes, little-endian):
//   "TRPA" | u32 protocol version | 16 bytes cluster identity | u16 CAF port of the node
// The cluster identity is the first 16 bytes of SHA-256("troupe discovery\n" + the SHA-256
// fingerprint of the cluster key's certificate): the public half only, the same on every
// member, and nothing an eavesdropper could connect with. A node without a key announces the
// all-zero identity (and only clients without a key listen for it).
//
// Where announcements go: to the broadcast address of each up, broadcast-capable IPv4
// interface (the one whose address is --listen, or all of them for 0.0.0.0), from a socket
// bound to that interface; for a loopback --listen, to 127.0.0.1 (local tests). The node's
// address is the datagram's source address, with the announced port.
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

constexpr uint16_t kDiscoveryPort = 7946;
constexpr auto kAnnounceInterval = std::chrono::milliseconds(1000);
constexpr auto kAnnouncementTtl = std::chrono::milliseconds(3500);  // a node unheard this long has left

using ClusterIdentity = std::array<uint8_t, 16>;

// From the cluster key file (its certificate only); all zeros for "" (no key).
ClusterIdentity cluster_identity(const std::string& key_path);
std::string to_hex(const ClusterIdentity& id);

struct Announcement {
  uint32_t version = 0;
  ClusterIdentity cluster{};
  uint16_t port = 0;
};
std::string encode_announcement(const Announcement& a);
// Nothing unless exactly one well-formed announcement.
std::optional<Announcement> decode_announcement(const void* data, size_t n);

// Announces a node every `interval` from a thread of its own, until destroyed.
class Announcer {
 public:
  Announcer(std::string listen_address, uint16_t caf_port, ClusterIdentity cluster,
            uint16_t discovery_port = kDiscoveryPort, std::chrono::milliseconds interval = kAnnounceInterval);
  ~Announcer();
  Announcer(const Announcer&) = delete;
  Announcer& operator=(const Announcer&) = delete;
  // Where the last round went: "10.77.0.255 (eth0)", for the daemon's log.
  std::vector<std::string> targets() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Listens for announcements of one cluster (others are counted and ignored).
class DiscoveryListener {
 public:
  explicit DiscoveryListener(ClusterIdentity cluster, uint16_t port = kDiscoveryPort);  // throws naming the port
  ~DiscoveryListener();
  DiscoveryListener(const DiscoveryListener&) = delete;
  DiscoveryListener& operator=(const DiscoveryListener&) = delete;

  // Receives announcements for `duration`.
  void listen(std::chrono::milliseconds duration);
  // "ip:port" of every node of the cluster heard within `ttl`, sorted.
  std::vector<std::string> nodes(std::chrono::milliseconds ttl = kAnnouncementTtl) const;
  size_t ignored() const { return ignored_; }  // announcements of other clusters or versions

 private:
  int fd_ = -1;
  ClusterIdentity cluster_{};
  std::map<std::string, std::chrono::steady_clock::time_point> seen_;
  size_t ignored_ = 0;
};

// Listens `duration` and returns the nodes of the cluster of `key_path` ("" : keyless nodes).
std::vector<std::string> discover_nodes(const std::string& key_path,
                                        std::chrono::milliseconds duration = std::chrono::milliseconds(2000),
                                        uint16_t port = kDiscoveryPort);

}  // namespace troupe
