// `troupe quantize` / `split --type`: the recipe picks llama.cpp's type for every tensor of
// the llama.cpp-made files; the files we write equal llama.cpp's tensor for tensor, follow the
// GGUF layout rules (checked by a reader written here from the spec), load in troupe and
// give logits close to the unquantized model's.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <fstream>
#include <map>
#include <set>

#include "models/arch/stage_model.h"
#include "models/convert/model_split.h"
#include "models/convert/quant_recipe.h"
#include "models/convert/quantize_model.h"
#include "models/convert/synthetic_model.h"
#include "models/arch/open_checkpoint.h"
#include "models/format/checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/quant/quantizers.h"
#include "models/quant/type_traits.h"
#include "tests/test_support.h"

namespace troupe {
namespace {

const char* kLlamaK[] = {"q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k", "q4_1", "q5_0", "q5_1", "iq4_nl", "iq4_xs"};

TEST(QuantRecipe, ChoosesLlamaCppsTypeForEveryTensorOfTheLlamaKFiles) {
  const auto f16 = open_checkpoint(test::model_path("llama-k/llama-k-f16.gguf"));
  const RecipeModelShape shape = recipe_model_shape(*f16);
  for (const char* type : kLlamaK) {
    GgufFile theirs(test::model_path(std::string("llama-k/llama-k-") + type + ".gguf"));
    const QuantRecipe& recipe = quant_recipe(type);
    EXPECT_EQ(theirs.get_int("general.file_type"), recipe.file_type) << type;
    for (const auto& t : theirs.tensors()) {
      const TensorView src = f16->tensor(t.name);
      EXPECT_EQ(recipe_tensor_type(recipe, t.name, src.shape, static_cast<uint32_t>(src.dtype), shape), t.ggml_type)
          << type << ": " << t.name;
    }
  }
}

TEST(QuantRecipe, ChoosesLlamaCppsTypesForStories260KIncludingFallbacksForOddRows) {
  const auto f32 = open_checkpoint(test::model_path("stories260K/stories260K.gguf"));
  const RecipeModelShape shape = recipe_model_shape(*f32);
  for (const char* type : {"q8_0", "q4_0"}) {
    GgufFile theirs(test::model_path(std::string("stories260K/stories260K-") + type + ".gguf"));
    for (const auto& t : theirs.tensors()) {
      const TensorView src = f32->tensor(t.name);
      EXPECT_EQ(recipe_tensor_type(quant_recipe(type), t.name, src.shape, 0, shape), t.ggml_type) << type << ": " << t.name;
    }
  }
}

TEST(QuantRecipe, UnknownNamesAreRefusedWithTheKnownOnes) {
  try {
    quant_recipe("q4_k_x");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("q4_k_m"), std::string::npos) << e.what();
  }
  EXPECT_EQ(quant_recipe("Q4_K_M").name, "q4_k_m");
}

// A GGUF reader written from the spec for this test alone: header, metadata (skipped by
// type), tensor directory; then the layout rules llama.cpp's loader relies on.
struct SpecTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type;
  uint64_t offset;
};
struct SpecFile {
  std::set<std::string> keys;
  std::vector<SpecTensor> tensors;
  uint64_t data_start = 0, size = 0;
};

SpecFile read_by_spec(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t o = 0;
  auto need = [&](size_t n) {
    if (o + n > d.size()) throw std::runtime_error(path + ": truncated at byte " + std::to_string(o));
  };
  auto u32 = [&] { need(4); uint32_t v; std::memcpy(&v, &d[o], 4); o += 4; return v; };
  auto u64 = [&] { need(8); uint64_t v; std::memcpy(&v, &d[o], 8); o += 8; return v; };
  auto str = [&] { const uint64_t n = u64(); need(n); std::string s(d.begin() + o, d.begin() + o + n); o += n; return s; };
  const size_t scalar_size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  std::function<void(uint32_t)> skip = [&](uint32_t t) {
    if (t == 8) { str(); return; }
    if (t == 9) {
      const uint32_t et = u32();
      const uint64_t n = u64();
      for (uint64_t i = 0; i < n; ++i) skip(et);
      return;
    }
    if (t > 12) throw std::runtime_error("bad metadata type");
    need(scalar_size[t]);
    o += scalar_size[t];
  };
  SpecFile f;
  f.size = d.size();
  EXPECT_EQ(u32(), 0x46554747u);  // "GGUF"
  EXPECT_EQ(u32(), 3u);
  const uint64_t n_tensors = u64(), n_kv = u64();
  for (uint64_t i = 0; i < n_kv; ++i) {
    f.keys.insert(str());
    skip(u32());
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    SpecTensor t;
    t.name = str();
    const uint32_t nd = u32();
    for (uint32_t k = 0; k < nd; ++k) t.ne.push_back(u64());
    t.type = u32();
    t.offset = u64();
    f.tensors.push_back(t);
  }
  f.data_start = (o + 31) / 32 * 32;  // general.alignment absent: 32
  return f;
}

