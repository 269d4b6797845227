// Hostile model files: crafted to overflow, overlap, lie about types or carry absurd
// hyperparameters. Each is refused with a CheckpointError naming the file and the tensor or
// key at fault, never a crash. The inputs the fuzzers found (tests/fuzz/regressions/) are
// replayed through the same readers built with g++.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iterator>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>

#include "actors/protocol/wire_tensor.h"
#include "models/arch/open_checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/format/gguf_writer.h"
#include "models/format/hf_tokenizer_files.h"
#include "models/format/safetensors_file.h"
#include "tests/test_support.h"

#ifndef TROUPE_SOURCE_DIR
#define TROUPE_SOURCE_DIR "."
#endif

namespace troupe {
namespace {

std::string expect_checkpoint_error(const std::string& path, const std::vector<std::string>& mentions) {
  try {
    open_checkpoint(path);
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& m : mentions) EXPECT_NE(msg.find(m), std::string::npos) << "'" << m << "' not in: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A small valid llama GGUF: 4 heads over a width of 32, vocabulary of 16, two F32 tensors.
struct TinyGguf {
  GgufWriter w;
  TinyGguf() {
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.embedding_length", 32);
    w.set_u32("llama.block_count", 1);
    w.set_u32("llama.attention.head_count", 4);
    w.set_u32("llama.feed_forward_length", 64);
    w.set_u32("llama.context_length", 128);
    w.set_u32("llama.vocab_size", 16);
  }
  void add_tensors() {
    const std::vector<float> embd(16 * 32, 0.25f), norm(32, 1.0f);
    w.add_tensor_copy("token_embd.weight", DType::F32, {16, 32}, reinterpret_cast<const uint8_t*>(embd.data()));
    w.add_tensor_copy("blk.0.attn_norm.weight", DType::F32, {32}, reinterpret_cast<const uint8_t*>(norm.data()));
  }
  std::string write(const test::TempDir& dir, const std::string& name) {
    const std::string path = dir.file(name);
    w.write(path);
    return path;
  }
};

// Byte position of a tensor directory field: after the name come n_dims (4), the dims (8 each),
// the type (4) and the offset (8).
size_t tensor_field(const std::string& bytes, const std::string& tensor, size_t n_dims, bool offset) {
  const size_t at = bytes.find(tensor);
  EXPECT_NE(at, std::string::npos) << tensor;
  return at + tensor.size() + 4 + 8 * n_dims + (offset ? 4 : 0);
}

template <typename T>
void patch(std::string& bytes, size_t at, T value) {
  std::memcpy(&bytes[at], &value, sizeof(T));
}

TEST(HostileGguf, ValidTinyFileLoads) {
  // The baseline every crafted file below departs from.
  test::TempDir dir;
  TinyGguf g;
  g.add_tensors();
  const auto ckpt = open_checkpoint(g.write(dir, "ok.gguf"));
  EXPECT_EQ(ckpt->tensor("token_embd.weight").nbytes, 16u * 32 * 4);
}

TEST(HostileGguf, TensorOffsetNearTwoToThe64IsRefusedNotACrash) {
  // offset + size used to wrap around 2^64, pass the bounds check and segfault on first read.
  test::TempDir dir;
  TinyGguf g;
  g.add_tensors();
  const std::string path = g.write(dir, "offset.gguf");
  std::string bytes = read_bytes(path);
  patch<uint64_t>(bytes, tensor_field(bytes, "blk.0.attn_norm.weight", 1, true), 0xFFFFFFFFFFFFFFE0ull);
  write_bytes(path, bytes);
  expect_checkpoint_error(path, {"blk.0.attn_norm.weight", "beyond 2^64"});
}

TEST(HostileGguf, OverlappingTensorsAreRefused) {
  test::TempDir dir;
  TinyGguf g;
  g.add_tensors();
  const std::string path = g.write(dir, "overlap.gguf");
  std::string bytes = read_bytes(path);
  patch<uint64_t>(bytes, tensor_field(bytes, "blk.0.attn_norm.weight", 1, true), 1024);  // inside token_embd
  write_bytes(path, bytes);
  expect_checkpoint_error(path, {"token_embd.weight", "overlaps", "blk.0.attn_norm.weight"});
}

TEST(HostileGguf, ChangedTensorTypeIsRefusedNamingTheTensor) {
  // F32 -> F16 halves what the directory says the tensor holds: the rest of its region is unused.
  test::TempDir dir;
  TinyGguf g;
  g.add_tensors();
  const std::string path = g.write(dir, "type.gguf");
  std::string bytes = read_bytes(path);
  patch<uint32_t>(bytes, tensor_field(bytes, "token_embd.weight", 2, false), static_cast<uint32_t>(DType::F16));
  write_bytes(path, bytes);
  expect_checkpoint_error(path, {"token_embd.weight", "F16", "does not match"});

  // The last tensor grown F32 -> ... a type needing more bytes than the file has left.
  bytes = read_bytes(g.write(dir, "type2.gguf"));
  patch<uint32_t>(bytes, tensor_field(bytes, "blk.0.attn_norm.weight", 1, false), static_cast<uint32_t>(DType::F16));
  write_bytes(dir.file("type2.gguf"), bytes);
  expect_checkpoint_error(dir.file("type2.gguf"), {"blk.0.attn_norm.weight", "does not match"});
}

TEST(HostileGguf, DimensionsWhoseProductOverflowsAreRefused) {
  test::TempDir dir;
  TinyGguf g;
  g.add_tensors();
  const std::string path = g.write(dir, "dims.gguf");
  std::string bytes = read_bytes(path);
  const size_t dims = bytes.find("token_embd.weight") + std::string("token_embd.weight").size() + 4;
  patch<uint64_t>(bytes, dims, 1ull << 40);
  patch<uint64_t>(bytes, dims + 8, 1ull << 40);
  write_bytes(path, bytes);
  expect_checkpoint_error(path, {"token_embd.weight", "2^48 elements"});
}

TEST(HostileGguf, StringAndArrayLengthsBeyondTheFileAreRefused) {
  test::TempDir dir;
  TinyGguf g;
  g.w.set_strings("tokenizer.ggml.tokens", {"a", "b"});
  const std::string path = g.write(dir, "strings.gguf");
  const std::string good = read_bytes(path);

  std::string bytes = good;  // the array claims 2^27 strings: far more than the file could hold
  patch<uint64_t>(bytes, bytes.find("tokenizer.ggml.tokens") + std::string("tokenizer.ggml.tokens").size() + 8,
                  1ull << 27);
  write_bytes(path, bytes);
  expect_checkpoint_error(path, {"array of 134217728 elements", "longer than the rest of the file"});

  bytes = good;  // the first token's length runs past the end
  const size_t token = bytes.find("tokenizer.ggml.tokens") + std::string("tokenizer.ggml.tokens").size() + 4 + 4 + 8;
  patch<uint64_t>(bytes, token, 1000000);
  write_bytes(path, bytes);
  expect_checkpoint_error(path, {"truncated GGUF"});
}

TEST(HostileGguf, NonFiniteOrAbsurdHyperparametersNameTheKey) {
  test::TempDir dir;
  struct Case {
    std::function<void(GgufWriter&)> set;
    std::vector<std::string> mentions;
  };
  const std::vector<Case> cases = {
      {[](GgufWriter& w) { w.set_f32("llama.attention.layer_norm_rms_epsilon", std::nanf("")); },
       {"llama.attention.layer_norm_rms_epsilon is nan"}},
      {[](GgufWriter& w) { w.set_f32("llama.attention.layer_norm_rms_epsilon", 0.0f); },
       {"llama.attention.layer_norm_rms_epsilon is 0"}},
      {[](GgufWriter& w) { w.set_f32("llama.rope.freq_base", std::numeric_limits<float>::infinity()); },
       {"llama.rope.freq_base is inf"}},
      {[](GgufWriter& w) { w.set_u32("llama.attention.head_count", 3); },
       {"llama.attention.head_count is 3", "divisor of llama.embedding_length (32)"}},
      {[](GgufWriter& w) { w.set_u32("llama.attention.head_count_kv", 3); },
       {"llama.attention.head_count_kv is 3", "divisor of llama.attention.head_count (4)"}},
      {[](GgufWriter& w) { w.set_u32("llama.context_length", 0); }, {"llama.context_length is 0"}},
      {[](GgufWriter& w) { w.set_u32("llama.block_count", 1000000); }, {"llama.block_count is 1000000"}},
      {[](GgufWriter& w) { w.set_u32("llama.vocab_size", 17); },
       {"token_embd.weight", "16 rows", "llama.vocab_size is 17"}},
  };
  int i = 0;
  for (const auto& c : cases) {
    TinyGguf g;
    c.set(g.w);
    g.add_tensors();
    expect_checkpoint_error(g.write(dir, "h" + std::to_string(i++) + ".gguf"), c.mentions);
  }
}

TEST(HostileGguf, TokenTypesOutsideTheirRangeAreRefused) {
  // Found by fuzz_gguf: converting 1e30 to an integer type is undefined behaviour.
  test::TempDir dir;
  TinyGguf g;
  g.w.set_string("tokenizer.ggml.model", "llama");
  g.w.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"});
  g.w.set_f32s("tokenizer.ggml.token_type", {1.0f, 1e30f, 3.0f});
  g.add_tensors();
  expect_checkpoint_error(g.write(dir, "types.gguf"), {"tokenizer.ggml.token_type[1]", "expected a token type from 0 to 6"});
}

// A Hugging Face directory copied from stories260K, with one file replaced.
struct HfDir {
  test::TempDir dir;
  std::string src = test::model_path("stories260K/hf");
  HfDir() {
    std::system(("cp " + src + "/config.json " + src + "/tokenizer.model " + src + "/model.safetensors " + dir.path())
                    .c_str());
  }
  void edit_config(const std::string& key, const std::string& json_value) {
    auto cfg = nlohmann::json::parse(read_bytes(dir.file("config.json")));
    cfg[key] = nlohmann::json::parse(json_value);
    write_bytes(dir.file("config.json"), cfg.dump());
  }
};

TEST(HostileHfConfig, BadValuesNameTheFileAndKey) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"rms_norm_eps", "\"tiny\"", "'rms_norm_eps' is \"tiny\", expected a number"},
      {"rms_norm_eps", "-1e-5", "rms_norm_eps is -1e-05"},
      {"rope_theta", "0", "rope_theta is 0"},
      {"num_attention_heads", "5", "num_attention_heads is 5"},
      {"num_key_value_heads", "3", "num_key_value_heads is 3"},
      {"hidden_size", "64.5", "'hidden_size' is 64.5, expected an integer"},
      {"vocab_size", "513", "vocab_size is 513"},
      {"tie_word_embeddings", "\"yes\"", "'tie_word_embeddings' is \"yes\""},
  };
  for (const auto& [key, value, message] : cases) {
    HfDir hf;
    hf.edit_config(key, value);
    expect_checkpoint_error(hf.dir.path(), {"config.json", message});
  }
}

