#include "models/format/architecture_format.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "models/format/checkpoint.h"
#include "models/format/hf_shape.h"

namespace troupe {
namespace {

template <class Match>
const ArchitectureFormat& find(const ArchitectureCatalog& catalog, const std::string& what, const std::string& name,
                               const std::string& where, Match&& match) {
  std::string known;
  for (const auto* f : catalog.formats) {
    if (match(*f)) return *f;
    known += (known.empty() ? "" : ", ") + f->name;
  }
  throw CheckpointError(where + ": unsupported " + what + " '" + name + "' (known architectures: " + known + ")");
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

const ArchitectureFormat& ArchitectureCatalog::by_gguf_name(const std::string& name, const std::string& where) const {
  return find(*this, "architecture", name, where,
              [&](const ArchitectureFormat& f) { return f.name == name || contains(f.gguf_aliases, name); });
}

const ArchitectureFormat& ArchitectureCatalog::by_hf_model_type(const std::string& type, const std::string& where) const {
  return find(*this, "model_type", type, where,
              [&](const ArchitectureFormat& f) { return contains(f.hf_model_types, type); });
}

int64_t hf_int(const nlohmann::json& cfg, const std::string& path, const char* key, int64_t fallback) {
  if (cfg.contains(key) && cfg[key].is_number_integer()) return cfg[key].get<int64_t>();
  if (cfg.contains(key) && !cfg[key].is_null())
    throw CheckpointError(path + ": '" + key + "' is " + cfg[key].dump() + ", expected an integer");
  if (fallback >= 0) return fallback;
  throw CheckpointError(path + ": config.json lacks integer '" + key + "'");
}

void read_hf_llama_style_shape(const nlohmann::json& cfg, const std::string& path, int64_t default_context,
                               ModelConfig& c) {
  c.n_embd = hf_int(cfg, path, "hidden_size");
  c.n_layer = hf_int(cfg, path, "num_hidden_layers");
  c.n_head = hf_int(cfg, path, "num_attention_heads");
  c.n_head_kv = hf_int(cfg, path, "num_key_value_heads", c.n_head);
  c.n_ff = hf_int(cfg, path, "intermediate_size");
  c.n_vocab = hf_int(cfg, path, "vocab_size");
  c.n_ctx = hf_int(cfg, path, "max_position_embeddings", default_context);
}

double hf_float(const nlohmann::json& cfg, const std::string& path, const char* key, double fallback) {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  if (!cfg[key].is_number()) throw CheckpointError(path + ": '" + key + "' is " + cfg[key].dump() + ", expected a number");
  return cfg[key].get<double>();
}

bool hf_bool(const nlohmann::json& cfg, const std::string& path, const char* key, bool fallback) {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  if (!cfg[key].is_boolean())
    throw CheckpointError(path + ": '" + key + "' is " + cfg[key].dump() + ", expected true or false");
  return cfg[key].get<bool>();
}

}  // namespace troupe
