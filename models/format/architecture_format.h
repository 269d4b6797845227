#pragma once
// What a checkpoint reader needs to know of an architecture: its names in GGUF and
// config.json, how to read and write its shape, and how its Hugging Face tensors map to the
// canonical (GGUF) names and layout. Each architecture declares one of these in its own file
// (models/arch/arch_*.cpp); the readers here only follow the tables.
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "models/format/model_config.h"

namespace troupe {

class GgufFile;
class GgufWriter;

// How a Hugging Face tensor is stored relative to the canonical layout.
enum class HfLayout {
  as_is,
  rotary_halves,  // LLaMA q/k rows: HF keeps each head's rotary rows as halves, GGUF as interleaved pairs
  transposed,     // GPT-2 Conv1D weights: [in, out] instead of [out, in]
};

struct HfTensor {
  std::string canonical;  // suffix after "blk.N." for layer tensors, else the full name
  std::string hf;         // suffix after the HF layer prefix + "N.", else the full name
  HfLayout layout = HfLayout::as_is;
};

struct ArchitectureFormat {
  std::string name;                         // general.architecture in GGUF
  std::vector<std::string> gguf_aliases;    // other general.architecture values read as this one
  std::vector<std::string> hf_model_types;  // config.json "model_type" values
  bool rotary = true;                        // rotary position embeddings (GPT-2 learns positions instead)
  // Reads the keys particular to the architecture under `prefix` ("<arch>."); the shared
  // ones (embedding_length, block_count, head counts, feed_forward_length, context_length)
  // are read before.
  void (*read_gguf)(const GgufFile& f, const std::string& prefix, ModelConfig& c) = nullptr;
  // Reads the whole shape from config.json (`path` for messages).
  void (*read_hf)(const nlohmann::json& cfg, const std::string& path, ModelConfig& c) = nullptr;
  // Writes the keys read_gguf reads.
  void (*write_gguf)(GgufWriter& w, const std::string& prefix, const ModelConfig& c) = nullptr;
  std::vector<HfTensor> hf_globals;
  std::vector<HfTensor> hf_layer;
  std::string hf_layer_prefix;     // "model.layers."
  std::string hf_optional_prefix;  // tried before every name when the plain name is missing ("transformer.")
};

// The architectures a reader knows (models/arch gives the full list).
struct ArchitectureCatalog {
  std::vector<const ArchitectureFormat*> formats;

  // Throw CheckpointError naming `where`, the unknown name and the known ones.
  const ArchitectureFormat& by_gguf_name(const std::string& name, const std::string& where) const;
  const ArchitectureFormat& by_hf_model_type(const std::string& type, const std::string& where) const;
};

// config.json helpers for read_hf: an integer field (or `fallback` when >= 0 and the field
// is absent or null), else CheckpointError naming the file and key.
int64_t hf_int(const nlohmann::json& cfg, const std::string& path, const char* key, int64_t fallback = -1);
// A field of another type than expected is refused the same way.
double hf_float(const nlohmann::json& cfg, const std::string& path, const char* key, double fallback);
bool hf_bool(const nlohmann::json& cfg, const std::string& path, const char* key, bool fallback);

}  // namespace troupe
