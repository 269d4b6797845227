// The GGUF block formats beyond Q8_0 / Q4_0 (Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K .. Q6_K, IQ4_XS),
// on the real tensors of ../shared/models/llama-k (quantized by llama.cpp's llama-quantize):
//   - every kernel, on every instruction set this CPU has (portable, AVX2 for all ten types),
//     equals the fp32 product of the dequantized weights within a bound derived from the
//     activation rounding, for odd row counts and 1..9 activation rows, gives each row of a
//     batch the bits it gets alone, and gives the portable kernel's bits;
//   - the dequantized tensors are the F16 model's tensors up to the format's rounding;
//   - the whole model, teacher-forced on llama.cpp's reference tokens, gives its top-5 logits
//     and logsumexp; greedy decoding gives its tokens up to the first near-tie.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "models/arch/stage_model.h"
#include "models/arch/open_checkpoint.h"
#include "models/format/checkpoint.h"
#include "models/quant/block_layouts.h"
#include "models/quant/quant_formats.h"
#include "models/quant/quant_matmul.h"
#include "models/quant/type_traits.h"
#include "models/runtime/local_session.h"
#include "tests/test_support.h"

namespace troupe {
namespace {

const std::vector<std::string> kFiles = {"q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k",  "q4_1",
                                         "q5_0", "q5_1",   "iq4_nl", "iq4_xs", "f16"};
const std::vector<DType> kNewTypes = {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::IQ4_NL, DType::Q2_K,
                                      DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_XS};

std::string file_of(const std::string& kind) { return test::model_path("llama-k/llama-k-" + kind + ".gguf"); }
std::string name_of(DType t) { return dtype_name(static_cast<uint32_t>(t)); }

// Every 2-D tensor of the given type in the llama-k files: (checkpoint, tensor name).
struct Found {
  std::shared_ptr<const Checkpoint> ckpt;
  std::string name;
};
const std::map<DType, Found>& tensors_by_type() {
  static const std::map<DType, Found> found = [] {
    std::map<DType, Found> m;
    for (const auto& kind : kFiles) {
      std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(file_of(kind));
      for (const auto& name : ckpt->tensor_names()) {
        const TensorView v = ckpt->tensor(name);
        if (v.shape.size() == 2 && v.shape[0] >= 64 && !m.count(v.dtype)) m[v.dtype] = Found{ckpt, name};
      }
    }
    return m;
  }();
  return found;
}

// Per element of a weight row: the offset every value of its (sub-)block carries, d_min * min
// (Q2_K, Q4_K, Q5_K) or m (Q4_1, Q5_1); zero for the other formats.
std::vector<double> offsets_of(DType type, const uint8_t* row, int64_t cols) {
  std::vector<double> off(static_cast<size_t>(cols), 0.0);
  const TypeTraits& tt = type_traits(type);
  for (int64_t b = 0; b < cols / tt.block_elems; ++b) {
    const uint8_t* block = row + b * tt.block_bytes;
    if (type == DType::Q4_1 || type == DType::Q5_1) {
      blocks::Block32 d;
      type == DType::Q4_1 ? blocks::decode_q4_1(block, d) : blocks::decode_q5_1(block, d);
      for (int j = 0; j < 32; ++j) off[b * 32 + j] = d.m;
    } else if (type == DType::Q2_K || type == DType::Q4_K || type == DType::Q5_K) {
      blocks::BlockK d;
      if (type == DType::Q2_K) blocks::decode_q2_k(block, d);
      if (type == DType::Q4_K) blocks::decode_q4_k(block, d);
      if (type == DType::Q5_K) blocks::decode_q5_k(block, d);
      for (int j = 0; j < 256; ++j) off[b * 256 + j] = double(d.dmin) * d.min[j / 16];
    }
  }
  return off;
}

// ---- the kernels against the dequantized weights ---------------------------------------------
//
// The activations are rounded per block (32 for Q8_0 / Q8_1, 256 for Q8_K) before the integer
// dot products: |x - x~| <= c amax_b with c = 0.00443 for Q8_0 / Q8_1 (the fp16 scale, see
// test_quant_matmul.cpp) and 0.5 / 127 (1 + 2^-20) = 0.003938 for Q8_K (fp32 scale). Q8_1 also
// carries s = fp16(d * sum q) for the weights' offset m: |s - d16 sum q| <= 2^-10 * 32 amax_b
// (+ 2^-25 if s is subnormal in fp16), times |m|. The rest is fp32 rounding of at most
// cols + 8 steps, each relative to sum |x| (|w| + 2 |offset|).
constexpr double kU = 1.0 / (1 << 24);

struct KernelCase {
  DType type;
  KernelIsa isa;
};
std::vector<KernelCase> kernel_cases() {
  std::vector<KernelCase> out;
  for (DType t : kNewTypes)
    for (KernelIsa isa : {KernelIsa::portable, KernelIsa::avx2, KernelIsa::avx512vnni}) out.push_back({t, isa});
  return out;
}

class BlockKernel : public ::testing::TestWithParam<KernelCase> {
 protected:
  void SetUp() override {
    if (!kernel_isa_supported(GetParam().isa)) GTEST_SKIP() << "this CPU has no " << kernel_isa_name(GetParam().isa);
    const auto& found = tensors_by_type();
    if (!found.count(GetParam().type)) GTEST_FAIL() << "no " << name_of(GetParam().type) << " tensor in llama-k";
    force_kernel_isa(GetParam().isa);
    at::set_num_threads(2);
  }
  void TearDown() override {
    reset_kernel_isa();
    reset_matmul_thresholds();
  }

