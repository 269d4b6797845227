// Bad model files give a CheckpointError that names the file and the problem.
#include <gtest/gtest.h>

#include <fstream>

#include "models/format/checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/format/gguf_writer.h"
#include "models/arch/stage_model.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

// Expects open_checkpoint(path) to throw a CheckpointError mentioning `path` and `what`.
void expect_checkpoint_error(const std::string& path, const std::string& what) {
  try {
    open_checkpoint(path);
    FAIL() << "no error for " << path;
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(GgufReader, ReadsMetadataOfEveryKindAndTensorDirectory) {
  GgufFile f(test::model_path("stories260K/stories260K-q4_0.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 5);
  EXPECT_NEAR(f.get_float("llama.attention.layer_norm_rms_epsilon", 0), 1e-5, 1e-9);
  EXPECT_EQ(f.get_array("tokenizer.ggml.tokens").strings.size(), 512u);
  EXPECT_EQ(f.get_array("tokenizer.ggml.scores").numbers.size(), 512u);
  EXPECT_EQ(f.metadata().at("tokenizer.ggml.padding_token_id").integer, 4294967295LL);
  const auto* q = f.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->ggml_type, static_cast<uint32_t>(DType::Q4_0));
  EXPECT_EQ(q->ne, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(q->nbytes, 64u / 32 * 18 * 64);
}

TEST(GgufReader, VocabOnlyFileHasConfigAndVocabButNoTensors) {
  const auto ckpt = open_checkpoint(test::model_path("vocab/ggml-vocab-llama-spm.gguf"));
  EXPECT_EQ(ckpt->config().n_layer, 32);
  EXPECT_EQ(ckpt->vocab().tokens.size(), 32000u);
  EXPECT_TRUE(ckpt->tensor_names().empty());
}

TEST(GgufReader, MissingFileIsNamed) {
  expect_checkpoint_error("/nonexistent/model.gguf", "no such file");
}

TEST(GgufReader, TruncatedFileIsReportedAtEveryCut) {
  test::TempDir dir;
  const std::string src = test::model_path("stories260K/stories260K.gguf");
  const std::string cut = dir.file("cut.gguf");
  // Cuts inside the header, the metadata, the tensor directory and the tensor data.
  for (size_t n : {6ul, 100ul, 5000ul, 20000ul, test::file_size(src) - 1}) {
    test::copy_prefix(src, cut, n);
    expect_checkpoint_error(cut, "truncated");
  }
}

TEST(GgufReader, WrongMagicIsNotAModel) {
  test::TempDir dir;
  std::ofstream(dir.file("x.gguf")) << "this is not a model file at all";
  expect_checkpoint_error(dir.file("x.gguf"), "not a model");
}

// A tiny GGUF with one F32 tensor whose type code is then patched in place.
std::string write_one_tensor_gguf(const test::TempDir& dir, const std::string& arch, uint32_t patched_type) {
  GgufWriter w;
  w.set_string("general.architecture", arch);
  for (const char* k : {"embedding_length", "block_count", "feed_forward_length", "context_length", "vocab_size"})
    w.set_u32(arch + "." + k, 32);
  w.set_u32(arch + ".attention.head_count", 4);
  const std::vector<float> data(32 * 32, 0.5f);
  w.add_tensor_copy("blk.0.attn_q.weight", DType::F32, {32, 32}, reinterpret_cast<const uint8_t*>(data.data()));
  const std::string path = dir.file(arch + ".gguf");
  w.write(path);
  if (patched_type != 0) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const size_t at = bytes.find("blk.0.attn_q.weight") + std::string("blk.0.attn_q.weight").size() + 4 + 2 * 8;
    f.seekp(static_cast<std::streamoff>(at));
    f.write(reinterpret_cast<const char*>(&patched_type), 4);
  }
  return path;
}

TEST(GgufReader, UnsupportedTensorTypeIsNamedWhenRead) {
  test::TempDir dir;
  const auto ckpt = open_checkpoint(write_one_tensor_gguf(dir, "llama", /*IQ2_XXS, a type troupe does not read=*/16));
  try {
    ckpt->tensor("blk.0.attn_q.weight");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("IQ2_XXS"), std::string::npos) << e.what();
  }
}

TEST(GgufReader, UnknownArchitectureIsNamed) {
  test::TempDir dir;
  expect_checkpoint_error(write_one_tensor_gguf(dir, "phi9", 0), "unsupported architecture 'phi9'");
}

TEST(HfCheckpoint, DirectoryWithoutConfigIsRejected) {
  test::TempDir dir;
  expect_checkpoint_error(dir.path(), "no config.json");
}

TEST(HfCheckpoint, TruncatedSafetensorsIsReported) {
  test::TempDir dir;
  const std::string src = test::model_path("stories260K/hf");
  std::system(("cp " + src + "/config.json " + src + "/tokenizer.model " + dir.path()).c_str());
  test::copy_prefix(src + "/model.safetensors", dir.file("model.safetensors"), 300000);
  expect_checkpoint_error(dir.path(), "truncated safetensors");
  test::copy_prefix(src + "/model.safetensors", dir.file("model.safetensors"), 2000);
  expect_checkpoint_error(dir.path(), "header");
}

TEST(HfCheckpoint, ShardedSafetensorsGiveTheSameTensorsAsOneFile) {
  // Rewrites stories260K's single file as two shards plus an index, as large HF models ship.
  test::TempDir dir;
  const std::string src = test::model_path("stories260K/hf");
  std::system(("cp " + src + "/config.json " + src + "/tokenizer.model " + dir.path()).c_str());
  const std::string script =
      "import json,struct,sys\n"
      "src,dst=sys.argv[1],sys.argv[2]\n"
      "f=open(src+'/model.safetensors','rb');n=struct.unpack('<Q',f.read(8))[0];h=json.loads(f.read(n));data=f.read()\n"
      "names=[k for k in h if k!='__metadata__'];halves=[names[:len(names)//2],names[len(names)//2:]];wm={}\n"
      "for i,part in enumerate(halves):\n"
      "  fn='model-%05d-of-00002.safetensors'%(i+1);hdr={};off=0;blob=b''\n"
      "  for k in part:\n"
      "    b,e=h[k]['data_offsets'];hdr[k]={'dtype':h[k]['dtype'],'shape':h[k]['shape'],'data_offsets':[off,off+e-b]};blob+=data[b:e];off+=e-b;wm[k]=fn\n"
      "  j=json.dumps(hdr).encode();open(dst+'/'+fn,'wb').write(struct.pack('<Q',len(j))+j+blob)\n"
      "json.dump({'weight_map':wm},open(dst+'/model.safetensors.index.json','w'))\n";
  std::ofstream(dir.file("shard.py")) << script;
  ASSERT_EQ(std::system(("python3 " + dir.file("shard.py") + " " + src + " " + dir.path()).c_str()), 0);
  std::remove(dir.file("shard.py").c_str());

  const auto whole = open_checkpoint(src);
  const auto sharded = open_checkpoint(dir.path());
  ASSERT_EQ(whole->tensor_names(), sharded->tensor_names());
  for (const auto& name : whole->tensor_names()) {
    const auto a = whole->tensor(name), b = sharded->tensor(name);
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
  }
  // A missing shard is named.
  std::remove(dir.file("model-00002-of-00002.safetensors").c_str());
  expect_checkpoint_error(dir.path(), "model-00002-of-00002.safetensors");
}

TEST(StageLoading, ModelWithWrongTensorShapeIsRejectedNamingTheTensor) {
  // A GGUF whose config claims 32-wide embeddings but whose q projection is 32x32 of a
  // llama with n_embd 32 would load; claiming 64 makes every shape disagree.
  test::TempDir dir;
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  for (const char* k : {"embedding_length", "feed_forward_length", "context_length"}) w.set_u32(std::string("llama.") + k, 64);
  w.set_u32("llama.block_count", 1);
  w.set_u32("llama.attention.head_count", 2);
  w.set_u32("llama.vocab_size", 32);
  const std::vector<float> ones(64, 1.0f), q(32 * 32, 0.1f);
  w.add_tensor_copy("blk.0.attn_norm.weight", DType::F32, {64}, reinterpret_cast<const uint8_t*>(ones.data()));
  w.add_tensor_copy("blk.0.attn_q.weight", DType::F32, {32, 32}, reinterpret_cast<const uint8_t*>(q.data()));
  w.write(dir.file("bad.gguf"));
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(dir.file("bad.gguf"));
  try {
    StageModel::load(ckpt, StageSpec{0, 0, false, false});
    FAIL();
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("blk.0.attn_q.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[32, 32]"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace troupe
