#pragma once
// Byte-level BPE pre-tokenizers: the regex that cuts text into pre-tokens before merging.
// Chosen by GGUF `tokenizer.ggml.pre`, under llama.cpp's names; each family is one regex:
//   gpt-2      GPT-2, Phi-2 (also named phi-2, jina-es, jina-de, jina-v2-es/-de/-code)
//   llama-bpe  Llama-3.x (also llama3, llama-v3, falcon3): digits in runs of at most three,
//              contractions in either case; llama.cpp also turns on ignore_merges and BOS
//   qwen2      Qwen2/2.5 (also deepseek-r1-qwen): as llama-bpe but one digit per pre-token
// Any other name is refused, naming it and the known ones: a wrong pre-tokenizer gives
// plausible but wrong ids, which is worse than no answer.
#include <string>
#include <vector>

namespace troupe {

struct PreTokenizer {
  std::string name;       // the family name above
  std::string regex;      // PCRE2 syntax, matched with UTF and UCP
  bool ignore_merges;     // llama.cpp's default for the family
  bool add_bos;           // llama.cpp's default for the family
};

// The pre-tokenizer for a `tokenizer.ggml.pre` value ("" = key absent: gpt-2, as before).
// Throws std::invalid_argument for an unknown name.
const PreTokenizer& pre_tokenizer_named(const std::string& pre);

// The family whose Hugging Face `Split` regex (tokenizer.json) this is, or nullptr.
const PreTokenizer* pre_tokenizer_for_hf_regex(const std::string& hf_regex);

// "gpt-2, llama-bpe, qwen2" plus the aliases, for error messages.
std::string known_pre_tokenizer_names();

}  // namespace troupe