  // 37 rows from row 5 of the type's tensor: an odd count that is not a multiple of the tiles.
  PackedMatrix matrix() const {
    const Found& f = tensors_by_type().at(GetParam().type);
    const TensorView v = f.ckpt->tensor(f.name);
    PackedMatrix w{v.dtype, 37, v.shape[1], nullptr};
    w.data = v.data + 5 * w.row_bytes();
    return w;
  }
};

std::vector<float> random_activations(int64_t T, int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(T * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = normal(gen) * (i % 89 == 3 ? 6.0f : 1.0f);
  return x;
}

TEST_P(BlockKernel, EqualsDequantizedFp32ProductWithinTheActivationRoundingBound) {
  const PackedMatrix w = matrix();
  const TypeTraits& tt = type_traits(w.dtype);
  const bool q8_k = tt.activations == ActivationFormat::q8_k, q8_1 = tt.activations == ActivationFormat::q8_1;
  const int64_t block = q8_k ? 256 : 32, cols = w.cols;
  const double c = q8_k ? 0.003938 : 0.00443;
  std::vector<float> wd(static_cast<size_t>(w.rows * cols));
  dequantize(w.dtype, w.data, wd.data(), w.rows * cols);
  std::vector<std::vector<double>> off;
  for (int64_t r = 0; r < w.rows; ++r) off.push_back(offsets_of(w.dtype, w.row(r), cols));
  double worst = 0;
  for (bool direct : {true, false}) {
    if (direct)
      set_matmul_thresholds({1 << 20, 1 << 20});
    else
      set_matmul_thresholds({1, 1});
    for (int64_t T = 1; T <= 9; ++T) {
      const std::vector<float> x = random_activations(T, cols, static_cast<uint32_t>(T * 7 + direct));
      std::vector<float> y(static_cast<size_t>(T * w.rows));
      packed_matmul(w, x.data(), T, nullptr, y.data());
      for (int64_t t = 0; t < T; ++t)
        for (int64_t r = 0; r < w.rows; ++r) {
          double exact = 0, abs_sum = 0, bound = 0;
          for (int64_t b = 0; b < cols / block; ++b) {
            double amax = 0, wsum = 0;
            for (int64_t j = b * block; j < (b + 1) * block; ++j) {
              const double xj = x[t * cols + j], wj = wd[r * cols + j];
              amax = std::max(amax, std::abs(xj));
              wsum += std::abs(wj);
              exact += xj * wj;
              abs_sum += std::abs(xj) * (std::abs(wj) + 2 * std::abs(off[r][j]));
            }
            bound += c * amax * wsum;
            if (q8_1) bound += std::abs(off[r][b * block]) * (0x1p-10 * 32 * amax + 0x1p-25);
          }
          bound += (cols + 8) * kU * (abs_sum + bound);
          const double err = std::abs(y[t * w.rows + r] - exact);
          ASSERT_LE(err, bound) << name_of(w.dtype) << " row " << r << " of T=" << T << (direct ? " direct" : " tiles");
          worst = std::max(worst, err / bound);
        }
    }
  }
  std::printf("%s on %s: largest error / bound %.3f\n", name_of(w.dtype).c_str(), kernel_isa_name(GetParam().isa),
              worst);
}

TEST_P(BlockKernel, GivesEachRowOfABatchTheBitsItGetsAlone) {
  const PackedMatrix w = matrix();
  set_matmul_thresholds({1 << 20, 1 << 20});  // the direct kernels at every batch size
  for (int64_t T = 2; T <= 9; ++T) {
    const std::vector<float> x = random_activations(T, w.cols, static_cast<uint32_t>(100 + T));
    std::vector<float> batch(static_cast<size_t>(T * w.rows)), alone(static_cast<size_t>(w.rows));
    packed_matmul(w, x.data(), T, nullptr, batch.data());
    for (int64_t t = 0; t < T; ++t) {
      packed_matmul(w, x.data() + t * w.cols, 1, nullptr, alone.data());
      ASSERT_EQ(std::memcmp(alone.data(), batch.data() + t * w.rows, alone.size() * sizeof(float)), 0)
          << "row " << t << " of " << T;
    }
  }
}

TEST_P(BlockKernel, IsTheSameBitsAsThePortableKernelOrWithinItsBound) {
  // Where a SIMD kernel exists it repeats the portable kernel's arithmetic: integer sums per
  // block, then the same fp32 steps in the same order, so the bits are equal.
  const PackedMatrix w = matrix();
  set_matmul_thresholds({1 << 20, 1 << 20});
  for (int64_t T : {1, 3, 4, 9}) {
    const std::vector<float> x = random_activations(T, w.cols, static_cast<uint32_t>(200 + T));
    std::vector<float> mine(static_cast<size_t>(T * w.rows)), portable(mine.size());
    packed_matmul(w, x.data(), T, nullptr, mine.data());
    force_kernel_isa(KernelIsa::portable);
    packed_matmul(w, x.data(), T, nullptr, portable.data());
    force_kernel_isa(GetParam().isa);
    EXPECT_EQ(std::memcmp(mine.data(), portable.data(), mine.size() * sizeof(float)), 0) << "T=" << T;
  }
}

INSTANTIATE_TEST_SUITE_P(LlamaK, BlockKernel, ::testing::ValuesIn(kernel_cases()),
                         [](const ::testing::TestParamInfo<KernelCase>& info) {
                           return name_of(info.param.type) + "_" + kernel_isa_name(info.param.isa);
                         });

// ---- batches (prefill) on the default thresholds: every block type, quantized here ----------

// Weights quantized by the type's own quantizer from random values: 37 rows (odd, not a
// multiple of the tiles); 41 blocks of 32 per row (not a multiple of the 8-block groups) or 5
// super-blocks of 256.
struct BatchCase {
  DType type;
  KernelIsa isa;
};

std::vector<BatchCase> batch_cases() {
  std::vector<BatchCase> out;
  std::vector<DType> types = {DType::Q8_0, DType::Q4_0};
  types.insert(types.end(), kNewTypes.begin(), kNewTypes.end());
  for (DType t : types)
    for (KernelIsa isa : {KernelIsa::portable, KernelIsa::avx2, KernelIsa::avx512vnni}) out.push_back({t, isa});
  return out;
}

class BatchKernel : public ::testing::TestWithParam<BatchCase> {
 protected:
  void SetUp() override {
    if (!kernel_isa_supported(GetParam().isa)) GTEST_SKIP() << "this CPU has no " << kernel_isa_name(GetParam().isa);
    force_kernel_isa(GetParam().isa);
    at::set_num_threads(2);
    const TypeTraits& tt = type_traits(GetParam().type);
    cols_ = tt.block_elems == 256 ? 5 * 256 : 41 * 32;
    std::vector<float> values = random_activations(kRows, cols_, 7);
    for (float& v : values) v *= 0.05f;
    bytes_.resize(dtype_row_bytes(GetParam().type, cols_) * kRows);
    quantize(GetParam().type, values.data(), bytes_.data(), kRows * cols_);
  }
  void TearDown() override {
    reset_kernel_isa();
    reset_matmul_thresholds();
  }
  PackedMatrix matrix() const { return {GetParam().type, kRows, cols_, bytes_.data()}; }

  static constexpr int64_t kRows = 37;
  int64_t cols_ = 0;
  std::vector<uint8_t> bytes_;
};

TEST_P(BatchKernel, GivesEachRowOfAPromptBatchTheBitsItGetsAloneAtDefaultThresholds) {
  const PackedMatrix w = matrix();
  for (int64_t T : {1, 2, 7, 33, 257}) {
    if (GetParam().isa == KernelIsa::avx2) {
      ASSERT_TRUE(packed_matmul_rows_independent(w.dtype, T)) << "T=" << T;
    }
    if (!packed_matmul_rows_independent(w.dtype, T)) continue;  // portable: BLAS tiles from T = 2
    const std::vector<float> x = random_activations(T, w.cols, static_cast<uint32_t>(300 + T));
    std::vector<float> batch(static_cast<size_t>(T * w.rows)), alone(static_cast<size_t>(w.rows));
    const std::vector<float> bias = random_activations(1, w.rows, 9);
    packed_matmul(w, x.data(), T, bias.data(), batch.data());
    for (int64_t t = 0; t < T; ++t) {
      packed_matmul(w, x.data() + t * w.cols, 1, bias.data(), alone.data());
      ASSERT_EQ(std::memcmp(alone.data(), batch.data() + t * w.rows, alone.size() * sizeof(float)), 0)
          << name_of(w.dtype) << " row " << t << " of T=" << T;
    }
  }
}

TEST_P(BatchKernel, PromptBatchIsThePortableKernelsBitsOrWithinTheRoundingBound) {
  // The K and legacy formats repeat the portable arithmetic exactly; Q8_0 / Q4_0 sum 8 fp32
  // lanes (as llama.cpp's AVX2 path) where the portable kernel sums in order, so they agree
  // to rounding only.
  const PackedMatrix w = matrix();
  const bool exact = w.dtype != DType::Q8_0 && w.dtype != DType::Q4_0;
  set_matmul_thresholds({1 << 20, 1 << 20});  // the portable kernel's direct path too
  for (int64_t T : {2, 33, 257}) {
    const std::vector<float> x = random_activations(T, w.cols, static_cast<uint32_t>(400 + T));
    std::vector<float> mine(static_cast<size_t>(T * w.rows)), portable(mine.size());
    packed_matmul(w, x.data(), T, nullptr, mine.data());
    force_kernel_isa(KernelIsa::portable);
    packed_matmul(w, x.data(), T, nullptr, portable.data());
    force_kernel_isa(GetParam().isa);
    if (exact) {
      ASSERT_EQ(std::memcmp(mine.data(), portable.data(), mine.size() * sizeof(float)), 0) << "T=" << T;
    } else {
      for (size_t i = 0; i < mine.size(); ++i)
        ASSERT_NEAR(mine[i], portable[i], 1e-4 * (1 + std::abs(portable[i]))) << "output " << i << " of T=" << T;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Quantized, BatchKernel, ::testing::ValuesIn(batch_cases()),
                         [](const ::testing::TestParamInfo<BatchCase>& info) {
                           return name_of(info.param.type) + "_" + kernel_isa_name(info.param.isa);
                         });

// The kernels above run on every instruction set the table gives a kernel of its own: check
// that AVX2 has one for every block format (else its cases would test the portable fallback).
TEST(BlockFormats, EveryBlockFormatHasItsOwnAvx2Kernel) {
  for (DType t : kNewTypes) {
    const TypeTraits& tt = type_traits(t);
    const int avx2 = static_cast<int>(KernelIsa::avx2), portable = static_cast<int>(KernelIsa::portable);
    EXPECT_NE(tt.gemm_q[avx2], nullptr) << name_of(t);
    EXPECT_NE(tt.gemm_q[avx2], tt.gemm_q[portable]) << name_of(t);
  }
}

// ---- the dequantized tensors against the F16 model they were made from -----------------------

TEST(BlockFormats, DequantizedTensorsAreTheF16ModelsUpToTheFormatsRounding) {
  // Relative RMS error of the whole tensor, loosest for 2 bits; a decoder that put a value in
  // the wrong place or used a wrong scale gives about 1.4 (two unrelated Gaussians).
  const std::map<DType, double> limit = {{DType::Q2_K, 0.45}, {DType::Q3_K, 0.25},  {DType::Q4_K, 0.12},
                                         {DType::Q5_K, 0.06}, {DType::Q6_K, 0.03},  {DType::Q4_1, 0.12},
                                         {DType::Q5_0, 0.06}, {DType::Q5_1, 0.06},  {DType::IQ4_NL, 0.12},
                                         {DType::IQ4_XS, 0.12}, {DType::Q8_0, 0.01}, {DType::F32, 1e-6},
                                         {DType::F16, 1e-6}};
  auto f16 = open_checkpoint(file_of("f16"));
  std::map<DType, double> worst;
  for (const auto& kind : kFiles) {
    auto ckpt = open_checkpoint(file_of(kind));
    for (const auto& name : ckpt->tensor_names()) {
      const TensorView v = ckpt->tensor(name), ref = f16->tensor(name);
      ASSERT_EQ(v.shape, ref.shape) << name;
      std::vector<float> a(static_cast<size_t>(v.numel())), b(a.size());
      dequantize(v.dtype, v.data, a.data(), v.numel());
      dequantize(ref.dtype, ref.data, b.data(), ref.numel());
      double num = 0, den = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
      }
      const double rel = std::sqrt(num / std::max(den, 1e-30));
      ASSERT_TRUE(limit.count(v.dtype)) << name << " has type " << name_of(v.dtype);
      EXPECT_LE(rel, limit.at(v.dtype)) << kind << ": " << name << " (" << name_of(v.dtype) << ")";
      worst[v.dtype] = std::max(worst[v.dtype], rel);
    }
  }
  for (const auto& [type, rel] : worst) std::printf("%-7s relative RMS error vs F16 up to %.4f\n", name_of(type).c_str(), rel);
  for (DType t : kNewTypes) EXPECT_TRUE(worst.count(t)) << "no " << name_of(t) << " tensor seen";
}

TEST(BlockFormats, UnknownTypeIsRefusedNamingTheType) {
  EXPECT_EQ(find_type_traits(16), nullptr);  // IQ2_XXS
  try {
    type_traits(static_cast<DType>(16));
    FAIL() << "IQ2_XXS accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("IQ2_XXS"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Q4_K"), std::string::npos) << e.what();
  }
}

TEST(BlockFormats, RowBytesFollowTheTable) {
  EXPECT_EQ(dtype_row_bytes(DType::Q4_K, 4096), 16u * 144);
  EXPECT_EQ(dtype_row_bytes(DType::Q6_K, 256), 210u);
  EXPECT_EQ(dtype_row_bytes(DType::Q2_K, 512), 168u);
  EXPECT_EQ(dtype_row_bytes(DType::Q3_K, 256), 110u);
  EXPECT_EQ(dtype_row_bytes(DType::Q5_K, 256), 176u);
  EXPECT_EQ(dtype_row_bytes(DType::IQ4_XS, 256), 136u);
  EXPECT_EQ(dtype_row_bytes(DType::Q4_1, 64), 40u);
  EXPECT_EQ(dtype_row_bytes(DType::Q5_0, 32), 22u);
  EXPECT_EQ(dtype_row_bytes(DType::Q5_1, 32), 24u);
  EXPECT_EQ(dtype_row_bytes(DType::IQ4_NL, 32), 18u);
  EXPECT_THROW(dtype_row_bytes(DType::Q4_K, 128), std::invalid_argument);
  // Every tensor of every llama-k file: the bytes the table gives it reach exactly to the next
  // tensor in the file, up to GGUF's alignment (32), and the last one to the end of the file.
  for (const auto& kind : kFiles) {
    auto ckpt = open_checkpoint(file_of(kind));
    std::vector<std::pair<const uint8_t*, size_t>> spans;
    for (const auto& name : ckpt->tensor_names()) {
      const TensorView v = ckpt->tensor(name);
      spans.push_back({v.data, dtype_row_bytes(v.dtype, v.shape.back()) * (v.numel() / v.shape.back())});
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 0; i + 1 < spans.size(); ++i) {
      const auto gap = static_cast<size_t>(spans[i + 1].first - spans[i].first);
      EXPECT_GE(gap, spans[i].second) << kind << " tensor " << i;
      EXPECT_LT(gap, spans[i].second + 32) << kind << " tensor " << i;
    }
  }
}

// ---- the whole model against llama.cpp -------------------------------------------------------

struct ModelCase {
  std::string kind;       // llama-k-<kind>.gguf
  std::string prompt;     // expected/llama-k-<kind>.<prompt>.json
  KernelIsa isa;
};
std::vector<ModelCase> model_cases() {
  std::vector<ModelCase> out;
  for (const auto& kind : kFiles)
    for (const char* prompt : {"once-upon-a-time", "the-cat-sat-on-the-mat"})
      for (KernelIsa isa : {KernelIsa::portable, best_kernel_isa()}) {
        out.push_back({kind, prompt, isa});
        if (isa == best_kernel_isa()) break;
      }
  return out;
}

class LlamaK : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    force_kernel_isa(GetParam().isa);
    at::set_num_threads(2);
  }
  void TearDown() override {
    reset_kernel_isa();
    reset_matmul_thresholds();
  }
  std::string reference_name() const { return "llama-k-" + GetParam().kind + "." + GetParam().prompt; }
  // Top-5 logits and logsumexp within this fraction of the step's logit range.
  double tolerance() const { return GetParam().kind == "f16" ? 1e-3 : 2e-2; }

