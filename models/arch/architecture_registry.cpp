#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "models/arch/architecture.h"
#include "models/arch/open_checkpoint.h"
#include "models/format/gguf_checkpoint.h"
#include "models/format/hf_checkpoint.h"

namespace troupe {

const std::vector<const Architecture*>& architectures() {
  static const std::vector<const Architecture*> all = {&llama_architecture(), &gpt2_architecture(),
                                                       &phi2_architecture(),  &gptj_architecture(),
                                                       &qwen2_architecture(), &phi3_architecture()};
  return all;
}

const Architecture& architecture(const std::string& name) {
  std::string known;
  for (const auto* a : architectures()) {
    const auto& aliases = a->format.gguf_aliases;
    if (a->format.name == name || std::find(aliases.begin(), aliases.end(), name) != aliases.end()) return *a;
    known += (known.empty() ? "" : ", ") + a->format.name;
  }
  throw std::invalid_argument("unsupported architecture '" + name + "' (known architectures: " + known + ")");
}

const ArchitectureCatalog& architecture_catalog() {
  static const ArchitectureCatalog catalog = [] {
    ArchitectureCatalog c;
    for (const auto* a : architectures()) c.formats.push_back(&a->format);
    return c;
  }();
  return catalog;
}

std::unique_ptr<Checkpoint> open_checkpoint(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw CheckpointError(path + ": no such file or directory");
  if (S_ISDIR(st.st_mode)) return open_hf_checkpoint(path, architecture_catalog());
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::string(magic, 4) == "GGUF") return open_gguf_checkpoint(path, architecture_catalog());
  throw CheckpointError(path + ": not a model troupe can read (expected a GGUF file or a Hugging Face directory)");
}

}  // namespace troupe
