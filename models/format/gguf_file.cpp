#include "models/format/gguf_file.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "models/format/checkpoint.h"

namespace troupe {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxStringBytes = 1u << 26;
constexpr uint64_t kMaxArrayElems = 1u << 28;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kMaxDim = 1ull << 40;
constexpr uint64_t kMaxElems = 1ull << 48;

// Bounds-checked little-endian reader over the mapped bytes.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* data, size_t size) : path_(path), data_(data), size_(size) {}

  template <typename T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string() {
    const auto n = read<uint64_t>();
    if (n > kMaxStringBytes) fail("string of " + std::to_string(n) + " bytes at offset " + std::to_string(pos_));
    need(n);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  [[noreturn]] void fail(const std::string& what) const { throw CheckpointError(path_ + ": corrupt GGUF: " + what); }

 private:
  void need(uint64_t n) const {
    if (n > size_ - pos_)
      throw CheckpointError(path_ + ": truncated GGUF: needs " + std::to_string(n) + " more bytes at offset " +
                            std::to_string(pos_) + " of " + std::to_string(size_));
  }
  const std::string& path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Fewest bytes one value of this type takes in the file (a string: its 8-byte length).
uint64_t min_encoded_bytes(GgufType t) {
  switch (t) {
    case GgufType::u8: case GgufType::i8: case GgufType::boolean: return 1;
    case GgufType::u16: case GgufType::i16: return 2;
    case GgufType::u32: case GgufType::i32: case GgufType::f32: return 4;
    default: return 8;
  }
}

// A float's integer part, clamped to int64 (NaN -> 0): converting an out-of-range float is undefined.
int64_t saturating_int(double v) {
  if (!(v == v)) return 0;
  if (v >= 9.2e18) return INT64_MAX;
  if (v <= -9.2e18) return INT64_MIN;
  return static_cast<int64_t>(v);
}

double read_scalar(Cursor& c, GgufType t, int64_t* integer) {
  switch (t) {
    case GgufType::u8: return double(*integer = c.read<uint8_t>());
    case GgufType::i8: return double(*integer = c.read<int8_t>());
    case GgufType::u16: return double(*integer = c.read<uint16_t>());
    case GgufType::i16: return double(*integer = c.read<int16_t>());
    case GgufType::u32: return double(*integer = c.read<uint32_t>());
    case GgufType::i32: return double(*integer = c.read<int32_t>());
    case GgufType::u64: { auto v = c.read<uint64_t>(); *integer = static_cast<int64_t>(v); return double(v); }
    case GgufType::i64: return double(*integer = c.read<int64_t>());
    case GgufType::f32: { const double v = c.read<float>(); *integer = saturating_int(v); return v; }
    case GgufType::f64: { const double v = c.read<double>(); *integer = saturating_int(v); return v; }
    case GgufType::boolean: return double(*integer = c.read<uint8_t>() != 0);
    default: c.fail("value type " + std::to_string(static_cast<uint32_t>(t)) + " is not a scalar");
  }
}

GgufValue read_value(Cursor& c, GgufType t) {
  GgufValue v;
  v.type = t;
  if (t == GgufType::string) {
    v.text = c.read_string();
  } else if (t == GgufType::array) {
    v.elem_type = static_cast<GgufType>(c.read<uint32_t>());
    const auto n = c.read<uint64_t>();
    if (n > kMaxArrayElems) c.fail("array of " + std::to_string(n) + " elements");
    // Each element takes at least its encoded size, so a count the rest of the file cannot
    // hold is refused before anything is reserved for it.
    if (n > c.remaining() / min_encoded_bytes(v.elem_type))
      c.fail("array of " + std::to_string(n) + " elements at offset " + std::to_string(c.pos()) +
             " is longer than the rest of the file");
    if (v.elem_type == GgufType::string) {
      v.strings.reserve(n);
      for (uint64_t i = 0; i < n; ++i) v.strings.push_back(c.read_string());
    } else if (v.elem_type == GgufType::array) {
      c.fail("nested arrays are not supported");
    } else {
      v.numbers.reserve(n);
      int64_t ignored;
      for (uint64_t i = 0; i < n; ++i) v.numbers.push_back(read_scalar(c, v.elem_type, &ignored));
    }
  } else {
    v.number = read_scalar(c, t, &v.integer);
  }
  return v;
}

}  // namespace

GgufFile::GgufFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  Cursor c(path, file_->data(), file_->size());
  if (file_->size() < 4 || c.read<uint32_t>() != kGgufMagic)
    throw CheckpointError(path + ": not a GGUF file (bad magic)");
  version_ = c.read<uint32_t>();
  if (version_ != 2 && version_ != 3)
    throw CheckpointError(path + ": unsupported GGUF version " + std::to_string(version_) + " (need 2 or 3)");
  const auto n_tensors = c.read<uint64_t>();
  const auto n_kv = c.read<uint64_t>();
  // A metadata entry takes at least 8 + 4 + 1 bytes and a tensor entry 8 + 4 + 8 + 4 + 8.
  if (n_tensors > kMaxArrayElems || n_kv > kMaxArrayElems) c.fail("implausible tensor/metadata counts");
  if (n_kv > c.remaining() / 13 || n_tensors > c.remaining() / 32)
    throw CheckpointError(path + ": truncated GGUF: the header lists " + std::to_string(n_tensors) + " tensors and " +
                          std::to_string(n_kv) + " metadata entries, more than the file's " +
                          std::to_string(file_->size()) + " bytes can hold");

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string();
    const auto type = static_cast<GgufType>(c.read<uint32_t>());
    if (static_cast<uint32_t>(type) > static_cast<uint32_t>(GgufType::f64))
      c.fail("metadata '" + key + "' has unknown type " + std::to_string(static_cast<uint32_t>(type)));
    kv_[key] = read_value(c, type);
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string();
    if (tensor_index_.count(t.name)) c.fail("tensor '" + t.name + "' appears twice in the directory");
    const auto n_dims = c.read<uint32_t>();
    if (n_dims == 0 || n_dims > kMaxDims) c.fail("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dims");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const auto n = c.read<uint64_t>();
      if (n == 0 || n > kMaxDim) c.fail("tensor '" + t.name + "' has dimension " + std::to_string(n));
      if (__builtin_mul_overflow(numel, n, &numel) || numel > kMaxElems)
        c.fail("tensor '" + t.name + "' has more than 2^48 elements");
      t.ne.push_back(static_cast<int64_t>(n));
    }
    t.ggml_type = c.read<uint32_t>();
    t.offset = c.read<uint64_t>();
    if (dtype_supported(t.ggml_type)) {
      try {
        const uint64_t row = dtype_row_bytes(static_cast<DType>(t.ggml_type), t.ne[0]);
        uint64_t total = 0;
        if (__builtin_mul_overflow(row, numel / static_cast<uint64_t>(t.ne[0]), &total))
          throw std::invalid_argument("byte size overflows");
        t.nbytes = static_cast<size_t>(total);
      } catch (const std::exception& e) {
        c.fail("tensor '" + t.name + "': " + e.what());
      }
    }
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  const int64_t alignment_value = get_int("general.alignment", 32);
  if (alignment_value <= 0 || alignment_value > (1 << 20) || (alignment_value & (alignment_value - 1)) != 0)
    c.fail("general.alignment " + std::to_string(alignment_value) + " is not a power of two up to 2^20");
  const size_t alignment = static_cast<size_t>(alignment_value);
  data_offset_ = (c.pos() + alignment - 1) / alignment * alignment;
  if (data_offset_ > file_->size() && !tensors_.empty())
    throw CheckpointError(path + ": truncated GGUF: the tensor data would start at byte " + std::to_string(data_offset_) +
                          " but the file has " + std::to_string(file_->size()));
  check_tensor_regions(alignment);
}

