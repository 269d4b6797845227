#pragma once
// A read-only memory mapping of a whole file. Pages are read from disk only when
// touched, so a stage that reads its own layers never pulls in the rest of the model.
#include <cstddef>
#include <cstdint>
#include <string>

namespace troupe {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws CheckpointError naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace troupe
