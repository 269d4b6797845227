// Matrix products on weights kept in their checkpoint formats (models/quant_matmul.h): for
// Q8_0, Q4_0, F16 and BF16, on every instruction set this CPU has (the portable fallback
// included), through the direct kernels and through the fp32-tile path, they equal the fp32
// product of the dequantized weights within a bound derived from the formats; embedding rows
// equal the dequantized rows; and the model's weight matrices stay in the file's bytes.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "models/format/checkpoint.h"
#include "models/quant/quant_formats.h"
#include "models/quant/quant_kernels.h"
#include "models/quant/quant_matmul.h"
#include "models/arch/stage_model.h"
#include "models/arch/weights.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

// ---- the error bound --------------------------------------------------------------------------
//
// fp32 unit roundoff.
constexpr double kU = 1.0 / (1 << 24);
// Q8_0 / Q4_0 products round each activation block b of 32 to Q8_0 first: d = amax_b / 127,
// q = round(x / d) so |x - d q| <= d / 2, and the stored scale is d rounded to fp16,
// d16 = d (1 + e) with |e| <= 2^-11, which moves d16 q by at most 127 d 2^-11. So
//   |x~ - x| <= amax_b (0.5 + 127 * 2^-11) / 127 = 0.0044254 amax_b
// (0.00443 also covers the fp32 rounding of d and 1/d; d is assumed in fp16's normal range,
// amax_b >= 127 * 2^-14, which all data here is), and for one output
//   |y - y_fp32| <= 0.00443 * sum_b amax_b * sum_{j in b} |w_j|        =: B
// which is 0.00443 sum |x||w| with each |x_j| replaced by its block's largest |x| (for Gaussian
// activations about 0.014 sum |x||w|: the largest of 32 |x| is about 3 times their mean).
// The rest is fp32 arithmetic: the block dot products are exact integers, then at most
// (blocks + 8) roundings per output for the direct kernels and at most cols + 8 for the tiled
// BLAS path, each relative to sum |x~||w|:
//   tolerance = B + (cols + 8) u (sum |x||w| + B).
// F16 / BF16 keep the activations in fp32: tolerance = (cols + 8) u sum |x||w|.
constexpr double kActivationRounding = 0.00443;

bool quantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }

std::string name_of(DType t) { return dtype_name(static_cast<uint32_t>(t)); }

// Gaussian values with row scales spread over two orders of magnitude and a few 8x outliers,
// as trained weights and activations have.
std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> log_scale(-2.3f, 2.3f);
  std::vector<float> m(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = std::exp(log_scale(gen));
    for (int64_t j = 0; j < cols; ++j) m[r * cols + j] = scale * normal(gen) * ((r * cols + j) % 97 == 5 ? 8.0f : 1.0f);
  }
  return m;
}

struct Weights {
  DType dtype;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;  // the matrix in `dtype`, as a checkpoint holds it
  at::Tensor dequantized;      // fp32 [rows, cols] (exactly representable)

  PackedMatrix packed() const { return {dtype, rows, cols, bytes.data()}; }
};

Weights make_weights(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
  Weights w{dtype, rows, cols, std::vector<uint8_t>(dtype_row_bytes(dtype, cols) * rows), at::empty({rows, cols})};
  const std::vector<float> values = random_matrix(rows, cols, seed);
  quantize(dtype, values.data(), w.bytes.data(), rows * cols);
  dequantize(dtype, w.bytes.data(), w.dequantized.data_ptr<float>(), rows * cols);
  return w;
}

// Activations [T, cols]; row 0's first block is all zeros (a zero Q8_0 scale).
at::Tensor make_activations(int64_t T, int64_t cols, uint32_t seed) {
  std::vector<float> values = random_matrix(T, cols, seed);
  for (int j = 0; j < std::min<int64_t>(32, cols); ++j) values[j] = 0;
  return at::tensor(values).view({T, cols});
}

at::Tensor run(const Weights& w, const at::Tensor& x, const at::Tensor& bias) {
  at::Tensor y = at::empty({x.size(0), w.rows});
  packed_matmul(w.packed(), x.data_ptr<float>(), x.size(0), bias.defined() ? bias.data_ptr<float>() : nullptr,
                y.data_ptr<float>());
  return y;
}

// Largest |got - expected| / tolerance over all outputs (must be <= 1).
double worst_ratio(const at::Tensor& got, const at::Tensor& expected, const at::Tensor& tolerance) {
  const at::Tensor err = (got.to(at::kDouble) - expected).abs();
  return (err / tolerance.clamp_min(std::numeric_limits<double>::min())).max().item<double>();
}

