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

// How a canonical tensor is stored in a Hugging Face checkpoint.
enum class Layout { as_is, rotary_halves, transposed };
struct HfName {
  std::string hf_suffix;  // name after the layer prefix (or the full name for non-layer tensors)
  Layout layout = Layout::as_is;
};

// Canonical (GGUF) names -> Hugging Face names, per architecture.
const std::map<std::string, HfName>& llama_layer_names() {
  static const std::map<std::string, HfName> names = {
      {"attn_norm.weight", {"input_layernorm.weight"}},
      {"attn_q.weight", {"self_attn.q_proj.weight", Layout::rotary_halves}},
      {"attn_k.weight", {"self_attn.k_proj.weight", Layout::rotary_halves}},
      {"attn_v.weight", {"self_attn.v_proj.weight"}},
      {"attn_output.weight", {"self_attn.o_proj.weight"}},
      {"ffn_norm.weight", {"post_attention_layernorm.weight"}},
      {"ffn_gate.weight", {"mlp.gate_proj.weight"}},
      {"ffn_up.weight", {"mlp.up_proj.weight"}},
      {"ffn_down.weight", {"mlp.down_proj.weight"}},
  };
  return names;
}
const std::map<std::string, HfName>& llama_global_names() {
  static const std::map<std::string, HfName> names = {
      {"token_embd.weight", {"model.embed_tokens.weight"}},
      {"output_norm.weight", {"model.norm.weight"}},
      {"output.weight", {"lm_head.weight"}},
  };
  return names;
}
const std::map<std::string, HfName>& gpt2_layer_names() {
  static const std::map<std::string, HfName> names = {
      {"attn_norm.weight", {"ln_1.weight"}},       {"attn_norm.bias", {"ln_1.bias"}},
      {"attn_qkv.weight", {"attn.c_attn.weight", Layout::transposed}},
      {"attn_qkv.bias", {"attn.c_attn.bias"}},
      {"attn_output.weight", {"attn.c_proj.weight", Layout::transposed}},
      {"attn_output.bias", {"attn.c_proj.bias"}},
      {"ffn_norm.weight", {"ln_2.weight"}},        {"ffn_norm.bias", {"ln_2.bias"}},
      {"ffn_up.weight", {"mlp.c_fc.weight", Layout::transposed}},
      {"ffn_up.bias", {"mlp.c_fc.bias"}},
      {"ffn_down.weight", {"mlp.c_proj.weight", Layout::transposed}},
      {"ffn_down.bias", {"mlp.c_proj.bias"}},
  };
  return names;
}
const std::map<std::string, HfName>& gpt2_global_names() {
  static const std::map<std::string, HfName> names = {
      {"token_embd.weight", {"wte.weight"}},
      {"position_embd.weight", {"wpe.weight"}},
      {"output_norm.weight", {"ln_f.weight"}},
      {"output_norm.bias", {"ln_f.bias"}},
  };
  return names;
}

int64_t int_field(const json& cfg, const std::string& path, const char* key, int64_t fallback = -1) {
  if (cfg.contains(key) && cfg[key].is_number_integer()) return cfg[key].get<int64_t>();
  if (cfg.contains(key) && !cfg[key].is_null())
    throw CheckpointError(path + ": '" + key + "' is " + cfg[key].dump() + ", expected an integer");
  if (fallback >= 0) return fallback;
  throw CheckpointError(path + ": config.json lacks integer '" + key + "'");
}

// config.json's name for each field, for error messages.
ConfigKeys config_keys(Architecture arch) {
  if (arch == Architecture::llama)
    return {"hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta"};
  return {"n_embd", "n_layer", "n_head", "n_head", "n_inner", "vocab_size", "n_positions", "layer_norm_epsilon", "-"};
}

double number_field(const json& cfg, const std::string& path, const char* key, double fallback) {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  if (!cfg[key].is_number()) throw CheckpointError(path + ": '" + key + "' is " + cfg[key].dump() + ", expected a number");
  return cfg[key].get<double>();
}

bool bool_field(const json& cfg, const std::string& path, const char* key, bool fallback) {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  if (!cfg[key].is_boolean()) throw CheckpointError(path + ": '" + key + "' is " + cfg[key].dump() + ", expected true or false");
  return cfg[key].get<bool>();
}

