#include "actors/protocol/wire_tensor.h"

#include <algorithm>
#include <cereal/archives/binary.hpp>
#include <cstring>
#include <istream>
#include <ostream>
#include <sstream>
#include <streambuf>

namespace troupe {

namespace {

constexpr uint32_t kMagic = 0x57505254;  // "TRPW" in little-endian byte order
constexpr size_t kMaxRank = 8;

// Reads straight from the message bytes and knows how many are left, so a length field
// can be checked before anything is allocated for it.
class ByteSource : public std::streambuf {
 public:
  explicit ByteSource(const std::string& bytes) {
    char* begin = const_cast<char*>(bytes.data());
    setg(begin, begin, begin + bytes.size());
  }
  size_t remaining() const { return static_cast<size_t>(egptr() - gptr()); }
};

template <class T>
void save_pod_vector(cereal::BinaryOutputArchive& ar, const std::vector<T>& v) {
  ar(static_cast<uint64_t>(v.size()));
  if (!v.empty()) ar(cereal::binary_data(v.data(), v.size() * sizeof(T)));
}

template <class T>
void load_pod_vector(cereal::BinaryInputArchive& ar, const ByteSource& src, std::vector<T>& v, const char* what) {
  uint64_t n = 0;
  ar(n);
  if (n > src.remaining() / sizeof(T))
    throw WireError("wire message: " + std::string(what) + " claims " + std::to_string(n) + " elements but only " +
                    std::to_string(src.remaining()) + " bytes are left (truncated or corrupt message)");
  v.resize(n);
  if (n) ar(cereal::binary_data(v.data(), n * sizeof(T)));
}

void save_bytes(cereal::BinaryOutputArchive& ar, const std::string& s) {
  ar(static_cast<uint64_t>(s.size()));
  if (!s.empty()) ar(cereal::binary_data(s.data(), s.size()));
}

void load_bytes(cereal::BinaryInputArchive& ar, const ByteSource& src, std::string& s, const char* what) {
  uint64_t n = 0;
  ar(n);
  if (n > src.remaining())
    throw WireError("wire message: " + std::string(what) + " claims " + std::to_string(n) + " bytes but only " +
                    std::to_string(src.remaining()) + " are left (truncated or corrupt message)");
  s.resize(n);
  if (n) ar(cereal::binary_data(&s[0], n));
}


}  // namespace

std::string to_string(WireDType t) {
  switch (t) {
    case WireDType::f32: return "f32";
    case WireDType::f16: return "f16";
    case WireDType::bf16: return "bf16";
    case WireDType::i32: return "i32";
  }
  return "wire-dtype(" + std::to_string(static_cast<int>(t)) + ")";
}

WireDType wire_dtype_from_string(const std::string& name) {
  if (name == "f32" || name == "fp32" || name == "float32") return WireDType::f32;
  if (name == "f16" || name == "fp16" || name == "float16") return WireDType::f16;
  if (name == "bf16" || name == "bfloat16") return WireDType::bf16;
  throw std::invalid_argument("unknown wire dtype '" + name + "' (expected f32, f16 or bf16)");
}

size_t wire_dtype_size(WireDType t) {
  switch (t) {
    case WireDType::f32: return 4;
    case WireDType::f16: return 2;
    case WireDType::bf16: return 2;
    case WireDType::i32: return 4;
  }
  return 0;
}

void check_wire_tensor(const WireTensor& w) {
  if (static_cast<uint8_t>(w.dtype) > static_cast<uint8_t>(WireDType::i32))
    throw WireError("wire message: unknown element type code " + std::to_string(static_cast<int>(w.dtype)));
  if (w.shape.size() > kMaxRank)
    throw WireError("wire message: tensor of rank " + std::to_string(w.shape.size()) + " (at most " +
                    std::to_string(kMaxRank) + " expected)");
  // The product is checked as it grows: [2^62, 4] would otherwise wrap to 0 elements and
  // pass with an empty payload. An empty dimension counts as 1 in the bound, because the
  // other dimensions still size the strides: [0, 2^62, 2^62] has no elements but overflows them.
  uint64_t numel = 1, extent = 1;
  for (int64_t d : w.shape) {
    if (d < 0) throw WireError("wire message: negative dimension " + std::to_string(d) + " in tensor shape");
    const uint64_t u = static_cast<uint64_t>(d);
    if (__builtin_mul_overflow(extent, std::max<uint64_t>(u, 1), &extent) || extent > (uint64_t{1} << 40))
      throw WireError("wire message: tensor shape spans more than 2^40 elements");
    numel *= u;
  }
  const size_t expected = static_cast<size_t>(numel) * wire_dtype_size(w.dtype);
  if (w.data.size() != expected)
    throw WireError("wire message: tensor of " + std::to_string(numel) + " " + to_string(w.dtype) +
                    " elements needs " + std::to_string(expected) + " bytes, message has " +
                    std::to_string(w.data.size()));
}

WireTensor tokens_to_wire(const std::vector<int32_t>& ids) {
  WireTensor w;
  w.dtype = WireDType::i32;
  w.shape = {static_cast<int64_t>(ids.size())};
  w.data.assign(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int32_t));
  return w;
}

