#pragma once
// One .safetensors file: an 8-byte header length, a JSON directory of tensors
// (dtype, shape, byte range) and the raw data, memory-mapped.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/format/mapped_file.h"

namespace troupe {

struct SafetensorsEntry {
  std::string dtype;          // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws CheckpointError naming file and problem
  const std::string& path() const { return file_->path(); }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, SafetensorsEntry> entries_;
};

}  // namespace troupe
