#include "models/quant/dtype.h"

#include <stdexcept>

#include "models/quant/type_traits.h"

namespace troupe {

bool dtype_supported(uint32_t t) { return find_type_traits(t) != nullptr; }

DTypeLayout dtype_layout(DType t) {
  const TypeTraits& traits = type_traits(t);
  return {traits.block_elems, traits.block_bytes};
}

std::string dtype_name(uint32_t t) {
  static const char* names[] = {"F32",  "F16",  "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
                                "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
                                "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64",
                                "IQ1_M", "BF16"};
  if (t < sizeof(names) / sizeof(names[0])) return names[t];
  return "type " + std::to_string(t);
}

size_t dtype_row_bytes(DType t, int64_t n) {
  const auto layout = dtype_layout(t);
  if (n % layout.block_elems != 0)
    throw std::invalid_argument(dtype_name(static_cast<uint32_t>(t)) + " row of " + std::to_string(n) +
                                " elements is not a multiple of the block size " + std::to_string(layout.block_elems));
  return static_cast<size_t>(n / layout.block_elems) * layout.block_bytes;
}

}  // namespace troupe