// ---- instruction set and path selection for one scope ---------------------------------------

std::vector<KernelIsa> supported_isas() {
  std::vector<KernelIsa> isas;
  for (KernelIsa isa : {KernelIsa::portable, KernelIsa::avx2, KernelIsa::avx512vnni})
    if (kernel_isa_supported(isa)) isas.push_back(isa);
  return isas;
}

struct ForcedIsa {
  explicit ForcedIsa(KernelIsa isa) { force_kernel_isa(isa); }
  ~ForcedIsa() { reset_kernel_isa(); }
};

enum class Path { direct, tiled };
struct ForcedPath {
  explicit ForcedPath(Path p) {
    const int64_t t = p == Path::direct ? std::numeric_limits<int64_t>::max() : 1;
    set_matmul_thresholds({t, t});
  }
  ~ForcedPath() { reset_matmul_thresholds(); }
};

// ---- products ------------------------------------------------------------------------------

struct Case {
  DType dtype;
  KernelIsa isa;
};
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return name_of(info.param.dtype) + "_" + kernel_isa_name(info.param.isa);
}
std::vector<Case> all_cases(std::vector<DType> dtypes) {
  std::vector<Case> cases;
  for (DType t : dtypes)
    for (KernelIsa isa : {KernelIsa::portable, KernelIsa::avx2, KernelIsa::avx512vnni}) cases.push_back({t, isa});
  return cases;
}

class PackedMatmul : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!kernel_isa_supported(GetParam().isa)) GTEST_SKIP() << "this CPU has no " << kernel_isa_name(GetParam().isa);
    at::set_num_threads(2);
  }
};

TEST_P(PackedMatmul, EqualsDequantizedFp32MatmulWithinTheActivationRoundingBound) {
  const DType dtype = GetParam().dtype;
  const ForcedIsa isa(GetParam().isa);
  double worst = 0, worst_rel = 0;
  // F16 / BF16 rows may have any length: 172 is stories260K's feed-forward width.
  const std::vector<int64_t> widths = quantized(dtype) ? std::vector<int64_t>{32, 96, 4128}
                                                       : std::vector<int64_t>{32, 96, 172, 4128};
  for (int64_t cols : widths) {
    for (int64_t rows : {1, 7, 33, 4097}) {
      const Weights w = make_weights(dtype, rows, cols, static_cast<uint32_t>(rows * 7919 + cols));
      const at::Tensor x_all = make_activations(64, cols, static_cast<uint32_t>(cols + 1));
      const at::Tensor bias = rows == 33 ? at::randn({rows}) : at::Tensor();  // some layers have a bias
      const at::Tensor wd = w.dequantized.to(at::kDouble);
      // Reference and bounds for all 64 rows at once; T rows are the first T.
      const at::Tensor xd = x_all.to(at::kDouble);
      at::Tensor expected = xd.mm(wd.t());
      if (bias.defined()) expected = expected + bias.to(at::kDouble);
      const at::Tensor abs_sum = xd.abs().mm(wd.abs().t());
      at::Tensor tolerance = (cols + 8) * kU * abs_sum;
      if (quantized(dtype)) {
        const at::Tensor block_max = xd.abs().view({64, cols / 32, 32}).amax(-1, true).expand({64, cols / 32, 32});
        const at::Tensor b = kActivationRounding * block_max.reshape({64, cols}).mm(wd.abs().t());
        tolerance = b + (cols + 8) * kU * (abs_sum + b);
      }
      for (int64_t T : {1, 3, 17, 64}) {
        for (Path path : {Path::direct, Path::tiled}) {
          SCOPED_TRACE("W [" + std::to_string(rows) + ", " + std::to_string(cols) + "], T " + std::to_string(T) +
                       (path == Path::direct ? ", direct kernels" : ", fp32 tiles"));
          const ForcedPath forced(path);
          const at::Tensor x = x_all.narrow(0, 0, T).contiguous();
          const at::Tensor y = run(w, x, bias);
          const double ratio = worst_ratio(y, expected.narrow(0, 0, T), tolerance.narrow(0, 0, T));
          EXPECT_LE(ratio, 1.0);
          worst = std::max(worst, ratio);
          const at::Tensor rel = (y.to(at::kDouble) - expected.narrow(0, 0, T)).abs() / abs_sum.narrow(0, 0, T);
          worst_rel = std::max(worst_rel, rel.max().item<double>());
        }
      }
    }
  }
  std::printf("%s on %s: largest error %.3g of the bound, %.3g of sum|x||w|\n", name_of(dtype).c_str(),
              kernel_isa_name(GetParam().isa), worst, worst_rel);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, PackedMatmul,
                         ::testing::ValuesIn(all_cases({DType::Q8_0, DType::Q4_0, DType::F16, DType::BF16})),
                         case_name);

