// A Hugging Face directory's config.json (beside the real stories260K weights and tokenizer,
// so a config that passes reaches the weight and embedding checks).
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "models/arch/open_checkpoint.h"

namespace {
std::string g_dir;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/troupe-fuzz-hf-XXXXXX";
  g_dir = mkdtemp(tmpl);
  const char* models = std::getenv("TROUPE_MODELS_DIR");
  const std::string src = std::string(models ? models : "/work/shared/models") + "/stories260K/hf/";
  for (const char* f : {"model.safetensors", "tokenizer.model"})
    if (symlink((src + f).c_str(), (g_dir + "/" + f).c_str()) != 0) return 0;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::ofstream(g_dir + "/config.json", std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    troupe::open_checkpoint(g_dir);
  } catch (const troupe::CheckpointError&) {
  }
  return 0;
}
