// What both tokenizer algorithms share: cutting special tokens out of the text (llama.cpp's
// tokenizer_st_partition), the stop ids, and picking the algorithm a vocabulary was built for.
#include "models/vocab/tokenizer.h"

#include <algorithm>
#include <list>
#include <stdexcept>
#include <string>

namespace troupe {

// Defined next to their algorithms, in tokenizer_spm.cpp and tokenizer_bpe.cpp.
std::unique_ptr<Tokenizer> make_spm_tokenizer(const Vocab& vocab);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const Vocab& vocab);

namespace {

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// A piece of the text being tokenized: raw text [offset, offset + len) or one special token.
struct Fragment {
  int32_t token;  // -1 for raw text
  size_t offset;
  size_t len;
};

}  // namespace

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  const int32_t n = static_cast<int32_t>(vocab_.tokens.size());
  for (int32_t id = 0; id < n; ++id) {
    const TokenType type = token_type(vocab_, id);
    const bool special = type == TokenType::control || type == TokenType::user_defined || type == TokenType::unknown;
    if (special && !vocab_.tokens[id].empty()) special_ids_.push_back(id);
  }
  std::stable_sort(special_ids_.begin(), special_ids_.end(), [&](int32_t a, int32_t b) {
    return vocab_.tokens[a].size() > vocab_.tokens[b].size();
  });
  lstrip_.assign(n, false);
  rstrip_.assign(n, false);
  for (int32_t id : vocab_.lstrip_ids) {
    if (id >= 0 && id < n) lstrip_[id] = true;
  }
  for (int32_t id : vocab_.rstrip_ids) {
    if (id >= 0 && id < n) rstrip_[id] = true;
  }
  stop_ids_ = end_of_generation_ids(vocab_);
}

bool Tokenizer::is_stop(int32_t id) const { return std::binary_search(stop_ids_.begin(), stop_ids_.end(), id); }

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= n_vocab()) {
    throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " +
                            std::to_string(n_vocab()) + " tokens");
  }
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> ids;
  if (add_bos && vocab_.bos_id >= 0) ids.push_back(vocab_.bos_id);
  if (text.empty()) return ids;

  // Each special token in turn (longest first) splits every raw fragment it occurs in.
  std::list<Fragment> fragments = {{-1, 0, text.size()}};
  for (int32_t id : special_ids_) {
    const TokenType type = token_type(vocab_, id);
    if (!parse_special && type != TokenType::user_defined) continue;
    const std::string& special = vocab_.tokens[id];
    for (auto it = fragments.begin(); it != fragments.end(); ++it) {
      if (it->token >= 0) continue;
      size_t begin = it->offset, end = it->offset + it->len;
      const size_t match = text.find(special, begin);
      if (match == std::string::npos || match + special.size() > end) continue;
      // Replace the fragment by [left] special [right], then go on in the right part.
      size_t left_end = match;
      if (lstrip_[id]) {
        while (left_end > begin && is_ascii_space(text[left_end - 1])) --left_end;
      }
      size_t right_begin = match + special.size();
      if (rstrip_[id]) {
        while (right_begin < end && is_ascii_space(text[right_begin])) ++right_begin;
      }
      it = fragments.erase(it);
      if (left_end > begin) fragments.insert(it, {-1, begin, left_end - begin});
      fragments.insert(it, {id, match, special.size()});
      if (right_begin < end) {
        it = fragments.insert(it, {-1, right_begin, end - right_begin});
      }
      --it;  // the loop's ++it lands on the right part (or past the special token when there is none)
    }
  }

  bool after_special = true;
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      ids.push_back(f.token);
      after_special = true;
    } else {
      encode_text(text.data() + f.offset, f.len, after_special, ids);
      after_special = false;
    }
  }
  return ids;
}

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
