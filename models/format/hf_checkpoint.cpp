#include "models/format/hf_checkpoint.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "models/format/config_checks.h"
#include "models/format/fingerprint.h"
#include "models/format/hf_tokenizer_files.h"
#include "models/format/safetensors_file.h"

namespace troupe {
namespace {

using json = nlohmann::json;

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw CheckpointError(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": invalid JSON: " + e.what());
  }
}

// config.json's name for each field, for error messages: the first of the spellings the
// architectures use that this file has.
ConfigKeys config_keys(const json& cfg, const ArchitectureFormat& arch) {
  auto first_present = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (cfg.contains(n)) return std::string(n);
    return std::string(*names.begin());
  };
  ConfigKeys k;
  k.n_embd = first_present({"hidden_size", "n_embd"});
  k.n_layer = first_present({"num_hidden_layers", "n_layer"});
  k.n_head = first_present({"num_attention_heads", "n_head"});
  k.n_head_kv = cfg.contains("num_key_value_heads") ? "num_key_value_heads" : k.n_head;
  k.n_ff = first_present({"intermediate_size", "n_inner"});
  k.n_vocab = "vocab_size";
  k.n_ctx = first_present({"max_position_embeddings", "n_positions", "n_ctx"});
  k.norm_eps = first_present({"rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps"});
  k.rope_theta = "rope_theta";
  k.rotary = arch.rotary;
  return k;
}

ModelConfig read_hf_config(const std::string& path, const ArchitectureFormat& arch, const json& cfg) {
  ModelConfig c;
  c.arch = arch.name;
  c.name = cfg.value("model_type", arch.name);
  arch.read_hf(cfg, path, c);
  check_model_config(c, path, config_keys(cfg, arch));
  return c;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// GGUF keeps each head's rotary rows as interleaved pairs (x0,y0,x1,y1,...); Hugging
// Face stores them as halves (x0,x1,...,y0,y1,...). Reorder rows back to pairs.
std::shared_ptr<std::vector<uint8_t>> rotary_halves_to_pairs(const SafetensorsEntry& e, int64_t n_heads) {
  const int64_t rows = e.shape.at(0);
  const size_t row_bytes = e.nbytes / static_cast<size_t>(rows);
  const int64_t head_dim = rows / n_heads, half = head_dim / 2;
  auto out = std::make_shared<std::vector<uint8_t>>(e.nbytes);
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t dst = h * head_dim + 2 * i + j, src = h * head_dim + j * half + i;
        std::memcpy(out->data() + dst * row_bytes, e.data + src * row_bytes, row_bytes);
      }
  return out;
}

// Conv1D stores [in, out]; linear layers want [out, in].
std::shared_ptr<std::vector<uint8_t>> transpose_2d(const SafetensorsEntry& e, size_t elem) {
  const int64_t rows = e.shape.at(0), cols = e.shape.at(1);
  auto out = std::make_shared<std::vector<uint8_t>>(e.nbytes);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(out->data() + (c * rows + r) * elem, e.data + (r * cols + c) * elem, elem);
  return out;
}

class HfCheckpoint : public Checkpoint {
 public:
  HfCheckpoint(const std::string& dir, const ArchitectureCatalog& catalog) : dir_(dir) {
    const std::string config_path = dir + "/config.json";
    if (!file_exists(config_path)) throw CheckpointError(dir + ": not a Hugging Face model directory (no config.json)");
    const json cfg = read_json(config_path);
    if (!cfg.is_object()) throw CheckpointError(config_path + ": expected a JSON object");
    if (cfg.contains("model_type") && !cfg["model_type"].is_string())
      throw CheckpointError(config_path + ": 'model_type' is " + cfg["model_type"].dump() + ", expected a string");
    arch_ = &catalog.by_hf_model_type(cfg.value("model_type", ""), config_path);
    config_ = read_hf_config(config_path, *arch_, cfg);
    open_weights();
    read_tokenizer();
    // A checkpoint without its own classifier ties it to the embedding.
    if (!config_.tied_head && !has_tensor("output.weight")) config_.tied_head = true;
    HfTensor embd;
    if (resolve("token_embd.weight", &embd))
      if (const SafetensorsEntry* e = find_hf(embd.hf); e && !e->shape.empty())
        check_embedding_rows(config_, e->shape[0], config_path, config_keys(cfg, *arch_), embd.hf);
  }

  const std::string& path() const override { return dir_; }
  const ModelConfig& config() const override { return config_; }
  bool has_vocab() const override { return has_vocab_; }
  const Vocab& vocab() const override {
    if (!has_vocab_)
      throw CheckpointError(dir_ + ": no tokenizer files (expected tokenizer.model, or vocab.json + merges.txt)");
    return vocab_;
  }

  bool has_tensor(const std::string& name) const override {
    HfTensor hf;
    return resolve(name, &hf) && find_hf(hf.hf) != nullptr;
  }

  std::vector<std::string> tensor_names() const override {
    std::vector<std::string> names;
    for (const auto& t : arch_->hf_globals)
      if (has_tensor(t.canonical)) names.push_back(t.canonical);
    for (int64_t l = 0; l < config_.n_layer; ++l)
      for (const auto& t : arch_->hf_layer)
        if (has_tensor(layer_tensor_name(l, t.canonical))) names.push_back(layer_tensor_name(l, t.canonical));
    return names;
  }