// A stage batches several sessions' rows into one product (models/step_batch.h): on the
// direct path every row must come out with exactly the bits it gets alone.
TEST_P(PackedMatmul, DirectKernelsGiveEachRowOfABatchTheBitsItGetsAlone) {
  const ForcedIsa isa(GetParam().isa);
  const ForcedPath direct(Path::direct);
  const bool blocks = GetParam().dtype == DType::Q8_0 || GetParam().dtype == DType::Q4_0;
  for (int64_t cols : blocks ? std::vector<int64_t>{64, 2048} : std::vector<int64_t>{172, 2048}) {
    const Weights w = make_weights(GetParam().dtype, 37, cols, 5);
    const at::Tensor bias = at::randn({37});
    const at::Tensor x = make_activations(17, cols, 6);
    for (int64_t T : {2, 3, 5, 8, 17}) {
      const at::Tensor together = run(w, x.narrow(0, 0, T).contiguous(), bias);
      for (int64_t t = 0; t < T; ++t)
        EXPECT_TRUE(at::equal(together[t], run(w, x.narrow(0, t, 1).contiguous(), bias)[0]))
          << "cols " << cols << ", row " << t << " of " << T;
    }
  }
}

// The batch kernels cut a product into tiles of weight rows, slices of the columns and groups
// of 8 activation rows, and the threads take chunks of rows in turn: a matrix of several
// tiles, columns of several slices plus blocks after the last group of 8, and T of two groups
// plus a partial one, on 2 threads, still gives every row the bits it gets alone.
TEST_P(PackedMatmul, BatchOfSeveralTilesSlicesAndRowGroupsGivesEachRowItsBitsAlone) {
  const ForcedIsa isa(GetParam().isa);
  const ForcedPath direct(Path::direct);
  const Weights w = make_weights(GetParam().dtype, 403, 4128, 21);
  const at::Tensor bias = at::randn({403});
  const int64_t T = 19;
  const at::Tensor x = make_activations(T, 4128, 22);
  const at::Tensor together = run(w, x, bias);
  for (int64_t t = 0; t < T; ++t)
    EXPECT_TRUE(at::equal(together[t], run(w, x.narrow(0, t, 1).contiguous(), bias)[0])) << "row " << t << " of " << T;
}

// With the activations rounded to Q8_0 exactly as quant_formats rounds them, the direct
// kernels are exact integer block products summed in fp32: at most blocks + 8 roundings.
class QuantizedKernel : public PackedMatmul {};

TEST_P(QuantizedKernel, IsExactArithmeticOnQ8_0RoundedActivations) {
  const DType dtype = GetParam().dtype;
  const ForcedIsa isa(GetParam().isa);
  const ForcedPath direct(Path::direct);
  for (int64_t cols : {32, 96, 4128}) {
    const int64_t rows = 33, T = 17;
    Weights w = make_weights(dtype, rows, cols, 11);
    if (dtype == DType::Q8_0) {  // -128, which the quantizer never writes but a file may hold
      for (size_t block = 0; block < w.bytes.size() / 34; block += 3) w.bytes[34 * block + 2 + block % 32] = 0x80;
      dequantize(dtype, w.bytes.data(), w.dequantized.data_ptr<float>(), rows * cols);
    }
    const at::Tensor x = make_activations(T, cols, 12);
    // x rounded through the Q8_0 block format.
    std::vector<uint8_t> xq(dtype_row_bytes(DType::Q8_0, cols) * T);
    quantize(DType::Q8_0, x.data_ptr<float>(), xq.data(), T * cols);
    at::Tensor x_rounded = at::empty({T, cols});
    dequantize(DType::Q8_0, xq.data(), x_rounded.data_ptr<float>(), T * cols);
    const at::Tensor xd = x_rounded.to(at::kDouble), wd = w.dequantized.to(at::kDouble);
    const at::Tensor expected = xd.mm(wd.t());
    const at::Tensor tolerance = (cols / 32 + 8) * kU * xd.abs().mm(wd.abs().t());
    SCOPED_TRACE("cols " + std::to_string(cols));
    EXPECT_LE(worst_ratio(run(w, x, at::Tensor()), expected, tolerance), 1.0);
  }
}

