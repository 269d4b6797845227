#include "models/quant/quantizers.h"

#include <stdexcept>

#include "models/quant/quant_formats.h"

namespace troupe {
namespace {

template <DType T>
void plain(const float* x, void* dst, int64_t n) {
  quantize(T, x, static_cast<uint8_t*>(dst), n);
}

const QuantizerInfo kQuantizers[] = {
    {ggml_type::F32, "F32", 1, 4, plain<DType::F32>},
    {ggml_type::F16, "F16", 1, 2, plain<DType::F16>},
    {ggml_type::BF16, "BF16", 1, 2, plain<DType::BF16>},
    {ggml_type::Q8_0, "Q8_0", 32, 34, plain<DType::Q8_0>},
    {ggml_type::Q4_0, "Q4_0", 32, 18, plain<DType::Q4_0>},
    {ggml_type::Q4_1, "Q4_1", 32, 20, quantize_row_q4_1},
    {ggml_type::Q5_0, "Q5_0", 32, 22, quantize_row_q5_0},
    {ggml_type::Q5_1, "Q5_1", 32, 24, quantize_row_q5_1},
    {ggml_type::Q2_K, "Q2_K", 256, 84, quantize_row_q2_k},
    {ggml_type::Q3_K, "Q3_K", 256, 110, quantize_row_q3_k},
    {ggml_type::Q4_K, "Q4_K", 256, 144, quantize_row_q4_k},
    {ggml_type::Q5_K, "Q5_K", 256, 176, quantize_row_q5_k},
    {ggml_type::Q6_K, "Q6_K", 256, 210, quantize_row_q6_k},
    {ggml_type::IQ4_NL, "IQ4_NL", 32, 18, quantize_row_iq4_nl},
    {ggml_type::IQ4_XS, "IQ4_XS", 256, 136, quantize_row_iq4_xs},
};

}  // namespace

const QuantizerInfo* find_quantizer(uint32_t t) {
  for (const auto& q : kQuantizers)
    if (q.ggml_type == t) return &q;
  return nullptr;
}

size_t quantized_row_bytes(const QuantizerInfo& q, int64_t n) {
  if (n % q.block_elems != 0)
    throw std::invalid_argument(std::string(q.name) + " row of " + std::to_string(n) +
                                " values is not a multiple of the block size " + std::to_string(q.block_elems));
  return static_cast<size_t>(n / q.block_elems) * q.block_bytes;
}

}  // namespace troupe
