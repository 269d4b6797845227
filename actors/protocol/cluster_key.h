#pragma once
// The cluster key: the one secret that makes a set of laptops a troupe cluster.
//
// It is a single PEM file holding an EC P-256 private key and a self-signed X.509 certificate
// made from it (CA:TRUE, for both TLS client and server use). Every process of the cluster
// (caf-node daemons and clients) loads the same file as its certificate, its private key and
// its only trusted CA. CAF's OpenSSL module then requires, on every connection and in both
// directions, a certificate that chains to that CA (SSL_VERIFY_PEER |
// SSL_VERIFY_FAIL_IF_NO_PEER_CERT), and TLS makes each side prove it holds the private key.
// So a peer is accepted exactly when it holds the file: no unauthenticated byte reaches CAF's
// BASP parser, and everything after the handshake is encrypted and integrity-checked.
// Node certificates carry no host names: membership, not host identity, is what is checked
// (laptops change addresses). Revoking a laptop means making a new key for the others.
#include <chrono>
#include <cstdint>
#include <string>

namespace troupe {

// Environment variable naming the cluster key when no --cluster-key is given.
constexpr const char* kClusterKeyEnv = "TROUPE_CLUSTER_KEY";

// Writes a new cluster key to `path` (created with mode 0600; an existing file is never
// overwritten). Throws std::runtime_error naming the file.
void create_cluster_key(const std::string& path);

// What a cluster key file identifies, for logs: "troupe cluster 3f2a…" and the SHA-256
// fingerprint of its certificate (the same on every member).
struct ClusterKeyInfo {
  std::string subject;
  std::string fingerprint;
};

// Checks `path` before a process relies on it: readable, not readable by group or others
// (as ssh does for private keys), holding a certificate and the private key that belongs to
// it. Throws std::runtime_error naming the file and what is wrong.
ClusterKeyInfo check_cluster_key(const std::string& path);

// The cluster key to use: `flag` if given, else $TROUPE_CLUSTER_KEY, else
// ~/.config/troupe/cluster.pem if that file exists; empty when there is none.
std::string find_cluster_key(const std::string& flag);

// The default place `troupe keys init` writes to and find_cluster_key looks last.
std::string default_cluster_key_path();

// Why a TLS handshake with the cluster key `key_path` to host:port fails, or "" when it
// succeeds within `timeout`. Used to explain a refused connection to the user: a node with
// another key, or one that does not speak TLS at all.
std::string tls_handshake_failure(const std::string& host, uint16_t port, const std::string& key_path,
                                  std::chrono::milliseconds timeout);

// Whether `address` (a --listen value) is a loopback address: 127.0.0.0/8, ::1, "localhost".
bool is_loopback_address(const std::string& address);

}  // namespace troupe