  // The logits at every reference step, the prompt and the reference's tokens fed in one pass
  // through the direct kernels (each row as it would be alone): [steps, vocab].
  at::Tensor teacher_forced_logits(const test::Reference& ref) const {
    set_matmul_thresholds({1 << 20, 1 << 20});
    std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(file_of(GetParam().kind));
    auto model = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
    auto cache = model->new_cache(ckpt->config().n_ctx);
    std::vector<int64_t> ids(ref.prompt_tokens.begin(), ref.prompt_tokens.end());
    for (size_t i = 0; i + 1 < ref.steps.size(); ++i) ids.push_back(ref.steps[i].token);
    const at::Tensor logits = model->forward(at::tensor(ids, at::kLong), 0, *cache, /*all_logits=*/true);
    reset_matmul_thresholds();
    return logits.narrow(0, static_cast<int64_t>(ref.prompt_tokens.size()) - 1, static_cast<int64_t>(ref.steps.size()))
      .contiguous();
  }
};

TEST_P(LlamaK, TeacherForcedTopLogitsAndLogsumexpMatchLlamaCpp) {
  const auto ref = test::load_reference(reference_name());
  const at::Tensor logits = teacher_forced_logits(ref);
  const int64_t vocab = logits.size(-1);
  double worst = 0;
  for (size_t i = 0; i < ref.steps.size(); ++i) {
    const float* l = logits.data_ptr<float>() + static_cast<int64_t>(i) * vocab;
    const double range = *std::max_element(l, l + vocab) - *std::min_element(l, l + vocab);
    const double tol = tolerance() * range;
    for (const auto& [id, value] : ref.steps[i].top5) {
      EXPECT_NEAR(l[id], value, tol) << "step " << i << " token " << id;
      worst = std::max(worst, std::abs(l[id] - value) / range);
    }
    EXPECT_NEAR(test::logsumexp(l, static_cast<size_t>(vocab)), ref.steps[i].logsumexp, tol) << "step " << i;
  }
  std::printf("%s (%s): largest |logit - reference| / logit range %.2e over %zu steps\n", reference_name().c_str(),
              kernel_isa_name(GetParam().isa), worst, ref.steps.size());
}

