#include "models/convert/model_split.h"

#include <sys/stat.h>

#include <cstring>
#include <regex>

#include "models/convert/quantize_model.h"
#include "models/format/checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/format/gguf_writer.h"
#include "models/format/model_metadata.h"
#include "models/arch/architecture.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {

namespace {

std::string file_stem(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') + 1);
  if (base.empty()) {  // "dir/" of a Hugging Face model
    std::string trimmed = path.substr(0, path.size() - 1);
    base = trimmed.substr(trimmed.find_last_of('/') + 1);
  }
  const auto dot = base.rfind(".gguf");
  return dot == std::string::npos ? base : base.substr(0, dot);
}

}  // namespace

namespace {

// One stage's shard from an open checkpoint (and its GGUF file, whose metadata is kept as is).
void write_one_shard(const Checkpoint& ckpt, const GgufFile* source_gguf, const StageSpec& spec,
                     const std::string& path, const QuantRecipe* recipe, const RecipeModelShape& shape) {
  const auto& config = ckpt.config();
  GgufWriter w;
  if (source_gguf) {
    w.copy_metadata(*source_gguf);
  } else {
    write_config_metadata(w, config, architecture(config.arch).format);
    if (ckpt.has_vocab()) write_vocab_metadata(w, ckpt.vocab());
  }
  if (recipe) {
    w.set_u32("general.file_type", recipe->file_type);
    w.set_u32("general.quantization_version", 2);
  }
  w.set_string("troupe.model_id", ckpt.model_id());
  w.set_bool("troupe.tied_head", config.tied_head);
  w.set_i64("troupe.shard.layer_first", spec.layer_first);
  w.set_i64("troupe.shard.layer_last", spec.layer_last);
  w.set_bool("troupe.shard.has_embedding", spec.has_embedding);
  w.set_bool("troupe.shard.has_head", spec.has_head);
  for (const auto& name : ckpt.tensor_names()) {
    if (!stage_needs_tensor(config, name, spec)) continue;
    add_converted_tensor(w, ckpt, name, recipe, shape);
  }
  w.write(path);
}

// The GGUF file of a model given as one file (nothing for a Hugging Face directory).
std::unique_ptr<GgufFile> source_gguf_of(const std::string& model_path) {
  struct stat src {};
  if (::stat(model_path.c_str(), &src) == 0 && S_ISREG(src.st_mode)) return std::make_unique<GgufFile>(model_path);
  return nullptr;
}

}  // namespace

void write_stage_shard(const std::string& model_path, const StageSpec& spec, const std::string& out_path,
                       const QuantRecipe* recipe) {
  const auto ckpt = open_checkpoint(model_path);
  if (ckpt->shard_info().is_shard) throw CheckpointError(model_path + ": is already a stage shard; split the whole model");
  const auto source_gguf = source_gguf_of(model_path);
  write_one_shard(*ckpt, source_gguf.get(), spec, out_path, recipe, recipe_model_shape(*ckpt));
}

std::vector<std::string> write_stage_shards(const std::string& model_path, const std::vector<StageSpec>& specs,
                                            const std::string& out_dir, const QuantRecipe* recipe) {
  const auto ckpt = open_checkpoint(model_path);
  if (ckpt->shard_info().is_shard) throw CheckpointError(model_path + ": is already a stage shard; split the whole model");
  ::mkdir(out_dir.c_str(), 0755);
  struct stat st {};
  if (::stat(out_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw std::runtime_error(out_dir + ": cannot create directory");

  // Keep a GGUF source's metadata as it is (chat templates and all); describe others afresh.
  const auto source_gguf = source_gguf_of(model_path);
  const RecipeModelShape shape = recipe_model_shape(*ckpt);  // the whole model's, so every shard types alike
  std::vector<std::string> paths;
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string path = out_dir + "/" + file_stem(model_path) + ".stage" + std::to_string(i + 1) + "-of-" +
                             std::to_string(specs.size()) + ".gguf";
    write_one_shard(*ckpt, source_gguf.get(), specs[i], path, recipe, shape);
    paths.push_back(path);
  }
  return paths;
}

}  // namespace troupe
