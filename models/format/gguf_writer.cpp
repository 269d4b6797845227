#include "models/format/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace troupe {
namespace {

constexpr size_t kAlignment = 32;

class FileOut {
 public:
  explicit FileOut(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
    if (!f_) throw std::runtime_error(path + ": cannot create: " + std::strerror(errno));
  }
  ~FileOut() {
    if (f_) std::fclose(f_);
  }
  void bytes(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) throw std::runtime_error(path_ + ": write failed: " + std::strerror(errno));
    pos_ += n;
  }
  template <typename T>
  void pod(T v) { bytes(&v, sizeof v); }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(size_t alignment) {
    static const uint8_t zeros[64] = {};
    bytes(zeros, (alignment - pos_ % alignment) % alignment);
  }
  void close() {
    if (std::fclose(f_) != 0) {
      f_ = nullptr;
      throw std::runtime_error(path_ + ": close failed: " + std::strerror(errno));
    }
    f_ = nullptr;
  }

 private:
  std::string path_;
  FILE* f_;
  size_t pos_ = 0;
};

void write_scalar(FileOut& out, GgufType t, double number, int64_t integer) {
  switch (t) {
    case GgufType::u8: out.pod<uint8_t>(static_cast<uint8_t>(integer)); break;
    case GgufType::i8: out.pod<int8_t>(static_cast<int8_t>(integer)); break;
    case GgufType::u16: out.pod<uint16_t>(static_cast<uint16_t>(integer)); break;
    case GgufType::i16: out.pod<int16_t>(static_cast<int16_t>(integer)); break;
    case GgufType::u32: out.pod<uint32_t>(static_cast<uint32_t>(integer)); break;
    case GgufType::i32: out.pod<int32_t>(static_cast<int32_t>(integer)); break;
    case GgufType::u64: out.pod<uint64_t>(static_cast<uint64_t>(integer)); break;
    case GgufType::i64: out.pod<int64_t>(integer); break;
    case GgufType::f32: out.pod<float>(static_cast<float>(number)); break;
    case GgufType::f64: out.pod<double>(number); break;
    case GgufType::boolean: out.pod<uint8_t>(integer != 0); break;
    default: throw std::logic_error("not a scalar type");
  }
}

void write_value(FileOut& out, const GgufValue& v) {
  out.pod<uint32_t>(static_cast<uint32_t>(v.type));
  if (v.type == GgufType::string) {
    out.str(v.text);
  } else if (v.type == GgufType::array) {
    out.pod<uint32_t>(static_cast<uint32_t>(v.elem_type));
    if (v.elem_type == GgufType::string) {
      out.pod<uint64_t>(v.strings.size());
      for (const auto& s : v.strings) out.str(s);
    } else {
      out.pod<uint64_t>(v.numbers.size());
      for (double x : v.numbers) write_scalar(out, v.elem_type, x, static_cast<int64_t>(x));
    }
  } else {
    write_scalar(out, v.type, v.number, v.integer);
  }
}

GgufValue scalar(GgufType t, double number, int64_t integer) {
  GgufValue v;
  v.type = t;
  v.number = number;
  v.integer = integer;
  return v;
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : kv_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::set_string(const std::string& key, const std::string& s) {
  GgufValue v;
  v.type = GgufType::string;
  v.text = s;
  set(key, std::move(v));
}
void GgufWriter::set_u32(const std::string& key, uint32_t x) { set(key, scalar(GgufType::u32, x, x)); }
void GgufWriter::set_i64(const std::string& key, int64_t x) { set(key, scalar(GgufType::i64, double(x), x)); }
void GgufWriter::set_f32(const std::string& key, float x) { set(key, scalar(GgufType::f32, x, static_cast<int64_t>(x))); }
void GgufWriter::set_bool(const std::string& key, bool x) { set(key, scalar(GgufType::boolean, x, x)); }

void GgufWriter::set_strings(const std::string& key, std::vector<std::string> s) {
  GgufValue v;
  v.type = GgufType::array;
  v.elem_type = GgufType::string;
  v.strings = std::move(s);
  set(key, std::move(v));
}
void GgufWriter::set_f32s(const std::string& key, const std::vector<float>& x) {
  GgufValue v;
  v.type = GgufType::array;
  v.elem_type = GgufType::f32;
  v.numbers.assign(x.begin(), x.end());
  set(key, std::move(v));
}
void GgufWriter::set_i32s(const std::string& key, const std::vector<int32_t>& x) {
  GgufValue v;
  v.type = GgufType::array;
  v.elem_type = GgufType::i32;
  v.numbers.assign(x.begin(), x.end());
  set(key, std::move(v));
}

void GgufWriter::copy_metadata(const GgufFile& from) {
  for (const auto& [k, v] : from.metadata())
    if (k != "general.alignment") set(k, v);  // this writer always aligns to 32
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape, Producer produce) {
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  const size_t nbytes = dtype_row_bytes(type, shape.back()) * static_cast<size_t>(numel / shape.back());
  tensors_.push_back({name, type, shape, nbytes, std::move(produce)});
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape, size_t nbytes,
                            Producer produce) {
  tensors_.push_back({name, type, shape, nbytes, std::move(produce)});
}

void GgufWriter::add_tensor_copy(const std::string& name, DType type, const std::vector<int64_t>& shape,
                                 const uint8_t* data) {
  add_tensor(name, type, shape, [data](uint8_t* out, size_t n) { std::memcpy(out, data, n); });
}

void GgufWriter::write(const std::string& path) const {
  FileOut out(path);
  out.pod<uint32_t>(0x46554747);  // "GGUF"
  out.pod<uint32_t>(3);
  out.pod<uint64_t>(tensors_.size());
  out.pod<uint64_t>(kv_.size());
  for (const auto& [key, value] : kv_) {
    out.str(key);
    write_value(out, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    out.str(t.name);
    out.pod<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) out.pod<uint64_t>(static_cast<uint64_t>(*it));
    out.pod<uint32_t>(static_cast<uint32_t>(t.type));
    out.pod<uint64_t>(offset);
    offset += (t.nbytes + kAlignment - 1) / kAlignment * kAlignment;
  }
  out.pad_to(kAlignment);
  std::vector<uint8_t> buffer;
  for (const auto& t : tensors_) {
    buffer.assign(t.nbytes, 0);
    t.produce(buffer.data(), t.nbytes);
    out.bytes(buffer.data(), buffer.size());
    out.pad_to(kAlignment);
  }
  out.close();
}

}  // namespace troupe
