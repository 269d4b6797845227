#include "models/format/checkpoint.h"

#include <sys/stat.h>

#include <fstream>

#include "models/format/gguf_checkpoint.h"
#include "models/format/hf_checkpoint.h"

namespace troupe {

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
  return "blk." + std::to_string(layer) + "." + suffix;
}

std::string to_string(Architecture arch) {
  switch (arch) {
    case Architecture::llama: return "llama";
    case Architecture::gpt2: return "gpt2";
  }
  return "?";
}

Architecture architecture_from_string(const std::string& name) {
  if (name == "llama" || name == "mistral") return Architecture::llama;
  if (name == "gpt2") return Architecture::gpt2;
  throw std::invalid_argument("unsupported architecture '" + name + "' (supported: llama, mistral, gpt2)");
}

std::unique_ptr<Checkpoint> open_checkpoint(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw CheckpointError(path + ": no such file or directory");
  if (S_ISDIR(st.st_mode)) return open_hf_checkpoint(path);
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::string(magic, 4) == "GGUF") return open_gguf_checkpoint(path);
  throw CheckpointError(path + ": not a model troupe can read (expected a GGUF file or a Hugging Face directory)");
}

}  // namespace troupe
