#include "actors/protocol/cluster_key.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>

namespace troupe {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PKeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL, SSL_free>>;

// The most recent OpenSSL errors as text (and clears the queue).
std::string openssl_errors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    text += (text.empty() ? "" : "; ") + std::string(buf);
  }
  return text.empty() ? "no OpenSSL error recorded" : text;
}

std::runtime_error key_error(const std::string& path, const std::string& what) {
  return std::runtime_error("cluster key " + path + ": " + what);
}

std::string hex(const unsigned char* bytes, size_t n, const char* separator = "") {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += separator;
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

void add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) {
    X509_EXTENSION_free(ext);
    throw std::runtime_error("cannot add certificate extension " + std::string(value) + ": " + openssl_errors());
  }
  X509_EXTENSION_free(ext);
}

std::string pem_of(const std::function<int(BIO*)>& write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) throw std::runtime_error("cannot encode PEM: " + openssl_errors());
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// A connected TCP socket to host:port within `deadline`, or -1 with `reason` set.
int connect_with_deadline(const std::string& host, uint16_t port, Clock::time_point deadline, std::string& reason) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    reason = gai_strerror(rc);
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addrs(found, freeaddrinfo);
  for (addrinfo* a = addrs.get(); a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int err = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0))) == 0) {
        err = ETIMEDOUT;
      } else {
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
    if (err == 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // blocking, bounded by SO_*TIMEO below
      const auto left = std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      timeval tv{static_cast<time_t>(left / 1000), static_cast<suseconds_t>((left % 1000) * 1000)};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      return fd;
    }
    reason = std::strerror(err);
    close(fd);
  }
  if (reason.empty()) reason = "no address";
  return -1;
}

}  // namespace

void create_cluster_key(const std::string& path) {
  PKeyPtr key(EVP_EC_gen("P-256"));
  if (!key) throw key_error(path, "cannot generate an EC P-256 key: " + openssl_errors());
  X509Ptr cert(X509_new());
  unsigned char id[16];
  if (!cert || RAND_bytes(id, sizeof(id)) != 1) throw key_error(path, "cannot make a certificate: " + openssl_errors());
  id[0] &= 0x7f;  // a positive serial number
  X509_set_version(cert.get(), 2);  // v3, for the extensions
  BIGNUM* serial = BN_bin2bn(id, sizeof(id), nullptr);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get()));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // tolerate clocks an hour apart
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 20L * 365 * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  const std::string subject = "troupe cluster " + hex(id, 8);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(subject.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), name);
  // Its own CA (so the same file is every member's trust anchor) and a TLS end-entity for
  // both directions: a daemon accepts and connects (peering), a client connects.
  add_extension(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign");
  add_extension(cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  add_extension(cert.get(), NID_subject_key_identifier, "hash");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0)
    throw key_error(path, "cannot sign the certificate: " + openssl_errors());

  const std::string pem =
    "# troupe cluster key: every caf-node and client of one cluster holds this same file.\n"
    "# Anyone holding it can join the cluster and read its traffic; keep it mode 0600.\n" +
    pem_of([&](BIO* b) { return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr); }) +
    pem_of([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); });

  std::error_code ec;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::exists(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec) throw key_error(path, "cannot create directory " + parent.string() + ": " + ec.message());
    fs::permissions(parent, fs::perms::owner_all, ec);
  }
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw key_error(path, errno == EEXIST ? "already exists (a cluster key is never overwritten; remove it first)"
                                          : std::string("cannot create: ") + std::strerror(errno));
  fchmod(fd, 0600);  // whatever the umask
  size_t written = 0;
  while (written < pem.size()) {
    const ssize_t n = write(fd, pem.data() + written, pem.size() - written);
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      close(fd);
      unlink(path.c_str());
      throw key_error(path, "cannot write: " + why);
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) throw key_error(path, std::string("cannot write: ") + std::strerror(errno));
}

ClusterKeyInfo check_cluster_key(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) throw key_error(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw key_error(path, "not a regular file");
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw key_error(path, "is readable by others (mode " + std::string(mode) + "); run: chmod 600 " + path);
  }
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) throw key_error(path, "cannot read: " + openssl_errors());
  PKeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) throw key_error(path, "holds no PEM private key (make one with `troupe keys init`)");
  BIO_reset(bio.get());
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) throw key_error(path, "holds no PEM certificate (make one with `troupe keys init`)");
  if (X509_check_private_key(cert.get(), key.get()) != 1)
    throw key_error(path, "its private key does not belong to its certificate");
  if (X509_check_issued(cert.get(), cert.get()) != X509_V_OK || X509_check_ca(cert.get()) == 0)
    throw key_error(path, "its certificate is not a self-signed CA certificate (make one with `troupe keys init`)");
  ClusterKeyInfo info;
  char cn[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn) - 1);
  info.subject = cn;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert.get(), EVP_sha256(), digest, &n);
  info.fingerprint = hex(digest, n, ":");
  return info;
}

std::string default_cluster_key_path() {
  const char* config = std::getenv("XDG_CONFIG_HOME");
  if (config != nullptr && config[0] == '/') return std::string(config) + "/troupe/cluster.pem";
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.config/troupe/cluster.pem";
}

std::string find_cluster_key(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv(kClusterKeyEnv); env != nullptr && env[0] != '\0') return env;
  std::error_code ec;
  const std::string fallback = default_cluster_key_path();
  return fs::exists(fallback, ec) ? fallback : std::string();
}

std::string tls_handshake_failure(const std::string& host, uint16_t port, const std::string& key_path,
                                  std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return "cannot create a TLS context: " + openssl_errors();
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), key_path.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), key_path.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(ctx.get(), key_path.c_str(), nullptr) != 1)
    return "cannot load cluster key " + key_path + ": " + openssl_errors();
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  std::string reason;
  const int fd = connect_with_deadline(host, port, deadline, reason);
  if (fd < 0) return reason;
  SslPtr ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  ERR_clear_error();
  std::string failure;
  if (SSL_connect(ssl.get()) != 1) {
    const long verify = SSL_get_verify_result(ssl.get());
    const std::string errors = openssl_errors();
    if (verify != X509_V_OK)
      failure = "its certificate is not from this cluster key (" + std::string(X509_verify_cert_error_string(verify)) +
                "): the node holds a different cluster key";
    else if (errors.find("wrong version number") != std::string::npos ||
             errors.find("packet length too long") != std::string::npos ||
             errors.find("record layer failure") != std::string::npos)
      failure = "it does not speak TLS (started without --cluster-key?)";
    else
      failure = "TLS handshake failed: " + errors;
  } else {
    // TLS 1.3 checks the client's certificate after the client has finished: a node that
    // refuses this client's key says so with an alert instead of the first bytes of BASP
    // (a daemon speaks first).
    char byte = 0;
    if (SSL_read(ssl.get(), &byte, 1) != 1) {
      const std::string errors = openssl_errors();
      failure = errors.find("alert") != std::string::npos
                  ? "the node refused this client's certificate (it holds a different cluster key): " + errors
                  : "the node closed the connection after the TLS handshake: " + errors;
    }
  }
  close(fd);
  return failure;
}

bool is_loopback_address(const std::string& address) {
  if (address == "localhost" || address == "::1" || address == "[::1]") return true;
  in_addr v4{};
  return inet_pton(AF_INET, address.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

}  // namespace troupe