INSTANTIATE_TEST_SUITE_P(BlockFormats, QuantizedKernel, ::testing::ValuesIn(all_cases({DType::Q8_0, DType::Q4_0})),
                         case_name);

TEST(ActivationRounding, EveryInstructionSetRoundsLikeQuantFormatsIncludingHalves) {
  const int64_t cols = 4128;
  std::vector<float> x = random_matrix(1, cols, 5);
  // Block 1: max 127 so d = 1 and x / d = k + 0.5 exactly: halves must round away from zero.
  for (int j = 0; j < 32; ++j) x[32 + j] = j == 0 ? 127.0f : static_cast<float>(j - 16) + 0.5f;
  for (int j = 0; j < 32; ++j) x[64 + j] = 0;  // block 2: all zero
  std::vector<uint8_t> expected(dtype_row_bytes(DType::Q8_0, cols));
  quantize(DType::Q8_0, x.data(), expected.data(), cols);
  for (KernelIsa isa : supported_isas()) {
    const kernels::KernelTable& k = isa == KernelIsa::portable ? kernels::portable_kernels()
                                    : isa == KernelIsa::avx2   ? kernels::avx2_kernels()
                                                               : kernels::avx512vnni_kernels();
    std::vector<int8_t> q(cols + 64);
    int8_t* aligned = q.data() + (64 - reinterpret_cast<uintptr_t>(q.data()) % 64) % 64;
    std::vector<float> d(cols / 32);
    k.quantize_row_q8(x.data(), cols, aligned, d.data());
    int mismatches = 0;
    for (int64_t b = 0; b < cols / 32; ++b) {
      const uint8_t* block = expected.data() + 34 * b;
      uint16_t d16;
      std::memcpy(&d16, block, 2);
      mismatches += d[b] != fp16_to_fp32(d16);
      for (int j = 0; j < 32; ++j) mismatches += aligned[32 * b + j] != static_cast<int8_t>(block[2 + j]);
    }
    EXPECT_EQ(mismatches, 0) << kernel_isa_name(isa);
  }
}

TEST(ActivationRounding, EveryInstructionSetRoundsToQ8KLikeTheReferenceIncludingTiesAndSigns) {
  const int64_t cols = 8 * 256;
  std::vector<float> x = random_matrix(1, cols, 6);
  // Block 1: largest magnitude -127 first, so iscale = 1 and k + 0.5 ties round to even.
  for (int j = 0; j < 256; ++j) x[256 + j] = j == 0 ? -127.0f : static_cast<float>(j % 200 - 100) + 0.5f;
  for (int j = 0; j < 256; ++j) x[512 + j] = 0;  // block 2: all zero
  // Block 3: +a then -a of equal magnitude: the first one sets the sign of the scale.
  x[768 + 40] = 1000.0f;
  x[768 + 200] = -1000.0f;
  // Block 4: the same, the other way round, and the maximum in the last lane.
  x[1024 + 7] = -1000.0f;
  x[1024 + 255] = 1000.0f;
  for (int64_t b = 0; b < cols / 256; ++b) x[b * 256 + 3] *= 1e-30f;  // a subnormal-ish product
  struct Rounded {
    std::vector<int8_t> q;
    std::vector<float> d;
    std::vector<int16_t> bsums;
  };
  auto round = [&](const kernels::KernelTable& k) {
    Rounded r{std::vector<int8_t>(cols), std::vector<float>(cols / 256), std::vector<int16_t>(cols / 16)};
    k.quantize_row_q8_k(x.data(), cols, r.q.data(), r.d.data(), r.bsums.data());
    return r;
  };
  const Rounded expected = round(kernels::portable_kernels());
  EXPECT_EQ(expected.q[256 + 1], -98);  // -98.5: ties to even
  EXPECT_EQ(expected.q[256 + 2], -98);  // -97.5
  EXPECT_LT(expected.d[3], 0.0f);       // +1000 came first
  EXPECT_GT(expected.d[4], 0.0f);       // -1000 came first
  for (KernelIsa isa : supported_isas()) {
    const Rounded got = round(isa == KernelIsa::portable ? kernels::portable_kernels()
                              : isa == KernelIsa::avx2   ? kernels::avx2_kernels()
                                                         : kernels::avx512vnni_kernels());
    EXPECT_EQ(got.q, expected.q) << kernel_isa_name(isa);
    EXPECT_EQ(std::memcmp(got.d.data(), expected.d.data(), got.d.size() * sizeof(float)), 0) << kernel_isa_name(isa);
    EXPECT_EQ(got.bsums, expected.bsums) << kernel_isa_name(isa);
  }
}