ModelConfig read_hf_config(const std::string& path) {
  const json cfg = read_json(path);
  if (!cfg.is_object()) throw CheckpointError(path + ": expected a JSON object");
  if (cfg.contains("model_type") && !cfg["model_type"].is_string())
    throw CheckpointError(path + ": 'model_type' is " + cfg["model_type"].dump() + ", expected a string");
  const std::string type = cfg.value("model_type", "");
  ModelConfig c;
  try {
    c.arch = architecture_from_string(type);
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": " + e.what());
  }
  c.name = type;
  if (c.arch == Architecture::llama) {
    c.n_embd = int_field(cfg, path, "hidden_size");
    c.n_layer = int_field(cfg, path, "num_hidden_layers");
    c.n_head = int_field(cfg, path, "num_attention_heads");
    c.n_head_kv = int_field(cfg, path, "num_key_value_heads", c.n_head);
    c.n_ff = int_field(cfg, path, "intermediate_size");
    c.n_vocab = int_field(cfg, path, "vocab_size");
    c.n_ctx = int_field(cfg, path, "max_position_embeddings", 2048);
    c.norm_eps = number_field(cfg, path, "rms_norm_eps", 1e-6);
    c.rope_theta = number_field(cfg, path, "rope_theta", 10000.0);
    c.tied_head = bool_field(cfg, path, "tie_word_embeddings", false);
    if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null())
      throw CheckpointError(path + ": rope_scaling is not supported");
  } else {
    c.n_embd = int_field(cfg, path, "n_embd");
    c.n_layer = int_field(cfg, path, "n_layer");
    c.n_head = int_field(cfg, path, "n_head");
    c.n_head_kv = c.n_head;
    c.n_ff = int_field(cfg, path, "n_inner", 4 * c.n_embd);
    c.n_vocab = int_field(cfg, path, "vocab_size");
    c.n_ctx = int_field(cfg, path, "n_positions", int_field(cfg, path, "n_ctx", 1024));
    c.norm_eps = number_field(cfg, path, "layer_norm_epsilon", 1e-5);
    c.tied_head = true;
  }
  check_model_config(c, path, config_keys(c.arch));
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
  explicit HfCheckpoint(const std::string& dir) : dir_(dir) {
    const std::string config_path = dir + "/config.json";
    if (!file_exists(config_path)) throw CheckpointError(dir + ": not a Hugging Face model directory (no config.json)");
    config_ = read_hf_config(config_path);
    open_weights();
    read_tokenizer();
    // GPT-2 checkpoints may carry a "transformer." prefix.
    if (config_.arch == Architecture::gpt2 && !find_hf("wte.weight") && find_hf("transformer.wte.weight"))
      prefix_ = "transformer.";
    if (config_.arch == Architecture::llama && !config_.tied_head && !find_hf("lm_head.weight")) config_.tied_head = true;
    HfName embd;
    if (resolve("token_embd.weight", &embd))
      if (const SafetensorsEntry* e = find_hf(embd.hf_suffix); e && !e->shape.empty())
        check_embedding_rows(config_, e->shape[0], dir_ + "/config.json", config_keys(config_.arch), embd.hf_suffix);
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
    HfName hf;
    return resolve(name, &hf) && find_hf(hf.hf_suffix) != nullptr;
  }

  std::vector<std::string> tensor_names() const override {
    std::vector<std::string> names;
    const bool llama = config_.arch == Architecture::llama;
    for (const auto& [canonical, hf] : llama ? llama_global_names() : gpt2_global_names())
      if (has_tensor(canonical)) names.push_back(canonical);
    for (int64_t l = 0; l < config_.n_layer; ++l)
      for (const auto& [suffix, hf] : llama ? llama_layer_names() : gpt2_layer_names())
        if (has_tensor(layer_tensor_name(l, suffix))) names.push_back(layer_tensor_name(l, suffix));
    return names;
  }

  TensorView tensor(const std::string& name) const override {
    HfName hf;
    const SafetensorsEntry* e = resolve(name, &hf) ? find_hf(hf.hf_suffix) : nullptr;
    if (!e) throw CheckpointError(dir_ + ": tensor '" + name + "' not found" + (hf.hf_suffix.empty() ? "" : " (looked for '" + hf.hf_suffix + "')"));
    TensorView v;
    v.name = name;
    if (e->dtype == "F32") v.dtype = DType::F32;
    else if (e->dtype == "F16") v.dtype = DType::F16;
    else if (e->dtype == "BF16") v.dtype = DType::BF16;
    else throw CheckpointError(dir_ + ": tensor '" + hf.hf_suffix + "' has dtype " + e->dtype + " (supported: F32, F16, BF16)");
    v.shape = e->shape;
    v.data = e->data;
    v.nbytes = e->nbytes;
    if (hf.layout == Layout::rotary_halves) {
      const bool is_k = name.find("attn_k") != std::string::npos;
      const int64_t heads = is_k ? config_.n_head_kv : config_.n_head;
      if (e->shape.size() != 2 || e->shape[0] != heads * config_.head_dim())
        throw CheckpointError(dir_ + ": tensor '" + hf.hf_suffix + "' has shape " + shape_text(e->shape) + ", expected [" +
                              std::to_string(heads * config_.head_dim()) + ", " + std::to_string(config_.n_embd) + "]");
      auto bytes = rotary_halves_to_pairs(*e, is_k ? config_.n_head_kv : config_.n_head);
      v.data = bytes->data();
      v.owner = bytes;
    } else if (hf.layout == Layout::transposed) {
      if (e->shape.size() != 2) throw CheckpointError(dir_ + ": tensor '" + hf.hf_suffix + "' is not a matrix");
      auto bytes = transpose_2d(*e, v.dtype == DType::F32 ? 4 : 2);
      v.data = bytes->data();
      v.owner = bytes;
      v.shape = {e->shape[1], e->shape[0]};
    }
    return v;
  }

  size_t tensor_nbytes(const std::string& name) const override {
    HfName hf;
    const SafetensorsEntry* e = resolve(name, &hf) ? find_hf(hf.hf_suffix) : nullptr;
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
    if (file_exists(dir_ + "/tokenizer.model")) {
      vocab_ = read_sentencepiece_model(dir_ + "/tokenizer.model");
      has_vocab_ = true;
    } else if (file_exists(dir_ + "/vocab.json") && file_exists(dir_ + "/merges.txt")) {
      vocab_ = read_gpt2_vocab_files(dir_ + "/vocab.json", dir_ + "/merges.txt");
      has_vocab_ = true;
    }
    const std::string config = dir_ + "/tokenizer_config.json";
    if (has_vocab_ && file_exists(config)) {
      const json cfg = read_json(config);
      if (cfg.contains("chat_template") && cfg["chat_template"].is_string())
        vocab_.chat_template = cfg["chat_template"].get<std::string>();
      if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean())
        vocab_.add_bos = cfg["add_bos_token"].get<bool>() && vocab_.bos_id >= 0;
    }
  }

  // Maps a canonical name to its Hugging Face name; false for names this architecture lacks.
  bool resolve(const std::string& name, HfName* out) const {
    const bool llama = config_.arch == Architecture::llama;
    const auto& globals = llama ? llama_global_names() : gpt2_global_names();
    if (auto it = globals.find(name); it != globals.end()) {
      *out = it->second;
      out->hf_suffix = prefix_ + out->hf_suffix;
      return true;
    }
    static const std::regex layer_re(R"(blk\.(\d+)\.(.+))");
    std::smatch m;
    if (!std::regex_match(name, m, layer_re)) return false;
    const auto& layers = llama ? llama_layer_names() : gpt2_layer_names();
    auto it = layers.find(m[2].str());
    if (it == layers.end()) return false;
    *out = it->second;
    out->hf_suffix = (llama ? "model.layers." : prefix_ + "h.") + m[1].str() + "." + it->second.hf_suffix;
    return true;
  }

  const SafetensorsEntry* find_hf(const std::string& hf_name) const {
    auto it = by_name_.find(hf_name);
    return it == by_name_.end() ? nullptr : it->second;
  }

  std::string dir_;
  ModelConfig config_;
  Vocab vocab_;
  bool has_vocab_ = false;
  std::string prefix_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsEntry*> by_name_;
};

}  // namespace

std::unique_ptr<Checkpoint> open_hf_checkpoint(const std::string& dir) { return std::make_unique<HfCheckpoint>(dir); }

}  // namespace troupe