void expect_valid_gguf(const std::string& path) {
  const SpecFile f = read_by_spec(path);
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& t : f.tensors) {
    const TypeTraits* q = find_type_traits(t.type);
    ASSERT_NE(q, nullptr) << t.name << " type " << t.type;
    ASSERT_EQ(t.ne[0] % q->block_elems, 0u) << t.name;
    uint64_t n = 1;
    for (auto e : t.ne) n *= e;
    EXPECT_EQ(t.offset % 32, 0u) << t.name << ": offset not aligned";
    spans.emplace_back(t.offset, n / q->block_elems * q->block_bytes);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 0; i + 1 < spans.size(); ++i) EXPECT_LE(spans[i].first + spans[i].second, spans[i + 1].first);
  EXPECT_LE(f.data_start + spans.back().first + spans.back().second, f.size) << "data beyond the end of the file";
  EXPECT_EQ(f.data_start % 32, 0u);
}

TEST(QuantizeModel, LlamaKF16ToEachLlamaCppTypeEqualsLlamaQuantizesFile) {
  at::set_num_threads(2);
  test::TempDir dir;
  for (const char* type : {"q4_k_m", "q5_k_m", "q3_k_m", "q2_k", "iq4_xs"}) {
    const std::string out = dir.file(std::string(type) + ".gguf");
    const QuantizeSummary s = quantize_model(test::model_path("llama-k/llama-k-f16.gguf"), quant_recipe(type), out);
    const std::string theirs_path = test::model_path(std::string("llama-k/llama-k-") + type + ".gguf");
    expect_valid_gguf(out);
    // Same metadata keys and the same tensor table (names, shapes, types) as llama.cpp's file.
    const SpecFile ours = read_by_spec(out), theirs = read_by_spec(theirs_path);
    EXPECT_EQ(ours.keys, theirs.keys) << type;
    std::map<std::string, std::pair<std::vector<uint64_t>, uint32_t>> table_ours, table_theirs;
    for (const auto& t : ours.tensors) table_ours[t.name] = {t.ne, t.type};
    for (const auto& t : theirs.tensors) table_theirs[t.name] = {t.ne, t.type};
    EXPECT_EQ(table_ours, table_theirs) << type;
    // And the same bytes in every tensor.
    std::ifstream a(out, std::ios::binary), b(theirs_path, std::ios::binary);
    std::map<std::string, uint64_t> their_offset;
    for (const auto& t : theirs.tensors) their_offset[t.name] = theirs.data_start + t.offset;
    for (size_t i = 0; i < ours.tensors.size(); ++i) {
      const auto& t = ours.tensors[i];
      const TypeTraits* q = find_type_traits(t.type);
      uint64_t n = 1;
      for (auto e : t.ne) n *= e;
      std::vector<char> x(n / q->block_elems * q->block_bytes), y(x.size());
      a.seekg(static_cast<std::streamoff>(ours.data_start + t.offset));
      a.read(x.data(), static_cast<std::streamsize>(x.size()));
      b.seekg(static_cast<std::streamoff>(their_offset[t.name]));
      b.read(y.data(), static_cast<std::streamsize>(y.size()));
      EXPECT_TRUE(x == y) << type << ": " << t.name << " differs from llama.cpp's";
    }
    std::printf("%s: %zu tensors, %.2f MB, equal to llama.cpp's file tensor for tensor\n", type, ours.tensors.size(),
                s.bytes_out / 1e6);
  }
}

// Logits for every position of prompt + reference continuation (teacher forcing).
at::Tensor forced_logits(const std::string& path, const test::Reference& ref) {
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(path);
  auto model = StageModel::load(ckpt, whole_model_spec(ckpt->config().n_layer));
  auto cache = model->new_cache(ckpt->config().n_ctx);
  std::vector<int64_t> ids(ref.prompt_tokens.begin(), ref.prompt_tokens.end());
  for (size_t i = 0; i + 1 < ref.steps.size(); ++i) ids.push_back(ref.steps[i].token);
  return model->forward(at::tensor(ids, at::kLong), 0, *cache, /*all_logits=*/true);
}

// Top-5 logits of the fp32 reference at every forced step, within `tol` of that step's
// logit range; returns the largest relative difference seen.
double compare_to_reference(const at::Tensor& logits, const test::Reference& ref, double tol) {
  double worst = 0;
  const int64_t first = static_cast<int64_t>(ref.prompt_tokens.size()) - 1;
  for (size_t s = 0; s < ref.steps.size(); ++s) {
    const at::Tensor row = logits[first + static_cast<int64_t>(s)];
    const double range = (row.max() - row.min()).item<double>();
    for (const auto& [id, logit] : ref.steps[s].top5) {
      const double diff = std::abs(row[id].item<double>() - logit) / range;
      worst = std::max(worst, diff);
      EXPECT_LT(diff, tol) << "step " << s << " token " << id;
    }
  }
  return worst;
}

