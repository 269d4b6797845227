#include "framework/cluster/discovery.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "actors/protocol/cluster_key.h"
#include "actors/protocol/content_hash.h"
#include "actors/protocol/messages.h"

namespace troupe {

namespace {

constexpr char kMagic[4] = {'T', 'R', 'P', 'A'};
constexpr size_t kDatagramBytes = 4 + 4 + 16 + 2;

uint8_t hex_digit(char c) { return static_cast<uint8_t>(c <= '9' ? c - '0' : c - 'a' + 10); }

struct Target {
  sockaddr_in source{};     // bound to the interface's address
  sockaddr_in broadcast{};  // sent to
  std::string label;
};

// Where announcements go now (interfaces come and go with Wi-Fi).
std::vector<Target> announce_targets(const std::string& listen, uint16_t port) {
  std::vector<Target> out;
  in_addr wanted{};
  const bool any = listen == "0.0.0.0" || listen.empty();
  if (!any && inet_pton(AF_INET, listen.c_str(), &wanted) != 1) return out;  // a host name or IPv6: not announced
  if (!any && (ntohl(wanted.s_addr) >> 24) == 127) {
    Target t;
    t.source.sin_family = AF_INET;
    t.source.sin_addr = wanted;
    t.broadcast.sin_family = AF_INET;
    t.broadcast.sin_port = htons(port);
    t.broadcast.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t.label = "127.0.0.1 (loopback)";
    out.push_back(t);
    return out;
  }
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return out;
  for (ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if (!(i->ifa_flags & IFF_UP) || !(i->ifa_flags & IFF_BROADCAST) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    const auto* addr = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (!any && addr->sin_addr.s_addr != wanted.s_addr) continue;
    Target t;
    t.source = *addr;
    t.source.sin_port = 0;
    if (i->ifa_broadaddr != nullptr) t.broadcast = *reinterpret_cast<const sockaddr_in*>(i->ifa_broadaddr);
    // No brd configured (`ip addr add A/24` without `brd +`): glibc reports 0 or the address
    // itself; the subnet's broadcast is address | ~netmask.
    const bool no_brd = t.broadcast.sin_addr.s_addr == 0 || t.broadcast.sin_addr.s_addr == addr->sin_addr.s_addr;
    if (no_brd && i->ifa_netmask != nullptr) {
      const auto* mask = reinterpret_cast<const sockaddr_in*>(i->ifa_netmask);
      t.broadcast.sin_family = AF_INET;
      t.broadcast.sin_addr.s_addr = addr->sin_addr.s_addr | ~mask->sin_addr.s_addr;
    }
    if (t.broadcast.sin_addr.s_addr == addr->sin_addr.s_addr) continue;  // a /32: no one else on that link
    t.broadcast.sin_port = htons(port);
    char text[INET_ADDRSTRLEN] = {0};
    inet_ntop(AF_INET, &t.broadcast.sin_addr, text, sizeof text);
    t.label = std::string(text) + " (" + i->ifa_name + ")";
    out.push_back(t);
  }
  freeifaddrs(ifs);
  return out;
}

}  // namespace

ClusterIdentity cluster_identity(const std::string& key_path) {
  ClusterIdentity id{};
  if (key_path.empty()) return id;
  const std::string fingerprint = check_cluster_key(key_path).fingerprint;
  Sha256 h;
  const std::string text = "troupe discovery\n" + fingerprint;
  h.update(text.data(), text.size());
  const std::string hex = h.hex();
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
  return id;
}

std::string to_hex(const ClusterIdentity& id) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : id) s += digits[b >> 4], s += digits[b & 15];
  return s;
}

std::string encode_announcement(const Announcement& a) {
  std::string d(kDatagramBytes, '\0');
  std::memcpy(&d[0], kMagic, 4);
  for (int i = 0; i < 4; ++i) d[4 + i] = static_cast<char>((a.version >> (8 * i)) & 0xff);
  std::memcpy(&d[8], a.cluster.data(), 16);
  d[24] = static_cast<char>(a.port & 0xff);
  d[25] = static_cast<char>(a.port >> 8);
  return d;
}

