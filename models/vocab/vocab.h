#pragma once
// Vocabulary as stored in a checkpoint, independent of the tokenizer algorithm.
#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

enum class VocabKind { spm, bpe };  // SentencePiece-style (llama) or GPT-2 byte-level BPE

// Token types as GGUF and SentencePiece number them.
enum class TokenType : int32_t { undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct Vocab {
  VocabKind kind = VocabKind::spm;
  std::vector<std::string> tokens;   // SPM pieces use U+2581 for space; BPE tokens are byte-level unicode
  std::vector<float> scores;         // SPM merge priorities (empty for BPE)
  std::vector<TokenType> types;      // may be empty: all normal
  std::vector<std::string> merges;   // BPE merges "a b", highest priority first (empty for SPM)
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = false;              // prepend BOS when tokenizing a prompt
  bool add_space_prefix = true;      // SPM: prepend a space to the text
  std::string chat_template;         // Jinja chat template from the model's metadata ("" if none)
};

}  // namespace troupe
