#include "models/quant/type_traits.h"

#include "models/quant/quantizers.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <vector>

#include "models/quant/block_codecs.h"
#include "models/quant/quant_kernels.h"

namespace troupe {
namespace {

namespace p = kernels::portable;
namespace a2 = kernels::avx2;
namespace a5 = kernels::avx512vnni;
using A = ActivationFormat;

// Reference quantizers of the `quantize` work (models/quant/quantize_*.cpp) go into the
// quantize_row column as they land; nullptr where troupe cannot write the type yet.
const std::vector<TypeTraits>& table() {
  static const std::vector<TypeTraits> rows = {
      // type, name, block elements, block bytes, activations, to fp32, from fp32,
      // {portable, AVX2, AVX512-VNNI} kernels for quantized activations, the same for fp32 ones
      {DType::F32, "F32", 1, 4, A::none, dequantize_row_f32, quantize_row_f32, {}, {}},
      {DType::F16, "F16", 1, 2, A::f32, dequantize_row_f16, quantize_row_f16, {}, {p::gemm_f16, a2::gemm_f16, nullptr}},
      {DType::BF16, "BF16", 1, 2, A::f32, dequantize_row_bf16, quantize_row_bf16, {},
       {p::gemm_bf16, a2::gemm_bf16, nullptr}},
      {DType::I32, "I32", 1, 4, A::none, nullptr, nullptr, {}, {}},
      {DType::Q8_0, "Q8_0", 32, 34, A::q8_0, dequantize_row_q8_0, quantize_row_q8_0,
       {p::gemm_q8_0, a2::gemm_q8_0, a5::gemm_q8_0}, {}, {{}, {36, 8, 8, a2::prepare_q8_0_panel_row}, {}}},
      {DType::Q4_0, "Q4_0", 32, 18, A::q8_0, dequantize_row_q4_0, quantize_row_q4_0,
       {p::gemm_q4_0, a2::gemm_q4_0, a5::gemm_q4_0}, {}, {{}, {64, 8, 2, a2::prepare_q4_0_panel_row}, {}}},
      {DType::Q4_1, "Q4_1", 32, 20, A::q8_1, dequantize_row_q4_1, quantize_row_q4_1, {p::gemm_q4_1, a2::gemm_q4_1, nullptr}, {}},
      {DType::Q5_0, "Q5_0", 32, 22, A::q8_0, dequantize_row_q5_0, quantize_row_q5_0, {p::gemm_q5_0, a2::gemm_q5_0, nullptr}, {}},
      {DType::Q5_1, "Q5_1", 32, 24, A::q8_1, dequantize_row_q5_1, quantize_row_q5_1, {p::gemm_q5_1, a2::gemm_q5_1, nullptr}, {}},
      {DType::IQ4_NL, "IQ4_NL", 32, 18, A::q8_0, dequantize_row_iq4_nl, quantize_row_iq4_nl, {p::gemm_iq4_nl, a2::gemm_iq4_nl, nullptr},
       {}},
      {DType::Q2_K, "Q2_K", 256, 84, A::q8_k, dequantize_row_q2_k, quantize_row_q2_k, {p::gemm_q2_k, a2::gemm_q2_k, nullptr}, {}},
      {DType::Q3_K, "Q3_K", 256, 110, A::q8_k, dequantize_row_q3_k, quantize_row_q3_k, {p::gemm_q3_k, a2::gemm_q3_k, nullptr}, {}},
      {DType::Q4_K, "Q4_K", 256, 144, A::q8_k, dequantize_row_q4_k, quantize_row_q4_k, {p::gemm_q4_k, a2::gemm_q4_k, nullptr}, {}},
      {DType::Q5_K, "Q5_K", 256, 176, A::q8_k, dequantize_row_q5_k, quantize_row_q5_k, {p::gemm_q5_k, a2::gemm_q5_k, nullptr}, {}},
      {DType::Q6_K, "Q6_K", 256, 210, A::q8_k, dequantize_row_q6_k, quantize_row_q6_k, {p::gemm_q6_k, a2::gemm_q6_k, nullptr}, {}},
      {DType::IQ4_XS, "IQ4_XS", 256, 136, A::q8_k, dequantize_row_iq4_xs, quantize_row_iq4_xs,
       {p::gemm_iq4_xs, a2::gemm_iq4_xs, nullptr}, {}},
  };
  return rows;
}

}  // namespace

const TypeTraits* find_type_traits(uint32_t ggml_type) {
  for (const TypeTraits& t : table())
    if (static_cast<uint32_t>(t.type) == ggml_type) return &t;
  return nullptr;
}

const TypeTraits& type_traits(DType t) {
  const TypeTraits* traits = find_type_traits(static_cast<uint32_t>(t));
  if (!traits)
    throw std::invalid_argument("tensor type " + dtype_name(static_cast<uint32_t>(t)) +
                                " is not supported by troupe (supported: " + supported_type_names() + ")");
  return *traits;
}

std::string supported_type_names() {
  std::string names;
  for (const TypeTraits& t : table())
    if (t.dequantize_row) names += (names.empty() ? "" : ", ") + std::string(t.name);
  return names;
}

DType parse_type_name(const std::string& name) {
  std::string upper = name;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  for (const TypeTraits& t : table())
    if (t.dequantize_row && upper == t.name) return t.type;
  std::string lower = supported_type_names();
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  throw std::invalid_argument("unknown type '" + name + "' (one of: " + lower + ")");
}

}  // namespace troupe
