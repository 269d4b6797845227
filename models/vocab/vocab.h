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
  // BPE pre-tokenizer by llama.cpp's name (GGUF tokenizer.ggml.pre): "gpt-2", "llama-bpe", "qwen2"
  // (see pre_tokenizer.h). Unused by SPM.
  std::string pre = "gpt-2";
  // BPE: a whole pre-token that is itself a token becomes that token without merging (Llama-3).
  bool ignore_merges = false;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  // Further ids that end generation besides eos_id: HF `eos_token_id` lists, GGUF eot/eom ids.
  std::vector<int32_t> extra_eos_ids;
  // Special/added tokens that swallow the whitespace on their left/right when found in text
  // (HF added_tokens lstrip/rstrip; llama.cpp sets rstrip for Phi-3's special tokens).
  std::vector<int32_t> lstrip_ids;
  std::vector<int32_t> rstrip_ids;
  bool add_bos = false;              // prepend BOS when tokenizing a prompt
  bool add_space_prefix = true;      // SPM: prepend a space to the text
  std::string chat_template;         // Jinja chat template from the model's metadata ("" if none)
};

TokenType token_type(const Vocab& vocab, int32_t id);  // normal when the vocabulary has no types

// The ids that end generation, sorted: eos_id, extra_eos_ids and, as llama.cpp decides its
// end-of-generation set, every token written <|eot_id|>, <|eom_id|>, <|im_end|>, <|end|>,
// <end_of_turn>, <|endoftext|>, <|end_of_text|>, <EOT> or _<EOT>.
std::vector<int32_t> end_of_generation_ids(const Vocab& vocab);

}  // namespace troupe