// ---- embedding rows --------------------------------------------------------------------------

class PackedRows : public PackedMatmul {};

TEST_P(PackedRows, EqualTheDequantizedRows) {
  const ForcedIsa isa(GetParam().isa);
  const Weights w = make_weights(GetParam().dtype, 513, 96, 3);
  const std::vector<int64_t> ids = {0, 512, 7, 7, 256, 1};
  at::Tensor out = at::empty({static_cast<int64_t>(ids.size()), 96});
  packed_rows(w.packed(), ids.data(), static_cast<int64_t>(ids.size()), out.data_ptr<float>());
  EXPECT_TRUE(at::equal(out, w.dequantized.index_select(0, at::tensor(ids))));
  const int64_t bad = 513;
  EXPECT_THROW(packed_rows(w.packed(), &bad, 1, out.data_ptr<float>()), std::out_of_range);
}

TEST(HalfRows, EveryFiniteF16ValueConvertsExactlyOnEveryInstructionSet) {
  std::vector<uint16_t> all;
  for (uint32_t h = 0; h < 0x10000; ++h)
    if ((h & 0x7c00) != 0x7c00) all.push_back(static_cast<uint16_t>(h));  // skip inf / NaN
  const PackedMatrix w{DType::F16, 1, static_cast<int64_t>(all.size()), reinterpret_cast<const uint8_t*>(all.data())};
  at::Tensor expected = at::empty({w.cols});
  dequantize(DType::F16, w.data, expected.data_ptr<float>(), w.cols);
  for (KernelIsa isa : supported_isas()) {
    const ForcedIsa forced(isa);
    at::Tensor got = at::empty({w.cols});
    const int64_t id = 0;
    packed_rows(w, &id, 1, got.data_ptr<float>());
    EXPECT_TRUE(at::equal(got, expected)) << kernel_isa_name(isa);
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, PackedRows,
                         ::testing::ValuesIn(all_cases({DType::Q8_0, DType::Q4_0, DType::F16, DType::BF16})),
                         case_name);

// ---- the model's weights -----------------------------------------------------------------------

TEST(ModelWeights, QuantizedTokenEmbeddingStaysInTheFileAndLooksUpDequantizedRows) {
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(test::model_path("stories260K/stories260K-q4_0.gguf"));
  const TensorView view = ckpt->tensor("token_embd.weight");
  ASSERT_EQ(view.dtype, DType::Q4_0);
  const WeightMatrix table(ckpt, "token_embd.weight", 512, 64);
  EXPECT_EQ(table.packed().data, view.data);  // zero-copy: the mapped file's blocks
  EXPECT_EQ(table.bytes(), view.nbytes);
  const at::Tensor ids = at::tensor(std::vector<int64_t>{1, 511, 42, 42});
  at::Tensor all = at::empty({512, 64});
  dequantize(view.dtype, view.data, all.data_ptr<float>(), view.numel());
  EXPECT_TRUE(at::equal(table.rows(ids), all.index_select(0, ids)));
}

// A stage's weight_bytes() is what its weights occupy: the file's block bytes, not fp32.
TEST(ModelWeights, StageWeightBytesAreTheFileBytesOfItsTensors) {
  for (const char* file : {"stories260K/stories260K-q8_0.gguf", "stories260K/stories260K-q4_0.gguf",
                           "gpt2-tiny/gpt2-tiny-q8_0.gguf"}) {
    std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(test::model_path(file));
    size_t file_bytes = 0;
    for (const auto& name : ckpt->tensor_names()) file_bytes += ckpt->tensor(name).nbytes;
    const auto model = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
    EXPECT_EQ(model->weight_bytes(), file_bytes) << file;
  }
}

TEST(ModelWeights, F32WeightsGiveAtLinearBitForBit) {
  at::set_num_threads(2);
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(test::model_path("stories260K/stories260K.gguf"));
  const WeightMatrix w(ckpt, "blk.0.ffn_up.weight", 172, 64);
  const at::Tensor x = at::randn({5, 64});
  EXPECT_TRUE(at::equal(w.linear(x), at::linear(x, load_tensor(ckpt, "blk.0.ffn_up.weight"))));
}

}  // namespace
}  // namespace troupe
