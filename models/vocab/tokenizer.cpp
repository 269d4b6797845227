// Picks the tokenizer algorithm a vocabulary was built for.
#include "models/vocab/tokenizer.h"

#include <stdexcept>
#include <string>

namespace troupe {

// Defined next to their algorithms, in tokenizer_spm.cpp and tokenizer_bpe.cpp.
std::unique_ptr<Tokenizer> make_spm_tokenizer(const Vocab& vocab);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const Vocab& vocab);

std::unique_ptr<Tokenizer> make_tokenizer(const Vocab& vocab) {
  switch (vocab.kind) {
    case VocabKind::spm:
      return make_spm_tokenizer(vocab);
    case VocabKind::bpe:
      return make_bpe_tokenizer(vocab);
  }
  throw std::invalid_argument("unknown vocabulary kind " + std::to_string(static_cast<int>(vocab.kind)));
}

}  // namespace troupe