std::string encode_tensor_message(const TensorMessage& m) {
  std::ostringstream out(std::ios::binary);
  {
    cereal::BinaryOutputArchive ar(out);
    ar(kMagic, kWireFormatVersion, m.session_id, m.pos);
    ar(static_cast<uint8_t>(m.tensor.dtype));
    save_pod_vector(ar, m.tensor.shape);
    save_bytes(ar, m.tensor.data);
    visit_fields(m.sampling.options, [&](const auto&... xs) { ar(xs...); });
    save_pod_vector(ar, m.sampling.recent);
    ar(m.sampling.step, static_cast<uint8_t>(m.sampling.want_logits));
    save_pod_vector(ar, m.sampling.draft);
  }
  return out.str();
}

TensorMessage decode_tensor_message(const std::string& bytes) {
  if (bytes.size() < 8)
    throw WireError("wire message: " + std::to_string(bytes.size()) +
                    " bytes is too short for a troupe tensor message (truncated?)");
  ByteSource src(bytes);
  std::istream in(&src);
  TensorMessage m;
  try {
    cereal::BinaryInputArchive ar(in);
    uint32_t magic = 0, version = 0;
    ar(magic, version);
    if (magic != kMagic) throw WireError("wire message: not a troupe tensor message (bad magic)");
    if (version != kWireFormatVersion)
      throw WireError("wire message: format version " + std::to_string(version) + ", this build reads version " +
                      std::to_string(kWireFormatVersion) + " (peers run different troupe versions)");
    ar(m.session_id, m.pos);
    uint8_t dtype = 0;
    ar(dtype);
    m.tensor.dtype = static_cast<WireDType>(dtype);
    load_pod_vector(ar, src, m.tensor.shape, "tensor shape");
    if (m.tensor.shape.size() > kMaxRank)
      throw WireError("wire message: tensor of rank " + std::to_string(m.tensor.shape.size()) + " (at most " +
                      std::to_string(kMaxRank) + " expected)");
    load_bytes(ar, src, m.tensor.data, "tensor data");
    visit_fields(m.sampling.options, [&](auto&... xs) { ar(xs...); });
    load_pod_vector(ar, src, m.sampling.recent, "recent tokens");
    uint8_t want_logits = 0;
    ar(m.sampling.step, want_logits);
    m.sampling.want_logits = want_logits != 0;
    load_pod_vector(ar, src, m.sampling.draft, "drafted tokens");
  } catch (const cereal::Exception& e) {
    throw WireError("wire message: truncated or corrupt (" + std::string(e.what()) + ")");
  }
  if (src.remaining() != 0)
    throw WireError("wire message: " + std::to_string(src.remaining()) + " unexpected trailing bytes");
  if (m.pos < 0) throw WireError("wire message: negative position " + std::to_string(m.pos));
  check_wire_tensor(m.tensor);
  return m;
}

}  // namespace troupe
