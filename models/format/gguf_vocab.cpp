// GGUF tokenizer metadata, read with llama.cpp's defaults: tokenizer.ggml.model picks the
// algorithm (llama = SentencePiece, gpt2 = byte-level BPE), tokenizer.ggml.pre the BPE
// pre-tokenizer (which also sets ignore_merges and BOS defaults), eot/eom ids join the stop ids.
#include "models/format/gguf_vocab.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "models/format/checkpoint.h"
#include "models/vocab/pre_tokenizer.h"

namespace troupe {
namespace {

// llama.cpp (llama-vocab.cpp) marks Phi-3's special tokens rstrip by model name, as the
// Hugging Face tokenizer does, except <unk>, <s> and <|endoftext|>; </s> (user-defined) too.
void set_phi3_token_strips(Vocab& v) {
  for (int32_t id = 0; id < static_cast<int32_t>(v.tokens.size()); ++id) {
    const TokenType type = token_type(v, id);
    const std::string& text = v.tokens[id];
    const bool special = type == TokenType::control || type == TokenType::user_defined || type == TokenType::unknown;
    if ((special || text == "</s>") && text != "<unk>" && text != "<s>" && text != "<|endoftext|>") {
      v.rstrip_ids.push_back(id);
    }
  }
}

}  // namespace

Vocab read_gguf_vocab(const GgufFile& f) {
  Vocab v;
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model == "llama") {
    v.kind = VocabKind::spm;
  } else if (model == "gpt2") {
    v.kind = VocabKind::bpe;
  } else {
    throw CheckpointError(f.path() + ": unsupported tokenizer '" + model + "' (supported: llama, gpt2)");
  }
  v.tokens = f.get_array("tokenizer.ggml.tokens").strings;
  if (v.tokens.empty()) throw CheckpointError(f.path() + ": tokenizer.ggml.tokens is empty");
  const size_t n = v.tokens.size();
  if (f.has("tokenizer.ggml.scores")) {
    const auto& s = f.get_array("tokenizer.ggml.scores").numbers;
    if (s.size() != n) throw CheckpointError(f.path() + ": tokenizer.ggml.scores has a different length than tokens");
    v.scores.assign(s.begin(), s.end());
  }
  if (f.has("tokenizer.ggml.token_type")) {
    const auto& t = f.get_array("tokenizer.ggml.token_type").numbers;
    if (t.size() != n) throw CheckpointError(f.path() + ": tokenizer.ggml.token_type has a different length than tokens");
    for (size_t i = 0; i < t.size(); ++i) {
      if (!(t[i] >= 0 && t[i] <= 6))  // llama.cpp's token types are 0..6 (also refuses NaN)
        throw CheckpointError(f.path() + ": tokenizer.ggml.token_type[" + std::to_string(i) + "] is " +
                              std::to_string(t[i]) + ", expected a token type from 0 to 6");
      v.types.push_back(static_cast<TokenType>(static_cast<int32_t>(t[i])));
    }
  }
  if (f.has("tokenizer.ggml.merges")) v.merges = f.get_array("tokenizer.ggml.merges").strings;
  if (v.kind == VocabKind::bpe && v.merges.empty()) throw CheckpointError(f.path() + ": GPT-2 tokenizer without merges");

  const bool spm = v.kind == VocabKind::spm;
  bool default_add_bos = spm;
  if (!spm) {
    // SentencePiece vocabularies carry tokenizer.ggml.pre = "default", which means nothing to them.
    const std::string pre = f.get_string("tokenizer.ggml.pre", "");
    try {
      const PreTokenizer& family = pre_tokenizer_named(pre);
      v.pre = family.name;
      v.ignore_merges = family.ignore_merges;
      default_add_bos = family.add_bos;
    } catch (const std::invalid_argument& e) {
      throw CheckpointError(f.path() + ": " + e.what());
    }
  }

  // Token ids are stored as u32; "no token" is written as 0xFFFFFFFF.
  auto token_id = [&](const std::string& key, int32_t fallback) {
    const int64_t id = f.get_int(key, fallback);
    return (id < 0 || id >= static_cast<int64_t>(n)) ? -1 : static_cast<int32_t>(id);
  };
  v.bos_id = token_id("tokenizer.ggml.bos_token_id", spm ? 1 : -1);
  v.eos_id = token_id("tokenizer.ggml.eos_token_id", spm ? 2 : -1);
  v.unk_id = token_id("tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
  v.pad_id = token_id("tokenizer.ggml.padding_token_id", -1);
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (const int32_t id = token_id(key, -1); id >= 0) v.extra_eos_ids.push_back(id);
  }
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", default_add_bos) && v.bos_id >= 0;
  v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", spm);
  v.chat_template = f.get_string("tokenizer.chat_template", "");

  std::string name = f.get_string("general.name", "");
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) set_phi3_token_strips(v);
  return v;
}

}  // namespace troupe