// Greedy decoding (prompt, then a step per token) gives the reference's tokens up to its first
// near-tie (top-2 gap below 0.02, models README), or up to the first step whose top two our
// teacher-forced logits, which the test above holds within its tolerance, rank the other way:
// there the reference's choice is within that tolerance of a flip (llama-k-q5_1: a 0.067 gap,
// our logit of its choice 0.1 lower). Before that step every token is also the argmax of our
// teacher-forced logits: a prompt and its steps give the one-pass bits.
TEST_P(LlamaK, GreedyTokensMatchLlamaCppUpToTheFirstNearTie) {
  const auto ref = test::load_reference(reference_name());
  const at::Tensor forced = teacher_forced_logits(ref);
  size_t checked = 0;
  while (checked < ref.steps.size()) {
    const auto& top5 = ref.steps[checked].top5;
    if (top5.size() >= 2 && std::abs(top5[0].second - top5[1].second) < 0.02) break;
    const at::Tensor ours = forced[static_cast<int64_t>(checked)];
    if (top5.size() >= 2 && ours[top5[1].first].item<float>() > ours[top5[0].first].item<float>()) {
      std::printf("step %zu: our teacher-forced logits rank the reference's top two the other way (gap %.4f)\n",
                  checked, top5[0].second - top5[1].second);
      break;
    }
    ++checked;
  }
  LocalSession session(open_checkpoint(file_of(GetParam().kind)));
  SamplingOptions greedy;
  greedy.temperature = 0;
  const auto tokens = session.generate(ref.prompt_tokens, static_cast<int64_t>(checked) + 1, greedy, /*eos=*/-1);
  for (size_t i = 0; i < checked; ++i) {
    ASSERT_EQ(tokens.at(i), ref.steps[i].token) << "step " << i;
    EXPECT_EQ(tokens.at(i), forced[static_cast<int64_t>(i)].argmax().item<int64_t>()) << "step " << i;
  }
  // Beyond the tie the reference's choice is one of near-equals; ours must be one of its top 2.
  if (checked < ref.steps.size()) {
    const auto& top5 = ref.steps[checked].top5;
    EXPECT_TRUE(tokens.at(checked) == top5[0].first || tokens.at(checked) == top5[1].first) << "step " << checked;
  }
  std::printf("%s: %zu greedy tokens equal before the first near-tie\n", reference_name().c_str(), checked);
}

INSTANTIATE_TEST_SUITE_P(Files, LlamaK, ::testing::ValuesIn(model_cases()),
                         [](const ::testing::TestParamInfo<ModelCase>& info) {
                           return test::param_name(info.param.kind + "_" + info.param.prompt + "_" +
                                                   kernel_isa_name(info.param.isa));
                         });

}  // namespace
}  // namespace troupe
