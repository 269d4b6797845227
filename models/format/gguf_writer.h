#pragma once
// Writes GGUF v3 files: `troupe split` (one shard per stage) and `troupe synth`
// (random-weight models for benchmarks). Tensor bytes are produced one tensor at a
// time while writing, so a multi-GB model never sits in memory whole.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/format/gguf_file.h"

namespace troupe {

class GgufWriter {
 public:
  // Fills `out` (already sized to the tensor's byte count) with the tensor's data.
  using Producer = std::function<void(uint8_t* out, size_t nbytes)>;

  void set(const std::string& key, GgufValue value);
  void set_string(const std::string& key, const std::string& v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i64(const std::string& key, int64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_strings(const std::string& key, std::vector<std::string> v);
  void set_f32s(const std::string& key, const std::vector<float>& v);
  void set_i32s(const std::string& key, const std::vector<int32_t>& v);
  void copy_metadata(const GgufFile& from);  // every key of `from`

  // `shape` is outermost first (torch order); GGUF stores it reversed.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape, Producer produce);
  // The same with the byte size given (block types this build's dtype table may not describe).
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape, size_t nbytes,
                  Producer produce);
  void add_tensor_copy(const std::string& name, DType type, const std::vector<int64_t>& shape, const uint8_t* data);

  // Writes the file; throws std::runtime_error naming the path on I/O errors.
  void write(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    size_t nbytes;
    Producer produce;
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace troupe
