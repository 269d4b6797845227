#include "models/format/safetensors_file.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "models/format/checkpoint.h"

namespace troupe {
namespace {

size_t element_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  const size_t size = file_->size();
  if (size < 8) throw CheckpointError(path + ": truncated safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, file_->data(), 8);
  if (header_len > size - 8)
    throw CheckpointError(path + ": corrupt safetensors: header of " + std::to_string(header_len) +
                          " bytes is longer than the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file_->data() + 8, file_->data() + 8 + header_len);
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": corrupt safetensors header: " + e.what());
  }
  if (!header.is_object()) throw CheckpointError(path + ": corrupt safetensors header: not a JSON object");
  const uint8_t* data = file_->data() + 8 + header_len;
  const size_t data_size = size - 8 - header_len;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      SafetensorsEntry e;
      e.dtype = info.at("dtype").get<std::string>();
      e.shape = info.at("shape").get<std::vector<int64_t>>();
      const auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1]) throw std::runtime_error("bad data_offsets");
      if (offsets[1] > data_size)
        throw CheckpointError(path + ": truncated safetensors: tensor '" + name + "' ends at " +
                              std::to_string(offsets[1]) + " but the data section has " + std::to_string(data_size) +
                              " bytes");
      uint64_t numel = 1;
      for (auto d : e.shape) {
        if (d < 0) throw std::runtime_error("negative dimension " + std::to_string(d));
        if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) throw std::runtime_error("shape overflows");
      }
      const size_t elem = element_size(e.dtype);
      uint64_t expected = 0;
      if (elem != 0 && (__builtin_mul_overflow(numel, elem, &expected) || expected != offsets[1] - offsets[0]))
        throw std::runtime_error("shape " + shape_string(e.shape) + " of " + e.dtype + " needs " +
                                 (expected ? std::to_string(expected) : std::string("more than 2^64")) +
                                 " bytes, its data_offsets hold " + std::to_string(offsets[1] - offsets[0]));
      e.data = data + offsets[0];
      e.nbytes = offsets[1] - offsets[0];
      entries_.emplace(name, std::move(e));
      ranges.push_back({offsets[0], offsets[1], name});
    } catch (const CheckpointError&) {
      throw;
    } catch (const std::exception& ex) {
      throw CheckpointError(path + ": corrupt safetensors entry '" + name + "': " + ex.what());
    }
  }
  // Two tensors sharing bytes would alias each other's weights.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      throw CheckpointError(path + ": corrupt safetensors: tensor '" + ranges[i].name + "' (bytes " +
                            std::to_string(ranges[i].begin) + "-" + std::to_string(ranges[i].end) +
                            ") overlaps tensor '" + ranges[i - 1].name + "' (bytes " +
                            std::to_string(ranges[i - 1].begin) + "-" + std::to_string(ranges[i - 1].end) + ")");
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace troupe
