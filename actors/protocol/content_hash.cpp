#include "actors/protocol/content_hash.h"

#include <openssl/evp.h>

#include <algorithm>

#include <cstdio>
#include <stdexcept>
#include <vector>

namespace troupe {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256: OpenSSL could not start a digest");
}

Sha256::~Sha256() {
  if (ctx_ && ctx_->md) EVP_MD_CTX_free(ctx_->md);
}

void Sha256::update(const void* data, size_t n) {
  if (n > 0 && EVP_DigestUpdate(ctx_->md, data, n) != 1) throw std::runtime_error("SHA-256: digest update failed");
}

std::string Sha256::hex() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, out, &len) != 1) throw std::runtime_error("SHA-256: digest final failed");
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < len; ++i) {
    s += digits[out[i] >> 4];
    s += digits[out[i] & 15];
  }
  return s;
}

std::string sha256_of_file(const std::string& path, uint64_t bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error(path + ": cannot open to hash it");
  Sha256 h;
  std::vector<char> buf(size_t(1) << 20);
  uint64_t left = bytes;
  while (left > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
    const size_t got = std::fread(buf.data(), 1, want, f);
    if (got == 0) break;
    h.update(buf.data(), got);
    left -= got;
  }
  const bool error = std::ferror(f) != 0;
  std::fclose(f);
  if (error) throw std::runtime_error(path + ": read error while hashing");
  if (bytes != UINT64_MAX && left > 0)
    throw std::runtime_error(path + ": shorter than the " + std::to_string(bytes) + " bytes to hash");
  return h.hex();
}

bool is_sha256_hex(const std::string& text) {
  if (text.size() != 64) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace troupe
