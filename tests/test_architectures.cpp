// The architecture registry: every architecture's declaration agrees with its forward pass
// (the tensors it lists for a model of its shape are what its stages load, on every split),
// unknown architectures are refused by name, and a sliding window is enforced.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "models/arch/architecture.h"
#include "models/arch/open_checkpoint.h"
#include "models/arch/stage_model.h"
#include "models/convert/synthetic_model.h"
#include "models/runtime/footprint.h"
#include "tests/test_support.h"

namespace troupe {
namespace {

// A small model of an architecture's first named shape: same structure (GQA, partial
// rotary, tied head, sliding window) at sizes a test can afford.
ModelConfig small_shape_of(const Architecture& a) {
  ModelConfig c = a.presets.begin()->second;
  const bool gqa = c.n_head_kv < c.n_head, partial = c.n_rot > 0 && c.n_rot < c.head_dim();
  c.n_embd = 64, c.n_head = 4, c.n_head_kv = gqa ? 2 : 4, c.n_ff = 96, c.n_layer = 3, c.n_ctx = 64;
  c.n_rot = partial ? 8 : 0;
  c.sliding_window = 0;
  if (c.arch != "gpt2") c.n_vocab = 300;
  return c;
}

std::string write_small_model(const Architecture& a, const test::TempDir& dir, const ModelConfig& c) {
  SynthOptions o;
  o.config = c;
  o.seed = 7;
  if (c.arch == "gpt2") o.vocab_from = test::model_path("gpt2-tiny/gpt2-tiny.gguf");
  const std::string path = dir.file(a.format.name + ".gguf");
  write_synthetic_model(o, path);
  return path;
}

TEST(Architectures, EveryArchitecturesSynthesizedModelRunsTheSameWholeAndSplit) {
  at::set_num_threads(1);
  for (const Architecture* a : architectures()) {
    SCOPED_TRACE(a->format.name);
    test::TempDir dir;
    const ModelConfig shape = small_shape_of(*a);
    std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(write_small_model(*a, dir, shape));
    ASSERT_EQ(ckpt->config().arch, a->format.name);
    EXPECT_EQ(ckpt->config().rotary_dims(), shape.rotary_dims());

    // The footprint (from the declaration's stage roles) counts every tensor of the file once.
    uint64_t file_bytes = 0;
    for (const auto& name : ckpt->tensor_names()) file_bytes += ckpt->tensor_nbytes(name);
    EXPECT_EQ(footprint_of(*ckpt).total_weight_bytes(), file_bytes);

    const at::Tensor prompt = at::tensor(std::vector<int64_t>{1, 17, 42, 99, 5}, at::kLong);
    auto whole = StageModel::load(ckpt, whole_model_spec(shape.n_layer));
    auto cache = whole->new_cache(32);
    const at::Tensor expected = whole->forward(prompt, 0, *cache, /*all_logits=*/true);
    ASSERT_EQ(expected.sizes(), (at::IntArrayRef{5, shape.n_vocab}));
    EXPECT_TRUE(at::isfinite(expected).all().item<bool>());
    EXPECT_GT(expected.std().item<float>(), 0.0f);

    for (const auto& specs : {even_split(shape.n_layer, 2), even_split(shape.n_layer, 3)}) {
      at::Tensor x = prompt;
      for (const auto& spec : specs) {
        auto stage = StageModel::load(ckpt, spec);
        auto stage_cache = stage->new_cache(32);
        x = stage->forward(x, 0, *stage_cache, /*all_logits=*/true);
      }
      EXPECT_TRUE(at::equal(x, expected)) << specs.size() << " stages";
    }
  }
}

TEST(Architectures, UnknownArchitectureIsRefusedByNameListingTheKnownOnes) {
  try {
    architecture("phi9");
    FAIL() << "phi9 was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'phi9'"), std::string::npos) << message;
    for (const char* known : {"llama", "gpt2", "phi2", "gptj", "qwen2", "phi3"})
      EXPECT_NE(message.find(known), std::string::npos) << known << " missing from: " << message;
  }
  EXPECT_EQ(&architecture("mistral"), &architecture("llama"));  // a LLaMA variant
}

TEST(Architectures, SequencesBeyondASlidingWindowAreRefusedSayingSo) {
  at::set_num_threads(1);
  test::TempDir dir;
  ModelConfig shape = small_shape_of(architecture("llama"));
  shape.sliding_window = 8;
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(write_small_model(architecture("llama"), dir, shape));
  ASSERT_EQ(ckpt->config().sliding_window, 8);
  auto model = StageModel::load(ckpt, whole_model_spec(shape.n_layer));
  auto cache = model->new_cache(32);
  model->forward(at::arange(8, at::kLong), 0, *cache);  // exactly the window: fine
  try {
    model->forward(at::tensor(std::vector<int64_t>{9}, at::kLong), 8, *cache);
    FAIL() << "a 9th position was accepted with a window of 8";
  } catch (const std::length_error& e) {
    EXPECT_NE(std::string(e.what()).find("sliding attention window of 8"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace troupe