  TensorView tensor(const std::string& name) const override {
    HfTensor hf;
    const SafetensorsEntry* e = resolve(name, &hf) ? find_hf(hf.hf) : nullptr;
    if (!e) throw CheckpointError(dir_ + ": tensor '" + name + "' not found" + (hf.hf.empty() ? "" : " (looked for '" + hf.hf + "')"));
    TensorView v;
    v.name = name;
    if (e->dtype == "F32") v.dtype = DType::F32;
    else if (e->dtype == "F16") v.dtype = DType::F16;
    else if (e->dtype == "BF16") v.dtype = DType::BF16;
    else throw CheckpointError(dir_ + ": tensor '" + hf.hf + "' has dtype " + e->dtype + " (supported: F32, F16, BF16)");
    v.shape = e->shape;
    v.data = e->data;
    v.nbytes = e->nbytes;
    if (hf.layout == HfLayout::rotary_halves) {
      const bool is_k = name.find("attn_k") != std::string::npos;
      const int64_t heads = is_k ? config_.n_head_kv : config_.n_head;
      if (e->shape.size() != 2 || e->shape[0] != heads * config_.head_dim())
        throw CheckpointError(dir_ + ": tensor '" + hf.hf + "' has shape " + shape_text(e->shape) + ", expected [" +
                              std::to_string(heads * config_.head_dim()) + ", " + std::to_string(config_.n_embd) + "]");
      auto bytes = rotary_halves_to_pairs(*e, is_k ? config_.n_head_kv : config_.n_head);
      v.data = bytes->data();
      v.owner = bytes;
    } else if (hf.layout == HfLayout::transposed) {
      if (e->shape.size() != 2) throw CheckpointError(dir_ + ": tensor '" + hf.hf + "' is not a matrix");
      auto bytes = transpose_2d(*e, v.dtype == DType::F32 ? 4 : 2);
      v.data = bytes->data();
      v.owner = bytes;
      v.shape = {e->shape[1], e->shape[0]};
    }
    return v;
  }

  size_t tensor_nbytes(const std::string& name) const override {
    HfTensor hf;
    const SafetensorsEntry* e = resolve(name, &hf) ? find_hf(hf.hf) : nullptr;
    if (!e) throw CheckpointError(dir_ + ": tensor '" + name + "' not found");
    return e->nbytes;
  }

  std::string model_id() const override { return fingerprint_model(*this); }

 private:
  void open_weights() {
    const std::string single = dir_ + "/model.safetensors";
    const std::string index = dir_ + "/model.safetensors.index.json";
    if (file_exists(single)) {
      files_.push_back(std::make_unique<SafetensorsFile>(single));
    } else if (file_exists(index)) {
      const json idx = read_json(index);
      if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
        throw CheckpointError(index + ": no weight_map");
      std::map<std::string, size_t> opened;
      for (const auto& [tensor, file] : idx["weight_map"].items()) {
        const std::string shard = file.get<std::string>();
        if (!opened.count(shard)) {
          const std::string shard_path = dir_ + "/" + shard;
          if (!file_exists(shard_path)) throw CheckpointError(index + ": lists " + shard + ", which is missing");
          opened[shard] = files_.size();
          files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
        }
      }
    } else if (file_exists(dir_ + "/pytorch_model.bin")) {
      throw CheckpointError(dir_ + ": only pytorch_model.bin found; troupe reads safetensors (convert the checkpoint)");
    } else {
      throw CheckpointError(dir_ + ": no model.safetensors or model.safetensors.index.json");
    }
    for (const auto& f : files_)
      for (const auto& [name, entry] : f->entries()) by_name_[name] = &entry;
  }

  void read_tokenizer() {
    if (auto vocab = read_hf_tokenizer_dir(dir_)) {
      vocab_ = std::move(*vocab);
      has_vocab_ = true;
    }
  }

  // Maps a canonical name to its Hugging Face name; false for names this architecture lacks.
  bool resolve(const std::string& name, HfTensor* out) const {
    for (const auto& t : arch_->hf_globals)
      if (t.canonical == name) {
        *out = t;
        return true;
      }
    static const std::regex layer_re(R"(blk\.(\d+)\.(.+))");
    std::smatch m;
    if (!std::regex_match(name, m, layer_re)) return false;
    for (const auto& t : arch_->hf_layer)
      if (t.canonical == m[2].str()) {
        *out = t;
        out->hf = arch_->hf_layer_prefix + m[1].str() + "." + t.hf;
        return true;
      }
    return false;
  }

  // The stored tensor of a Hugging Face name, tried with the architecture's optional prefix too.
  const SafetensorsEntry* find_hf(const std::string& hf_name) const {
    auto it = by_name_.find(hf_name);
    if (it == by_name_.end() && !arch_->hf_optional_prefix.empty()) it = by_name_.find(arch_->hf_optional_prefix + hf_name);
    return it == by_name_.end() ? nullptr : it->second;
  }

  std::string dir_;
  ModelConfig config_;
  Vocab vocab_;
  bool has_vocab_ = false;
  const ArchitectureFormat* arch_ = nullptr;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsEntry*> by_name_;
};

}  // namespace

std::unique_ptr<Checkpoint> open_hf_checkpoint(const std::string& dir, const ArchitectureCatalog& catalog) {
  return std::make_unique<HfCheckpoint>(dir, catalog);
}

}  // namespace troupe