TEST(QuantizeModel, Stories260KQuantizedHereRunsLikeLlamaCppsCopyAndCloseToF32) {
  at::set_num_threads(2);
  test::TempDir dir;
  const auto ref = test::load_reference("stories260K.once-upon-a-time");
  // Against the F32 model's reference, 60 forced steps: measured 0.0074 (Q8_0) and 0.078
  // (Q4_0, a 260K-parameter model with 64-wide rows) of the step's logit range.
  for (const auto& [type, tolerance] : {std::pair<const char*, double>{"q8_0", 0.01}, {"q4_0", 0.1}}) {
    const std::string out = dir.file(std::string(type) + ".gguf");
    quantize_model(test::model_path("stories260K/stories260K.gguf"), quant_recipe(type), out);
    expect_valid_gguf(out);
    const at::Tensor ours = forced_logits(out, ref);
    // llama.cpp's quantized copy holds the same bytes, so troupe computes the same logits.
    const at::Tensor theirs = forced_logits(test::model_path(std::string("stories260K/stories260K-") + type + ".gguf"), ref);
    EXPECT_TRUE(at::equal(ours, theirs)) << type;
    const double worst = compare_to_reference(ours, ref, tolerance);
    std::printf("%s: top-5 logits within %.4f of the logit range of the F32 reference\n", type, worst);
  }
}

TEST(QuantizeModel, HuggingFaceDirectoryInGivesTheSameFileAsTheGguf) {
  at::set_num_threads(2);
  test::TempDir dir;
  quantize_model(test::model_path("stories260K/hf"), quant_recipe("q8_0"), dir.file("hf.gguf"));
  quantize_model(test::model_path("stories260K/stories260K.gguf"), quant_recipe("q8_0"), dir.file("gguf.gguf"));
  const auto ref = test::load_reference("stories260K.once-upon-a-time");
  const at::Tensor a = forced_logits(dir.file("hf.gguf"), ref), b = forced_logits(dir.file("gguf.gguf"), ref);
  EXPECT_LT((a - b).abs().max().item<float>(), 1e-4);
  compare_to_reference(a, ref, 2e-2);
}

TEST(QuantizeModel, LlamaKQ4KMQuantizedHereMatchesTheReferenceOutputs) {
  at::set_num_threads(2);
  test::TempDir dir;
  quantize_model(test::model_path("llama-k/llama-k-f16.gguf"), quant_recipe("q4_k_m"), dir.file("q4_k_m.gguf"));
  for (const char* prompt : {"once-upon-a-time", "the-cat-sat-on-the-mat"}) {
    const auto ref = test::load_reference(std::string("llama-k-q4_k_m.") + prompt);
    const at::Tensor ours = forced_logits(dir.file("q4_k_m.gguf"), ref);
    EXPECT_TRUE(at::equal(ours, forced_logits(test::model_path("llama-k/llama-k-q4_k_m.gguf"), ref)));
    std::printf("q4_k_m %s: within %.4f of the logit range\n", prompt, compare_to_reference(ours, ref, 2e-2));
  }
}

TEST(QuantizeModel, SplitWithTypeWritesShardsHoldingTheQuantizedFilesTensors) {
  at::set_num_threads(2);
  test::TempDir dir;
  const std::string model = test::model_path("llama-k/llama-k-f16.gguf");
  quantize_model(model, quant_recipe("q4_k_m"), dir.file("whole.gguf"));
  const auto paths = write_stage_shards(model, even_split(4, 2), dir.path(), &quant_recipe("q4_k_m"));
  ASSERT_EQ(paths.size(), 2u);
  GgufFile whole(dir.file("whole.gguf"));
  std::set<std::string> seen;
  for (const auto& p : paths) {
    expect_valid_gguf(p);
    const SpecFile shard = read_by_spec(p), w = read_by_spec(dir.file("whole.gguf"));
    std::map<std::string, const SpecTensor*> in_whole;
    for (const auto& t : w.tensors) in_whole[t.name] = &t;
    std::ifstream a(p, std::ios::binary), b(dir.file("whole.gguf"), std::ios::binary);
    for (const auto& t : shard.tensors) {
      seen.insert(t.name);
      const SpecTensor* o = in_whole.at(t.name);
      ASSERT_EQ(t.type, o->type) << p << ": " << t.name;
      const TypeTraits* q = find_type_traits(t.type);
      uint64_t n = 1;
      for (auto e : t.ne) n *= e;
      std::vector<char> x(n / q->block_elems * q->block_bytes), y(x.size());
      a.seekg(static_cast<std::streamoff>(shard.data_start + t.offset));
      a.read(x.data(), static_cast<std::streamsize>(x.size()));
      b.seekg(static_cast<std::streamoff>(w.data_start + o->offset));
      b.read(y.data(), static_cast<std::streamsize>(y.size()));
      EXPECT_TRUE(x == y) << p << ": " << t.name;
    }
  }
  EXPECT_EQ(seen.size(), whole.tensors().size());
}