// Every tensor's bytes lie inside the data section, in order of offset without overlap, and
// each region is as long as its type and shape say (up to the alignment padding): a tensor
// whose type code was changed no longer fits its neighbours. The size of types troupe does
// not read is unknown to it; those only have to start inside the data section.
void GgufFile::check_tensor_regions(size_t alignment) const {
  const uint64_t data_size = file_->size() - std::min(data_offset_, file_->size());
  auto region_error = [&](const GgufTensorInfo& t, const std::string& what) {
    return CheckpointError(path() + ": corrupt GGUF: tensor '" + t.name + "' (" + dtype_name(t.ggml_type) + " " +
                           std::to_string(t.nbytes) + " bytes at data offset " + std::to_string(t.offset) + ") " + what);
  };
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : tensors_) {
    if (t.offset % alignment != 0) throw region_error(t, "is not aligned to " + std::to_string(alignment));
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      throw CheckpointError(path() + ": truncated GGUF: tensor '" + t.name + "' ends at data offset " +
                            (t.offset > UINT64_MAX - t.nbytes ? std::string("beyond 2^64")
                                                              : std::to_string(t.offset + t.nbytes)) +
                            " but the data section has " + std::to_string(data_size) + " bytes");
    by_offset.push_back(&t);
  }
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 0; i < by_offset.size(); ++i) {
    const GgufTensorInfo& t = *by_offset[i];
    const bool known_size = dtype_supported(t.ggml_type);
    const uint64_t region_end = i + 1 < by_offset.size() ? by_offset[i + 1]->offset : data_size;
    const uint64_t region = region_end - t.offset;
    if (i + 1 < by_offset.size() && region < std::max<uint64_t>(t.nbytes, 1))
      throw region_error(t, "overlaps tensor '" + by_offset[i + 1]->name + "' at data offset " +
                                std::to_string(region_end));
    if (known_size && region - t.nbytes >= alignment)
      throw region_error(t, "is followed by " + std::to_string(region - t.nbytes) +
                                " unused bytes: its type or shape does not match the data written for it");
  }
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
bool is_integer_type(GgufType t) {
  return t != GgufType::string && t != GgufType::array && t != GgufType::f32 && t != GgufType::f64;
}
}  // namespace

int64_t GgufFile::get_int(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) throw CheckpointError(path() + ": missing metadata '" + key + "'");
  if (!is_integer_type(it->second.type)) throw CheckpointError(path() + ": metadata '" + key + "' is not an integer");
  return it->second.integer;
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }

double GgufFile::get_float(const std::string& key, double fallback) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return fallback;
  if (it->second.type == GgufType::string || it->second.type == GgufType::array)
    throw CheckpointError(path() + ": metadata '" + key + "' is not a number");
  return it->second.number;
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return fallback;
  return it->second.number != 0;
}

std::string GgufFile::get_string(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) throw CheckpointError(path() + ": missing metadata '" + key + "'");
  if (it->second.type != GgufType::string) throw CheckpointError(path() + ": metadata '" + key + "' is not a string");
  return it->second.text;
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

const GgufValue& GgufFile::get_array(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) throw CheckpointError(path() + ": missing metadata '" + key + "'");
  if (it->second.type != GgufType::array) throw CheckpointError(path() + ": metadata '" + key + "' is not an array");
  return it->second;
}

}  // namespace troupe
