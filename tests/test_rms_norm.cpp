// rms_norm (models/arch/layers.h): the bits of llama.cpp's recipe (each row's mean square
// summed in double, row by row; then x * scale * weight in fp32, two roundings), whichever
// thread count runs it and however many rows come together.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "models/arch/layers.h"

namespace troupe {
namespace {

// The recipe written with LibTorch's operators for the last step, as rms_norm was before it
// ran in one pass.
at::Tensor reference(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = 1;
  at::Tensor scale = at::empty(shape, x.options());
  const float* p = x.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t i = 0; i < d; ++i) sum += static_cast<double>(p[r * d + i]) * p[r * d + i];
    scale.data_ptr<float>()[r] = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(d)) + static_cast<float>(eps));
  }
  return x * scale * weight;
}

TEST(RmsNorm, GivesTheRecipesBitsOnAnyThreadCountAndShape) {
  const int previous = at::get_num_threads();
  at::manual_seed(7);
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{1, 2048}, {5, 64}, {129, 2048}, {37, 4, 128}}) {
      const at::Tensor x = at::randn(shape) * 3;
      const at::Tensor weight = at::randn({shape.back()});
      EXPECT_TRUE(at::equal(rms_norm(x, weight, 1e-5), reference(x, weight, 1e-5)))
          << threads << " threads, " << x.sizes();
    }
  }
  at::set_num_threads(previous);
}

// A row of a batch comes out with the bits it gets alone (a stage batches sessions' rows).
TEST(RmsNorm, EachRowOfABatchGetsTheBitsItGetsAlone) {
  at::manual_seed(8);
  const at::Tensor x = at::randn({33, 2048});
  const at::Tensor weight = at::randn({2048});
  const at::Tensor together = rms_norm(x, weight, 1e-6);
  for (int64_t r = 0; r < x.size(0); ++r)
    EXPECT_TRUE(at::equal(together[r], rms_norm(x.narrow(0, r, 1), weight, 1e-6)[0])) << "row " << r;
}

// Weights that are not one fp32 row per column (an fp16 or broadcast weight) still work.
TEST(RmsNorm, OtherWeightShapesAndTypesFollowLibTorchBroadcasting) {
  at::manual_seed(9);
  const at::Tensor x = at::randn({6, 64});
  const at::Tensor half_weight = at::randn({64}).to(at::kHalf);
  EXPECT_TRUE(at::equal(rms_norm(x, half_weight, 1e-5), reference(x, half_weight, 1e-5)));
  const at::Tensor row_weights = at::randn({6, 64});
  EXPECT_TRUE(at::equal(rms_norm(x, row_weights, 1e-5), reference(x, row_weights, 1e-5)));
}

}  // namespace
}  // namespace troupe
