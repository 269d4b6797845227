// Byte-level BPE (GPT-2, Llama-3, Qwen2): the pre-tokenizer regex splits the text into
// pre-tokens, each byte of a pre-token is written as a printable code point (GPT-2's
// bytes_to_unicode alphabet), and adjacent symbols are merged by rank (earlier in the merges
// list = merged first) until no listed merge applies; the resulting strings are the tokens.
// With ignore_merges (Llama-3) a pre-token that is a token as a whole is taken as it is.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <queue>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/vocab/pre_tokenizer.h"
#include "models/vocab/tokenizer.h"

namespace troupe {
namespace {

std::string utf8_encode(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other 68 bytes are
// moved to U+0100 onwards, so every byte has a visible, non-space character.
std::array<uint32_t, 256> gpt2_byte_code_points() {
  std::array<uint32_t, 256> cps{};
  uint32_t next_unprintable = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    cps[b] = printable ? b : next_unprintable++;
  }
  return cps;
}

// Decodes the UTF-8 character at p into cp and returns its length, or 0 when the bytes
// there are not valid UTF-8 (overlong forms and surrogates included).
size_t decode_utf8_char(const unsigned char* p, const unsigned char* end, uint32_t& cp) {
  const unsigned char lead = *p;
  size_t len;
  uint32_t min_cp;
  if (lead < 0x80) {
    cp = lead;
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    len = 2, min_cp = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    len = 3, min_cp = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    len = 4, min_cp = 0x10000;
  } else {
    return 0;
  }
  if (static_cast<size_t>(end - p) < len) return 0;
  cp = lead & (0x7F >> len);
  for (size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Length of the valid UTF-8 prefix of [begin, end); PCRE2 in UTF mode rejects anything else.
size_t valid_utf8_prefix(const unsigned char* begin, const unsigned char* end) {
  const unsigned char* p = begin;
  uint32_t cp;
  while (p < end) {
    const size_t len = decode_utf8_char(p, end, cp);
    if (len == 0) break;
    p += len;
  }
  return static_cast<size_t>(p - begin);
}

struct Symbol {
  size_t offset;  // into the byte-level encoded word
  size_t len;
  int prev;
  int next;
};

struct Bigram {
  int32_t rank;
  int left;
  int right;
  size_t left_len;
  size_t right_len;
};

struct LowerPriority {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(const Vocab& vocab) : Tokenizer(vocab), pre_(pre_tokenizer_named(vocab.pre)) {
    const std::array<uint32_t, 256> cps = gpt2_byte_code_points();
    std::unordered_map<uint32_t, unsigned char> byte_of_code_point;
    for (int b = 0; b < 256; ++b) {
      byte_symbols_[b] = utf8_encode(cps[b]);
      byte_of_code_point[cps[b]] = static_cast<unsigned char>(b);
    }

    token_bytes_.resize(vocab_.tokens.size());
    for (size_t id = 0; id < vocab_.tokens.size(); ++id) {
      const std::string& token = vocab_.tokens[id];
      token_ids_.emplace(token, static_cast<int32_t>(id));
      const TokenType type = id < vocab_.types.size() ? vocab_.types[id] : TokenType::normal;
      if (type == TokenType::control) continue;  // <|endoftext|> prints as nothing
      token_bytes_[id] = byte_level_to_bytes(token, byte_of_code_point);
    }
    for (int b = 0; b < 256; ++b) {
      if (token_ids_.count(byte_symbols_[b]) == 0) {
        throw std::invalid_argument("GPT-2 vocabulary lacks the token for byte " + std::to_string(b) + " (\"" +
                                    byte_symbols_[b] + "\")");
      }
    }
    for (size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
      merge_ranks_.emplace(vocab_.merges[rank], static_cast<int32_t>(rank));
    }

    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pretokenizer_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pre_.regex.c_str()), PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
    if (pretokenizer_ == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      throw std::runtime_error(pre_.name + " pre-tokenizer regex does not compile at offset " +
                               std::to_string(error_offset) + ": " + reinterpret_cast<char*>(message));
    }
    // JIT is an optimisation only; the interpreter gives the same matches when it is unavailable.
    pcre2_jit_compile(pretokenizer_, PCRE2_JIT_COMPLETE);
  }

  ~BpeTokenizer() override { pcre2_code_free(pretokenizer_); }
  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  void encode_text(const char* begin, size_t len, bool, std::vector<int32_t>& ids) const override {
    for_each_pretoken(begin, len, [&](const char* word, size_t word_len) { encode_word(word, word_len, ids); });
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
    return text;
  }

 private:
  // Tokens are written in the byte-level alphabet; characters outside it (possible in
  // added tokens) stand for their own UTF-8 bytes.
  static std::string byte_level_to_bytes(const std::string& token,
                                         const std::unordered_map<uint32_t, unsigned char>& byte_of_code_point) {
    std::string out;
    const auto* p = reinterpret_cast<const unsigned char*>(token.data());
    const auto* end = p + token.size();
    while (p < end) {
      uint32_t cp = 0;
      const size_t len = decode_utf8_char(p, end, cp);
      const auto found = len > 0 ? byte_of_code_point.find(cp) : byte_of_code_point.end();
      if (found != byte_of_code_point.end()) {
        out += static_cast<char>(found->second);
      } else {
        out.append(reinterpret_cast<const char*>(p), std::max<size_t>(len, 1));
      }
      p += std::max<size_t>(len, 1);
    }
    return out;
  }

  // Calls `emit` for each pre-token. Invalid UTF-8 cannot go through the regex, so each
  // invalid byte becomes a pre-token of its own (its byte token keeps the round trip exact).
  template <typename Emit>
  void for_each_pretoken(const char* text, size_t size, Emit&& emit) const {
    const auto* subject = reinterpret_cast<const unsigned char*>(text);
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(pretokenizer_, nullptr);
    if (match == nullptr) throw std::bad_alloc();
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match_owner(match, pcre2_match_data_free);

    size_t segment_begin = 0;
    while (segment_begin < size) {
      const size_t segment_end = segment_begin + valid_utf8_prefix(subject + segment_begin, subject + size);
      size_t offset = segment_begin;
      while (offset < segment_end) {
        // The subject ends at the segment end; the pattern has no lookbehind, so starting
        // at `offset` in it sees exactly what matching the segment alone would.
        const int rc = pcre2_match(pretokenizer_, subject, segment_end, offset, PCRE2_NO_UTF_CHECK, match, nullptr);
        if (rc < 0) {
          if (rc != PCRE2_ERROR_NOMATCH) {
            throw std::runtime_error(pre_.name + " pre-tokenizer regex failed with PCRE2 error " + std::to_string(rc));
          }
          emit(text + offset, segment_end - offset);  // cannot happen: the pattern covers every character
          break;
        }
        const PCRE2_SIZE* span = pcre2_get_ovector_pointer(match);
        if (span[0] > offset) emit(text + offset, span[0] - offset);
        if (span[1] == span[0]) throw std::runtime_error(pre_.name + " pre-tokenizer regex matched an empty string");
        emit(text + span[0], span[1] - span[0]);
        offset = span[1];
      }
      if (segment_end < size) emit(text + segment_end, 1);
      segment_begin = segment_end + (segment_end < size ? 1 : 0);
    }
  }

  void encode_word(const char* begin, size_t len, std::vector<int32_t>& ids) const {
    std::string word;  // the pre-token in the byte-level alphabet, one symbol per byte
    std::vector<Symbol> symbols;
    symbols.reserve(len);
    for (size_t i = 0; i < len; ++i) {
      const std::string& symbol = byte_symbols_[static_cast<unsigned char>(begin[i])];
      const int index = static_cast<int>(symbols.size());
      symbols.push_back({word.size(), symbol.size(), index - 1, i + 1 == len ? -1 : index + 1});
      word += symbol;
    }
    if (vocab_.ignore_merges) {
      const auto whole = token_ids_.find(word);
      if (whole != token_ids_.end()) {
        ids.push_back(whole->second);
        return;
      }
    }

    std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> queue;
    std::string key;
    auto try_add_bigram = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const Symbol& l = symbols[left];
      const Symbol& r = symbols[right];
      key.assign(word, l.offset, l.len);
      key += ' ';
      key.append(word, r.offset, r.len);
      const auto found = merge_ranks_.find(key);
      if (found == merge_ranks_.end()) return;
      queue.push({found->second, left, right, l.len, r.len});
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
      const auto found = token_ids_.find(word.substr(symbol.offset, symbol.len));
      if (found != token_ids_.end()) {
        ids.push_back(found->second);
        continue;
      }
      // A merge whose result is not a token (a malformed vocabulary): fall back to the
      // single-byte tokens, which the constructor made sure exist.
      for (size_t offset = symbol.offset; offset < symbol.offset + symbol.len;) {
        const size_t n = static_cast<unsigned char>(word[offset]) < 0x80 ? 1 : 2;
        ids.push_back(token_ids_.at(word.substr(offset, n)));
        offset += n;
      }
    }
  }

  std::array<std::string, 256> byte_symbols_;               // byte -> UTF-8 of its byte-level code point
  std::unordered_map<std::string, int32_t> token_ids_;      // byte-level token text -> id
  std::unordered_map<std::string, int32_t> merge_ranks_;    // "left right" -> rank (lower merges first)
  std::vector<std::string> token_bytes_;                    // id -> the bytes it prints as
  const PreTokenizer& pre_;
  pcre2_code* pretokenizer_ = nullptr;                      // shared read-only; match data is per call
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const Vocab& vocab) { return std::make_unique<BpeTokenizer>(vocab); }

}  // namespace troupe
