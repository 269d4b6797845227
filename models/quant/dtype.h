#pragma once
// Element types of checkpoint tensors, numbered as GGUF numbers them (ggml_type). What troupe
// knows about each (block size, bytes, conversions, kernels) is in type_traits.h.
#include <cstddef>
#include <cstdint>
#include <string>

namespace troupe {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  IQ4_NL = 20,
  IQ4_XS = 23,
  I32 = 26,
  BF16 = 30,
};

// Elements per block and bytes per block; plain types are blocks of one element.
struct DTypeLayout {
  int64_t block_elems;
  size_t block_bytes;
};

bool dtype_supported(uint32_t ggml_type);
DTypeLayout dtype_layout(DType t);  // throws std::invalid_argument for a type troupe does not know
std::string dtype_name(uint32_t ggml_type);  // "Q4_K" etc., also for unsupported ones
size_t dtype_row_bytes(DType t, int64_t n_elems);  // throws if n_elems is not a multiple of the block

}  // namespace troupe
