#pragma once
// Text <-> token ids. Two algorithms behind one interface:
//  - SentencePiece-style BPE over scored pieces with byte fallback (LLaMA family),
//  - GPT-2 byte-level BPE over ranked merges with its regex pre-tokenizer.
// Built from a Vocab, which comes from GGUF metadata (a vocab-only file is enough) or
// from Hugging Face tokenizer files (tokenizer.model, or vocab.json + merges.txt).
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
  virtual std::vector<int32_t> encode(const std::string& text, bool add_bos) const = 0;
  // The bytes one token stands for (a piece of UTF-8, possibly incomplete). Control tokens give "".
  virtual std::string token_bytes(int32_t id) const = 0;
  // Whole text of a token sequence; drops BOS/EOS and the SPM space prefix at the start.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

  const Vocab& vocab() const { return vocab_; }
  int32_t n_vocab() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  bool adds_bos() const { return vocab_.add_bos; }

 protected:
  explicit Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
  Vocab vocab_;
};

std::unique_ptr<Tokenizer> make_tokenizer(const Vocab& vocab);

}  // namespace troupe
