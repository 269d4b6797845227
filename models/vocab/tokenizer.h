#pragma once
// Text <-> token ids. Two algorithms behind one interface:
//  - SentencePiece-style BPE over scored pieces with byte fallback (LLaMA family, Phi-3),
//  - byte-level BPE over ranked merges after a regex pre-tokenizer (GPT-2, Phi-2, Llama-3,
//    Qwen2; see pre_tokenizer.h).
// Before either runs, special tokens written in the text are cut out as llama.cpp does:
// user-defined tokens always, control tokens (<|im_start|>, <|eot_id|>, ...) only when the
// caller asks (parse_special), longest first.
// Built from a Vocab, which comes from GGUF metadata (a vocab-only file is enough) or from
// Hugging Face tokenizer files (tokenizer.json, tokenizer.model, or vocab.json + merges.txt).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/vocab/vocab.h"

namespace troupe {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`; BOS first when `add_bos` (callers pass vocab().add_bos by default).
  // With `parse_special`, control tokens written in the text become their ids (for prompts
  // rendered from a chat template); without it they are tokenized as plain text.
  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special = false) const;
  // The bytes one token stands for (a piece of UTF-8, possibly incomplete). Control tokens give "".
  virtual std::string token_bytes(int32_t id) const = 0;
  // Whole text of a token sequence; drops BOS/EOS and the SPM space prefix at the start.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

  const Vocab& vocab() const { return vocab_; }
  int32_t n_vocab() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  bool adds_bos() const { return vocab_.add_bos; }
  // The ids that end generation (EOS, end of turn, ...; see end_of_generation_ids in vocab.h).
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  bool is_stop(int32_t id) const;

 protected:
  explicit Tokenizer(Vocab vocab);
  // Appends the ids of a run of plain text. `after_special`: the run starts the text or
  // follows a special token (where SentencePiece puts its space prefix).
  virtual void encode_text(const char* begin, size_t len, bool after_special, std::vector<int32_t>& ids) const = 0;
  void check_id(int32_t id) const;

  Vocab vocab_;

 private:
  std::vector<int32_t> special_ids_;  // control, user-defined and unknown tokens, longest text first
  std::vector<int32_t> stop_ids_;     // sorted
  std::vector<bool> lstrip_, rstrip_;
};

std::unique_ptr<Tokenizer> make_tokenizer(const Vocab& vocab);

}  // namespace troupe