TEST(QuantizeModel, CommandShowsProgressAndWritesTheFile) {
  test::TempDir dir;
  const auto r = test::run_command({test::bin_path("troupe"), "quantize", "--model",
                                    test::model_path("stories260K/stories260K.gguf"), "--type", "q8_0", "--out",
                                    dir.file("q8.gguf"), "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("quantize: 100%"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("peak RSS"), std::string::npos) << r.err;
  GgufFile out(dir.file("q8.gguf")), theirs(test::model_path("stories260K/stories260K-q8_0.gguf"));
  EXPECT_EQ(out.tensors().size(), theirs.tensors().size());
  EXPECT_EQ(out.get_int("general.file_type"), 7);
  const auto bad = test::run_command({test::bin_path("troupe"), "quantize", "--model",
                                      test::model_path("stories260K/stories260K.gguf"), "--type", "q9_k", "--out",
                                      dir.file("x.gguf")});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("unknown quantization type 'q9_k'"), std::string::npos) << bad.err;
}

TEST(SynthModel, MixedTypeFollowsTheRecipe) {
  test::TempDir dir;
  SynthOptions o;
  o.config = preset_shape("tinyllama");
  o.config.n_layer = 2, o.config.n_embd = 256, o.config.n_ff = 512, o.config.n_vocab = 300, o.config.n_head = 4,
  o.config.n_head_kv = 2;
  const SynthType t = parse_synth_type("q4_k_m");
  o.type = t.type;
  o.mix = t.mix;
  write_synthetic_model(o, dir.file("m.gguf"));
  GgufFile f(dir.file("m.gguf"));
  EXPECT_EQ(f.find_tensor("output.weight")->ggml_type, ggml_type::Q6_K);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->ggml_type, ggml_type::Q4_K);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->ggml_type, ggml_type::Q4_K);
  EXPECT_EQ(f.find_tensor("blk.1.ffn_down.weight")->ggml_type, ggml_type::Q6_K);  // last eighth: more bits
  EXPECT_EQ(f.find_tensor("blk.1.attn_v.weight")->ggml_type, ggml_type::Q6_K);
  EXPECT_EQ(f.find_tensor("blk.0.attn_norm.weight")->ggml_type, ggml_type::F32);
  expect_valid_gguf(dir.file("m.gguf"));
  EXPECT_THROW(parse_synth_type("q7_k"), std::invalid_argument);
}

TEST(SynthModel, ZeroWeightsGiveTheSameTensorTableWithZeroMatrices) {
  test::TempDir dir;
  SynthOptions o;
  o.config = preset_shape("tinyllama");
  o.config.n_layer = 2, o.config.n_embd = 256, o.config.n_ff = 512, o.config.n_vocab = 300, o.config.n_head = 4,
  o.config.n_head_kv = 2;
  const SynthType t = parse_synth_type("q4_k_m");
  o.type = t.type;
  o.mix = t.mix;
  const uint64_t full_bytes = write_synthetic_model(o, dir.file("full.gguf"));
  o.zero_weights = true;
  EXPECT_EQ(write_synthetic_model(o, dir.file("zero.gguf")), full_bytes);
  GgufFile full(dir.file("full.gguf")), zero(dir.file("zero.gguf"));
  ASSERT_EQ(zero.tensors().size(), full.tensors().size());
  for (size_t i = 0; i < full.tensors().size(); ++i) {
    const GgufTensorInfo &a = full.tensors()[i], &b = zero.tensors()[i];
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.ggml_type, a.ggml_type) << a.name;
    EXPECT_EQ(b.ne, a.ne) << a.name;
    EXPECT_EQ(b.offset, a.offset) << a.name;
  }
  const auto ckpt = open_checkpoint(dir.file("zero.gguf"));
  const TensorView q = ckpt->tensor("blk.0.attn_q.weight");
  const size_t nbytes = dtype_row_bytes(q.dtype, q.shape[1]) * static_cast<size_t>(q.shape[0]);
  EXPECT_TRUE(std::all_of(q.data, q.data + nbytes, [](uint8_t v) { return v == 0; }));
  expect_valid_gguf(dir.file("zero.gguf"));
}

}  // namespace
}  // namespace troupe
