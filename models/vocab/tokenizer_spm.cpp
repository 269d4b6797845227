// SentencePiece-style BPE over scored pieces, as llama.cpp's llm_tokenizer_spm does it:
// the text (with a space in front when the vocabulary asks for one) has its spaces
// replaced by U+2581, is split into UTF-8 characters, and adjacent symbols are merged
// while their concatenation is a piece, highest score first (ties: leftmost). Symbols that
// are not pieces become byte tokens <0xAB>, or <unk> when the vocabulary has none.
#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <queue>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/vocab/tokenizer.h"

namespace troupe {
namespace {

constexpr char kSpaceMarker[] = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's visible space
constexpr char kUnknownGlyph[] = "\xE2\x96\x85";  // U+2585 "▅", how llama.cpp renders <unk>

// Length of the UTF-8 character starting at text[offset]. A byte that does not start a
// complete sequence counts as one character of its own, so invalid UTF-8 still reaches the
// byte tokens unchanged (and cannot swallow the bytes of a following "▁").
size_t utf8_char_length(const std::string& text, size_t offset) {
  const unsigned char lead = static_cast<unsigned char>(text[offset]);
  size_t len = 1;
  if ((lead & 0xE0) == 0xC0) {
    len = 2;
  } else if ((lead & 0xF0) == 0xE0) {
    len = 3;
  } else if ((lead & 0xF8) == 0xF0) {
    len = 4;
  }
  if (offset + len > text.size()) return 1;
  for (size_t i = 1; i < len; ++i) {
    if ((static_cast<unsigned char>(text[offset + i]) & 0xC0) != 0x80) return 1;
  }
  return len;
}

TokenType type_of(const Vocab& vocab, size_t id) {
  return id < vocab.types.size() ? vocab.types[id] : TokenType::normal;
}

// One run of text in the merge chain; merged symbols grow to the right, emptied ones have len 0.
struct Symbol {
  size_t offset;
  size_t len;
  int prev;
  int next;
};

// A candidate merge of two neighbouring symbols. The lengths recorded at push time tell
// whether it is stale: any merge touching either symbol changes one of them.
struct Bigram {
  float score;
  int left;
  int right;
  size_t left_len;
  size_t right_len;
};

struct LowerPriority {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(const Vocab& vocab) : Tokenizer(vocab) {
    byte_tokens_.fill(-1);
    token_bytes_.resize(vocab_.tokens.size());
    for (size_t id = 0; id < vocab_.tokens.size(); ++id) {
      const std::string& piece = vocab_.tokens[id];
      const TokenType type = type_of(vocab_, id);
      if (type == TokenType::byte) {
        unsigned value = 0;
        char tail = 0;
        if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%2X>%c", &value, &tail) == 1) {
          byte_tokens_[value] = static_cast<int32_t>(id);
          token_bytes_[id] = std::string(1, static_cast<char>(value));
        }
        continue;
      }
      if (type == TokenType::control) continue;  // BOS/EOS print as nothing
      if (type == TokenType::unknown) {
        token_bytes_[id] = kUnknownGlyph;
        continue;
      }
      // SentencePiece only ever forms normal (and user-defined/unused) pieces by merging;
      // control, unknown and byte pieces are reachable by id only.
      mergeable_.emplace(piece, static_cast<int32_t>(id));
      token_bytes_[id] = replace_space_markers(piece);
    }
  }

  void encode_text(const char* begin, size_t len, bool after_special, std::vector<int32_t>& ids) const override {
    // llama.cpp puts the space prefix at the start of the text and after each special token.
    std::string escaped;
    escaped.reserve(len * 2 + 3);
    if (vocab_.add_space_prefix && after_special) escaped += kSpaceMarker;
    for (size_t i = 0; i < len; ++i) {
      if (begin[i] == ' ') {
        escaped += kSpaceMarker;
      } else {
        escaped += begin[i];
      }
    }

    std::vector<Symbol> symbols;
    symbols.reserve(escaped.size());
    for (size_t offset = 0; offset < escaped.size();) {
      const size_t len = utf8_char_length(escaped, offset);
      const int index = static_cast<int>(symbols.size());
      symbols.push_back({offset, len, index - 1, offset + len == escaped.size() ? -1 : index + 1});
      offset += len;
    }

    std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> queue;
    auto try_add_bigram = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const Symbol& l = symbols[left];
      const Symbol& r = symbols[right];
      const auto found = mergeable_.find(escaped.substr(l.offset, l.len + r.len));
      if (found == mergeable_.end()) return;
      queue.push({score_of(found->second), left, right, l.len, r.len});
    };
    for (size_t i = 1; i < symbols.size(); ++i) try_add_bigram(static_cast<int>(i) - 1, static_cast<int>(i));

    while (!queue.empty()) {
      const Bigram bigram = queue.top();
      queue.pop();
      Symbol& left = symbols[bigram.left];
      Symbol& right = symbols[bigram.right];
      if (left.len != bigram.left_len || right.len != bigram.right_len) continue;  // stale

      left.len += right.len;
      right.len = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = bigram.left;

      try_add_bigram(left.prev, bigram.left);
      try_add_bigram(bigram.left, left.next);
    }

    for (int i = 0; i != -1; i = symbols[i].next) {
      const Symbol& symbol = symbols[i];
      const auto found = mergeable_.find(escaped.substr(symbol.offset, symbol.len));
      if (found != mergeable_.end()) {
        ids.push_back(found->second);
        continue;
      }
      for (size_t b = 0; b < symbol.len; ++b) ids.push_back(byte_token(escaped[symbol.offset + b]));
    }
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    return token_bytes_[id];
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    for (int32_t id : ids) {
      check_id(id);
      if (id == vocab_.bos_id || id == vocab_.eos_id) continue;
      text += token_bytes_[id];
    }
    // encode() put this space in front; SentencePiece and llama.cpp take it off again.
    if (vocab_.add_space_prefix && !text.empty() && text[0] == ' ') text.erase(0, 1);
    return text;
  }

 private:
  static std::string replace_space_markers(const std::string& piece) {
    std::string out;
    out.reserve(piece.size());
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, 3, kSpaceMarker) == 0) {
        out += ' ';
        i += 3;
      } else {
        out += piece[i++];
      }
    }
    return out;
  }

  float score_of(int32_t id) const {
    return static_cast<size_t>(id) < vocab_.scores.size() ? vocab_.scores[id] : 0.0f;
  }

  int32_t byte_token(char c) const {
    const int32_t id = byte_tokens_[static_cast<unsigned char>(c)];
    if (id >= 0) return id;
    if (vocab_.unk_id >= 0) return vocab_.unk_id;
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(c));
    throw std::runtime_error(std::string("SentencePiece vocabulary has neither a byte token nor <unk> for byte ") +
                             hex);
  }

  std::unordered_map<std::string, int32_t> mergeable_;  // piece text -> id, for pieces merging may form
  std::array<int32_t, 256> byte_tokens_;                // byte value -> id of <0xAB>, -1 when absent
  std::vector<std::string> token_bytes_;                // id -> the bytes it prints as
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(const Vocab& vocab) { return std::make_unique<SpmTokenizer>(vocab); }

}  // namespace troupe