// model.safetensors rewritten with its JSON header edited by `edit`.
void rewrite_safetensors_header(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  edit(header);
  const std::string h = header.dump();
  std::string out(8, '\0');
  const uint64_t len = h.size();
  std::memcpy(&out[0], &len, 8);
  write_bytes(path, out + h + bytes.substr(8 + n));
}

TEST(HostileSafetensors, OverlappingTensorsAreRefused) {
  HfDir hf;
  std::string first;
  rewrite_safetensors_header(hf.dir.file("model.safetensors"), [&](nlohmann::json& h) {
    // Point the smallest norm at the start of another tensor's bytes.
    for (auto& [name, info] : h.items())
      if (name != "__metadata__" && first.empty()) first = name;
    auto& norm = h["model.norm.weight"]["data_offsets"];
    const uint64_t len = norm[1].get<uint64_t>() - norm[0].get<uint64_t>();
    const uint64_t start = h[first]["data_offsets"][0].get<uint64_t>();
    norm = {start, start + len};
  });
  expect_checkpoint_error(hf.dir.path(), {"model.safetensors", "overlaps"});
}

TEST(HostileSafetensors, ShapesThatOverflowOrDisagreeWithTheirBytesAreRefused) {
  for (const auto& shape : {nlohmann::json::array({1ll << 40, 1ll << 40}), nlohmann::json::array({-1, 48}),
                            nlohmann::json::array({3, 48})}) {
    HfDir hf;
    rewrite_safetensors_header(hf.dir.file("model.safetensors"),
                               [&](nlohmann::json& h) { h["model.norm.weight"]["shape"] = shape; });
    expect_checkpoint_error(hf.dir.path(), {"model.safetensors", "model.norm.weight"});
  }
}

