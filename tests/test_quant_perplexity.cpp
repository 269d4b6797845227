// Perplexity of the quantized stories260K files with their weights kept in Q8_0 / Q4_0 blocks,
// against llama.cpp's llama-perplexity on the same files (which rounds activations to Q8_0
// too): within 1%, through the direct int8 kernels and through the fp32-tile path.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include "models/format/checkpoint.h"
#include "models/runtime/perplexity.h"
#include "models/quant/quant_matmul.h"
#include "models/arch/stage_model.h"
#include "models/vocab/tokenizer.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

struct Case {
  const char* model;           // relative to ../shared/models
  bool direct_kernels;         // else fp32 tiles
};

class QuantizedPerplexity : public ::testing::TestWithParam<Case> {};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_P(QuantizedPerplexity, IsWithinOnePercentOfLlamaCpp) {
  at::set_num_threads(2);
  const Case& c = GetParam();
  const int64_t never = std::numeric_limits<int64_t>::max();
  set_matmul_thresholds(c.direct_kernels ? MatmulThresholds{never, never} : MatmulThresholds{1, 1});
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(test::model_path(c.model));
  const auto tokenizer = make_tokenizer(ckpt->vocab());
  const auto tokens = tokenizer->encode(read_file("/usr/share/common-licenses/GPL-3"), tokenizer->adds_bos());
  auto model = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
  const PerplexityResult r = perplexity(*model, tokens, 128, tokenizer->adds_bos(), tokenizer->bos_id());
  reset_matmul_thresholds();
  const std::string file = std::string(c.model).substr(std::string(c.model).find('/') + 1);
  const double llama_cpp_ppl = test::reference_perplexity(file);  // llama-perplexity --ctx 128 on GPL-3
  std::printf("%s (%s): PPL %.4f, llama.cpp %.4f (%+.3f%%)\n", c.model, c.direct_kernels ? "int8 kernels" : "fp32 tiles",
              r.ppl, llama_cpp_ppl, 100 * (r.ppl / llama_cpp_ppl - 1));
  EXPECT_EQ(r.n_scored, 10899);
  EXPECT_NEAR(r.ppl, llama_cpp_ppl, 0.01 * llama_cpp_ppl);
}

INSTANTIATE_TEST_SUITE_P(Stories260K, QuantizedPerplexity,
                         ::testing::Values(Case{"stories260K/stories260K-q8_0.gguf", true},
                                           Case{"stories260K/stories260K-q8_0.gguf", false},
                                           Case{"stories260K/stories260K-q4_0.gguf", true},
                                           Case{"stories260K/stories260K-q4_0.gguf", false}),
                         [](const auto& info) {
                           std::string name = info.param.model;
                           name = name.substr(name.find('-') + 1, 4) +
                                  (info.param.direct_kernels ? "_Int8Kernels" : "_Fp32Tiles");
                           return name;
                         });

}  // namespace
}  // namespace troupe