std::optional<Announcement> decode_announcement(const void* data, size_t n) {
  if (n != kDatagramBytes) return std::nullopt;
  const auto* b = static_cast<const uint8_t*>(data);
  if (std::memcmp(b, kMagic, 4) != 0) return std::nullopt;
  Announcement a;
  for (int i = 0; i < 4; ++i) a.version |= static_cast<uint32_t>(b[4 + i]) << (8 * i);
  std::memcpy(a.cluster.data(), b + 8, 16);
  a.port = static_cast<uint16_t>(b[24] | (b[25] << 8));
  if (a.port == 0) return std::nullopt;
  return a;
}

struct Announcer::State {
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
  std::vector<std::string> targets;
  std::thread thread;
};

Announcer::Announcer(std::string listen_address, uint16_t caf_port, ClusterIdentity cluster, uint16_t discovery_port,
                     std::chrono::milliseconds interval)
    : state_(std::make_shared<State>()) {
  const std::string datagram = encode_announcement({proto::kProtocolVersion, cluster, caf_port});
  state_->thread = std::thread([s = state_, listen_address, discovery_port, interval, datagram] {
    std::unique_lock<std::mutex> lock(s->mutex);
    while (!s->stop) {
      std::vector<std::string> sent;
      for (const Target& t : announce_targets(listen_address, discovery_port)) {
        const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        const int on = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on);
        // From the interface's own address, so the datagram leaves through that interface only.
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&t.source), sizeof t.source) == 0 &&
            ::sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&t.broadcast),
                     sizeof t.broadcast) == static_cast<ssize_t>(datagram.size()))
          sent.push_back(t.label);
        ::close(fd);
      }
      s->targets = sent;
      s->wake.wait_for(lock, interval, [&] { return s->stop; });
    }
  });
}

Announcer::~Announcer() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
  }
  state_->wake.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
}

std::vector<std::string> Announcer::targets() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->targets;
}

DiscoveryListener::DiscoveryListener(ClusterIdentity cluster, uint16_t port) : cluster_(cluster) {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("discovery: cannot open a UDP socket");
  const int on = 1;
  // Several listeners on one machine (a client and a server, tests) each get every broadcast.
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd_);
    throw std::runtime_error("discovery: cannot listen on UDP port " + std::to_string(port) + ": " + why);
  }
}

DiscoveryListener::~DiscoveryListener() {
  if (fd_ >= 0) ::close(fd_);
}

void DiscoveryListener::listen(std::chrono::milliseconds duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[512];
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n <= 0) continue;
    const auto a = decode_announcement(buf, static_cast<size_t>(n));
    if (!a || a->version != proto::kProtocolVersion || a->cluster != cluster_) {
      ++ignored_;
      continue;
    }
    char text[INET_ADDRSTRLEN] = {0};
    inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
    seen_[std::string(text) + ":" + std::to_string(a->port)] = std::chrono::steady_clock::now();
  }
}

std::vector<std::string> DiscoveryListener::nodes(std::chrono::milliseconds ttl) const {
  std::vector<std::string> out;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [endpoint, when] : seen_)
    if (now - when <= ttl) out.push_back(endpoint);
  return out;
}

std::vector<std::string> discover_nodes(const std::string& key_path, std::chrono::milliseconds duration,
                                        uint16_t port) {
  DiscoveryListener listener(cluster_identity(key_path), port);
  listener.listen(duration);
  const auto found = listener.nodes();
  spdlog::info("discovery: {} node(s) of this cluster announced themselves on UDP port {} within {} ms{}", found.size(),
               port, duration.count(),
               listener.ignored() ? " (" + std::to_string(listener.ignored()) + " announcement(s) of other clusters ignored)"
                                  : std::string());
  return found;
}

}  // namespace troupe