// Every file under tests/fuzz/regressions/<target>/ once crashed or hung a reader (or is a
// crafted input of that kind). Each must now give a clean error or a clean success.
std::vector<std::string> regression_inputs(const std::string& target) {
  std::vector<std::string> files;
  const std::string dir = std::string(TROUPE_SOURCE_DIR) + "/tests/fuzz/regressions/" + target;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') files.push_back(dir + "/" + e->d_name);
    closedir(d);
  }
  return files;
}

template <typename Read>
void replay(const std::string& target, Read read) {
  const auto files = regression_inputs(target);
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    try {
      read(f);
    } catch (const CheckpointError&) {
    } catch (const WireError&) {
    }
  }
  ::testing::Test::RecordProperty(target + "_inputs", static_cast<int>(files.size()));
}

TEST(FuzzRegressions, GgufInputsGiveErrorsNotCrashes) {
  EXPECT_FALSE(regression_inputs("gguf").empty());
  replay("gguf", [](const std::string& f) {
    const auto ckpt = open_checkpoint(f);
    volatile uint8_t sink = 0;  // touch each tensor's first and last byte, as a model load would
    for (const auto& name : ckpt->tensor_names()) {
      try {
        const auto view = ckpt->tensor(name);
        if (view.nbytes) sink ^= view.data[0] ^ view.data[view.nbytes - 1];
      } catch (const CheckpointError&) {
      }
    }
  });
}

TEST(FuzzRegressions, SafetensorsInputsGiveErrorsNotCrashes) {
  replay("safetensors", [](const std::string& f) { SafetensorsFile s(f); });
}

TEST(FuzzRegressions, TokenizerModelInputsGiveErrorsNotCrashes) {
  replay("tokenizer_model", [](const std::string& f) { read_sentencepiece_model(f); });
}

TEST(FuzzRegressions, WireInputsGiveErrorsNotCrashes) {
  replay("wire", [](const std::string& f) { (void)from_wire(decode_tensor_message(read_bytes(f)).tensor).sum(); });
}

}  // namespace
}  // namespace troupe
