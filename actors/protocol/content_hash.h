#pragma once
// SHA-256 (OpenSSL's libcrypto, already linked for TLS), the content hash that names a stage
// shard everywhere: in a node's cache, in NodeInfo, in a transfer. Hex, lower case, 64 chars.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace troupe {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t n);
  std::string hex();  // finishes; the object is then spent

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// The hash of the first `bytes` bytes of the file (all of it when bytes is UINT64_MAX).
// Throws std::runtime_error naming the file when it cannot be read or is shorter.
std::string sha256_of_file(const std::string& path, uint64_t bytes = UINT64_MAX);

// Whether `text` looks like a hash made here (64 lower-case hex digits): what a node accepts
// as a file name in its cache.
bool is_sha256_hex(const std::string& text);

}  // namespace troupe
