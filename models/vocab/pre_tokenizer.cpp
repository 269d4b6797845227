// The pre-tokenizer regexes. llama.cpp (llama-vocab.cpp) writes the case-insensitive
// contractions of Llama-3 and Qwen2 as explicit classes ('[sS]...) because its own regex
// engine lacks (?i:); the Hugging Face originals are kept to recognise tokenizer.json files.
#include "models/vocab/pre_tokenizer.h"

#include <stdexcept>
#include <utility>

namespace troupe {
namespace {

struct Family {
  PreTokenizer pre;
  std::vector<std::string> aliases;
  std::vector<std::string> hf_regexes;  // as tokenizer.json's Split pre-tokenizer writes them
};

const std::vector<Family>& families() {
  static const std::vector<Family> all = {
      {{"gpt-2", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", false, false},
       {"", "gpt-2", "phi-2", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de", "jina-v2-code"},
       {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"}},
      {{"llama-bpe",
        R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
        true, true},
       {"llama-bpe", "llama3", "llama-v3", "falcon3"},
       {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}},
      {{"qwen2",
        R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
        false, false},
       {"qwen2", "deepseek-r1-qwen"},
       {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}},
  };
  return all;
}

}  // namespace

const PreTokenizer& pre_tokenizer_named(const std::string& pre) {
  for (const Family& family : families()) {
    for (const std::string& alias : family.aliases) {
      if (alias == pre) return family.pre;
    }
  }
  throw std::invalid_argument("unsupported BPE pre-tokenizer '" + pre + "' (tokenizer.ggml.pre); known: " +
                              known_pre_tokenizer_names());
}

const PreTokenizer* pre_tokenizer_for_hf_regex(const std::string& hf_regex) {
  for (const Family& family : families()) {
    for (const std::string& regex : family.hf_regexes) {
      if (regex == hf_regex) return &family.pre;
    }
  }
  return nullptr;
}

std::string known_pre_tokenizer_names() {
  std::string names;
  for (const Family& family : families()) {
    if (!names.empty()) names += "; ";
    names += family.pre.name;
    std::string aliases;
    for (const std::string& alias : family.aliases) {
      if (alias.empty() || alias == family.pre.name) continue;
      aliases += (aliases.empty() ? "" : ", ") + alias;
    }
    if (!aliases.empty()) names += " (also " + aliases + ")";
  }
  return names;
}

}  // namespace troupe
