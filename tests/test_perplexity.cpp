// Perplexity with llama.cpp's method matches llama.cpp's figures on the GPL-3 text
// (present on every Debian machine) to within 0.1% for fp32 models.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <fstream>

#include "models/format/checkpoint.h"
#include "models/runtime/perplexity.h"
#include "models/arch/stage_model.h"
#include "models/vocab/tokenizer.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

double gpl3_perplexity(const std::string& model) {
  at::set_num_threads(2);
  std::ifstream in("/usr/share/common-licenses/GPL-3");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_GT(text.size(), 30000u);
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(test::model_path(model));
  const auto tok = make_tokenizer(ckpt->vocab());
  auto stage = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
  return perplexity(*stage, tok->encode(text, tok->adds_bos()), 128, tok->adds_bos(), tok->bos_id()).ppl;
}

TEST(Perplexity, Stories260KGgufMatchesLlamaCppWithinPointOnePercent) {
  const double reference = test::reference_perplexity("stories260K.gguf");
  EXPECT_NEAR(gpl3_perplexity("stories260K/stories260K.gguf"), reference, reference * 1e-3);
}

TEST(Perplexity, Stories260KHuggingFaceMatchesLlamaCppWithinPointOnePercent) {
  const double reference = test::reference_perplexity("stories260K.gguf");  // the same weights
  EXPECT_NEAR(gpl3_perplexity("stories260K/hf"), reference, reference * 1e-3);
}

TEST(Perplexity, Gpt2TinyMatchesLlamaCppWithinPointOnePercent) {
  const double reference = test::reference_perplexity("gpt2-tiny.gguf");
  EXPECT_NEAR(gpl3_perplexity("gpt2-tiny/gpt2-tiny.gguf"), reference, reference * 1e-3);
}

TEST(Perplexity, TextShorterThanTwoChunksIsRejected) {
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(test::model_path("stories260K/stories260K.gguf"));
  auto stage = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
  EXPECT_THROW(perplexity(*stage, std::vector<int32_t>(200, 5), 128, true, 1), std::invalid_argument);
}

}  // namespace
}  // namespace troupe
