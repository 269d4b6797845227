// Pipelined prefill: causal attention gives each query row the same bits whatever pass it is
// in; so a prompt through a stage in chunks (positions [0,c), [c,2c), ... each on
// top of the cache the chunks before it left) gives bitwise the KV cache and logits of one
// pass where the kernels' rows are independent of the pass; and through real caf-nodes, whose
// stages overlap the chunks, bitwise the tokens and logits of one process prefilling in the
// same chunks, on every architecture and format, with the chunks really pipelined.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "framework/deploy/deploy.h"
#include "models/arch/causal_attention.h"
#include "models/arch/open_checkpoint.h"
#include "models/arch/stage_model.h"
#include "models/format/checkpoint.h"
#include "models/quant/quant_matmul.h"
#include "tests/test_shared_nodes.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"
#include "tests/test_support_pipeline.h"

namespace troupe {
namespace {

constexpr int64_t kPromptLength = 80;
constexpr int64_t kCacheLength = 128;

// Token ids spread over the vocabulary, the same every run.
at::Tensor prompt_ids(int64_t n_vocab) {
  std::vector<int64_t> ids;
  uint64_t x = 12345;
  for (int64_t i = 0; i < kPromptLength; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    ids.push_back(static_cast<int64_t>((x >> 33) % static_cast<uint64_t>(n_vocab)));
  }
  return at::tensor(ids, at::kLong);
}

void expect_same_bits(const at::Tensor& chunked, const at::Tensor& whole, const std::string& what) {
  ASSERT_EQ(chunked.sizes(), whole.sizes()) << what;
  EXPECT_TRUE(at::equal(chunked.contiguous(), whole.contiguous()))
    << what << ": max difference " << (chunked - whole).abs().max().item<float>();
}

void expect_same_cache(const KvCache& chunked, const KvCache& whole, int64_t n_layers, const std::string& what) {
  ASSERT_EQ(chunked.n_positions(), whole.n_positions()) << what;
  for (int64_t l = 0; l < n_layers; ++l) {
    expect_same_bits(chunked.layer(l).first, whole.layer(l).first, what + ": keys of layer " + std::to_string(l));
    expect_same_bits(chunked.layer(l).second, whole.layer(l).second, what + ": values of layer " + std::to_string(l));
  }
}

// -- attention alone ----------------------------------------------------------------------

// Softmax attention of every query over the keys up to its position, in double from the
// definition: [T, n_head * head_dim].
at::Tensor attention_in_double(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t n_head = q.size(0), T = q.size(1), hd = q.size(2), L = k.size(1), group = n_head / k.size(0);
  const at::Tensor kk = k.to(at::kDouble).repeat_interleave(group, 0), vv = v.to(at::kDouble).repeat_interleave(group, 0);
  at::Tensor scores = at::matmul(q.to(at::kDouble), kk.transpose(1, 2)) / std::sqrt(static_cast<double>(hd));
  const at::Tensor hidden = at::arange(L).unsqueeze(0) > (at::arange(T).unsqueeze(1) + (L - T));  // [T, L]
  scores = scores.masked_fill(hidden, -std::numeric_limits<double>::infinity());
  return at::matmul(at::softmax(scores, -1), vv).transpose(0, 1).reshape({T, n_head * hd});
}

// Kernel instruction set (each supported one) x head_dim (8 and 64: the AVX2 path; 20: not a
// multiple of 8, the portable one) x threads.
struct CausalAttention : ::testing::TestWithParam<std::tuple<KernelIsa, int64_t, int>> {
  void SetUp() override {
    if (!kernel_isa_supported(std::get<0>(GetParam()))) GTEST_SKIP() << "this CPU has no " << kernel_isa_name(std::get<0>(GetParam()));
    force_kernel_isa(std::get<0>(GetParam()));
    threads_before_ = at::get_num_threads();
    at::set_num_threads(std::get<2>(GetParam()));
    at::manual_seed(17);
    // 4 query heads over 2 key/value heads, 80 positions
    q_ = at::randn({4, kPromptLength, head_dim()});
    k_ = at::randn({2, kPromptLength, head_dim()});
    v_ = at::randn({2, kPromptLength, head_dim()});
  }
  void TearDown() override {
    reset_kernel_isa();
    at::set_num_threads(threads_before_);
  }
  int64_t head_dim() const { return std::get<1>(GetParam()); }
  int threads_before_ = 1;
  at::Tensor q_, k_, v_;
};

TEST_P(CausalAttention, EachQueryRowGetsTheBitsOfOnePassInChunksOfAnySize) {
  const at::Tensor whole = causal_attention(q_, k_, v_);
  for (int64_t chunk : {int64_t{1}, int64_t{7}, int64_t{32}}) {
    for (int64_t p = 0; p < kPromptLength; p += chunk) {
      const int64_t n = std::min(chunk, kPromptLength - p);
      // Keys and values as a cache holds them: the chunk's positions last, in a larger store.
      const at::Tensor store_k = at::zeros({2, 128, head_dim()}), store_v = at::zeros({2, 128, head_dim()});
      store_k.narrow(1, 0, p + n).copy_(k_.narrow(1, 0, p + n));
      store_v.narrow(1, 0, p + n).copy_(v_.narrow(1, 0, p + n));
      const at::Tensor part =
        causal_attention(q_.narrow(1, p, n), store_k.narrow(1, 0, p + n), store_v.narrow(1, 0, p + n));
      expect_same_bits(part, whole.narrow(0, p, n),
                       "rows " + std::to_string(p) + ".." + std::to_string(p + n - 1) + " in chunks of " +
                         std::to_string(chunk));
    }
  }
}

TEST_P(CausalAttention, MatchesSoftmaxAttentionComputedInDouble) {
  const at::Tensor got = causal_attention(q_, k_, v_);
  EXPECT_LT((got.to(at::kDouble) - attention_in_double(q_, k_, v_)).abs().max().item<double>(), 1e-5);
  // The last 5 queries after 75 cached positions (a decode step is one of these).
  const at::Tensor tail = causal_attention(q_.narrow(1, 75, 5), k_, v_);
  EXPECT_LT((tail.to(at::kDouble) - attention_in_double(q_.narrow(1, 75, 5), k_, v_)).abs().max().item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Kernels, CausalAttention,
                         ::testing::Combine(::testing::Values(KernelIsa::portable, KernelIsa::avx2),
                                            ::testing::Values(int64_t{8}, int64_t{20}, int64_t{64}),
                                            ::testing::Values(1, 2)),
                         [](const auto& info) {
                           return std::string(kernel_isa_name(std::get<0>(info.param))) + "_head_dim" +
                                  std::to_string(std::get<1>(info.param)) + "_threads" +
                                  std::to_string(std::get<2>(info.param));
                         });

// -- a whole model in chunks -----------------------------------------------------------------

struct ChunkedPrefill : ::testing::TestWithParam<std::tuple<const char*, int64_t /*chunk*/, int /*threads*/>> {
  void SetUp() override {
    threads_before_ = at::get_num_threads();
    at::set_num_threads(std::get<2>(GetParam()));
    ckpt_ = open_checkpoint(test::model_path(std::get<0>(GetParam())));
  }
  void TearDown() override { at::set_num_threads(threads_before_); }  // the nodes' count, for PipelinedPrefill
  int threads_before_ = 1;
  int64_t chunk() const { return std::get<1>(GetParam()); }
  std::shared_ptr<const Checkpoint> ckpt_;
};

TEST_P(ChunkedPrefill, WholeModelGivesTheSameCacheLogitsAndNextStepAsOnePass) {
  const int64_t n_layer = ckpt_->config().n_layer;
  auto model = StageModel::load(ckpt_, whole_model_spec(n_layer));
  const at::Tensor prompt = prompt_ids(ckpt_->config().n_vocab);

  auto whole_cache = model->new_cache(kCacheLength);
  const at::Tensor whole_logits = model->forward(prompt, 0, *whole_cache);

  auto chunked_cache = model->new_cache(kCacheLength);
  at::Tensor chunked_logits;
  for (int64_t p = 0; p < kPromptLength; p += chunk())
    chunked_logits = model->forward(prompt.narrow(0, p, std::min(chunk(), kPromptLength - p)), p, *chunked_cache);

  expect_same_bits(chunked_logits, whole_logits, "logits of the last prompt position");
  expect_same_cache(*chunked_cache, *whole_cache, n_layer, "KV cache");
  // The next token's step reads the whole cache.
  const at::Tensor next = at::argmax(whole_logits, -1).view({1});
  expect_same_bits(model->forward(next, kPromptLength, *chunked_cache),
                   model->forward(next, kPromptLength, *whole_cache), "the decode step after the prompt");
}

INSTANTIATE_TEST_SUITE_P(
  Models, ChunkedPrefill,
  // Every architecture and every block format, and F16 (the direct kernels below batches of
  // 128 rows, whose rows do not depend on each other; attention is per query row). Not the F32
  // files (stories260K.gguf, gpt2-tiny.gguf): F32 weights are multiplied by BLAS (at::linear),
  // whose blocking, and so the last bits of a row, depends on the pass's size; nor F16 prompts of
  // 128 rows or more in one pass (fp32 tiles + BLAS). That is why a pipeline prefills in the
  // chunks a single process uses (see PipelinedPrefill below).
  ::testing::Combine(::testing::Values("stories260K/stories260K-q8_0.gguf", "stories260K/stories260K-q4_0.gguf",
                                       "gpt2-tiny/gpt2-tiny-q8_0.gguf", "llama-k/llama-k-q4_k_m.gguf",
                                       "llama-k/llama-k-q6_k.gguf", "llama-k/llama-k-q2_k.gguf",
                                       "llama-k/llama-k-q3_k_m.gguf", "llama-k/llama-k-q5_k_m.gguf",
                                       "llama-k/llama-k-q4_1.gguf", "llama-k/llama-k-q5_0.gguf",
                                       "llama-k/llama-k-q5_1.gguf", "llama-k/llama-k-iq4_nl.gguf",
                                       "llama-k/llama-k-iq4_xs.gguf", "llama-k/llama-k-f16.gguf",
                                       "llama3-tiny/llama3-tiny.gguf", "qwen2-tiny/qwen2-tiny.gguf",
                                       "phi3-tiny/phi3-tiny.gguf", "phi2-tiny/phi2-tiny.gguf", "gptj-tiny/hf"),
                     ::testing::Values(int64_t{1}, int64_t{7}, int64_t{32}), ::testing::Values(1, 2)),
  [](const auto& info) {
    return test::param_name(std::get<0>(info.param)) + "_chunk" + std::to_string(std::get<1>(info.param)) + "_threads" +
           std::to_string(std::get<2>(info.param));
  });

// -- through caf-nodes ---------------------------------------------------------------------


// The model over `n` shared nodes in stages of about equal size.
dsl::PipelineDesc split(const std::string& model, size_t n) {
  return test::even_split(model, static_cast<int>(n), test::SharedNodes::nodes(n), /*with_tokenizer=*/false);
}

test::Output one_process(const std::string& model, const std::vector<int32_t>& prompt, int64_t n, int64_t chunk) {
  LocalSession session(open_checkpoint(test::model_path(model)));
  session.set_prefill_chunk(chunk);
  test::Output run;
  run.tokens = session.generate(prompt, n, dsl::greedy(), -1, [&](int32_t, const std::vector<float>& l) {
    run.logits.push_back(l);
    return true;
  });
  return run;
}

struct PipelinedPrefill : ::testing::TestWithParam<const char*> {};

TEST_P(PipelinedPrefill, ChunksOverlappedOnThreeNodesGiveTheTokensAndLogitsOfOneProcess) {
  const std::string model = GetParam();
  const int64_t n_vocab = open_checkpoint(test::model_path(model))->config().n_vocab;
  std::vector<int32_t> prompt;
  const at::Tensor ids = prompt_ids(n_vocab);
  for (int64_t i = 0; i < ids.size(0); ++i) prompt.push_back(static_cast<int32_t>(ids[i].item<int64_t>()));
  for (int64_t chunk : {int64_t{16}, int64_t{0}}) {
    SCOPED_TRACE("chunks of " + std::to_string(chunk));
    DeployOptions options = test::bounded_deploy_options();
    options.prefill_chunk = chunk;
    Pipeline p = deploy(test::actor_system(), split(model, std::min<int64_t>(3, test::n_layer_of(model))), options);
    EXPECT_TRUE(test::bitwise_same(one_process(model, prompt, 8, chunk), test::through(p, prompt, 8, dsl::greedy())));
    // Each stage ran the prompt as separate passes, one per chunk, plus one per decode step.
    const int64_t passes = (chunk ? (kPromptLength + chunk - 1) / chunk : 1) + 7;
    for (const auto& s : p.stats()) EXPECT_EQ(s.batches, static_cast<uint64_t>(passes)) << s.describe;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, PipelinedPrefill,
                         ::testing::Values("stories260K/stories260K.gguf", "stories260K/stories260K-q4_0.gguf",
                                           "gpt2-tiny/gpt2-tiny.gguf", "llama-k/llama-k-q4_k_m.gguf",
                                           "llama-k/llama-k-f16.gguf", "phi2-tiny/phi2-tiny.gguf", "gptj-tiny/hf",
                                           "llama3-tiny/llama3-tiny.gguf", "qwen2-tiny/qwen2-tiny.gguf",
                                           "phi3-tiny/phi3-tiny.gguf"),
                         [](const auto& info) { return test::param_name(info.param); });

}  // namespace
}  // namespace troupe
