#pragma once
// The GGUF container format (v2/v3): typed metadata and tensor directory over a
// memory-mapped file. Knows nothing of inference; gguf_checkpoint turns it into a model.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/quant/dtype.h"
#include "models/format/mapped_file.h"

namespace troupe {

enum class GgufType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};

// One metadata value. Scalars live in `number` (integers exactly up to 2^53; the raw
// 64-bit integer is in `integer`), strings in `text`; arrays keep their element type
// and fill `numbers` or `strings`.
struct GgufValue {
  GgufType type = GgufType::u32;
  GgufType elem_type = GgufType::u32;  // arrays only
  double number = 0;
  int64_t integer = 0;
  std::string text;
  std::vector<double> numbers;
  std::vector<std::string> strings;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<int64_t> ne;   // GGUF order: innermost dimension first
  uint64_t offset = 0;       // from the start of the data section
  size_t nbytes = 0;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);  // throws CheckpointError naming file and problem

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return file_->data() + data_offset_ + t.offset; }

  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  // Typed getters: throw CheckpointError naming the file and key when missing or mistyped.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  const GgufValue& get_array(const std::string& key) const;

 private:
  void check_tensor_regions(size_t alignment) const;

  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  size_t data_offset_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace troupe
