// Vocabularies from Hugging Face tokenizer files: a SentencePiece `tokenizer.model`
// (protobuf, parsed by hand: only a handful of fields matter) and GPT-2's `vocab.json` +
// `merges.txt`. Every problem is a CheckpointError naming the file.
#include "models/format/hf_tokenizer_files.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "models/format/checkpoint.h"

namespace troupe {
namespace {

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot open file");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw CheckpointError(path + ": read error");
  return bytes.str();
}

// Protobuf wire format: a sequence of (field number, wire type) keys, each followed by a
// varint, a fixed 32/64-bit value or a length-prefixed byte string.
enum class WireType : uint32_t { varint = 0, fixed64 = 1, length_delimited = 2, fixed32 = 5 };

class ProtoReader {
 public:
  ProtoReader(const char* begin, const char* end, const std::string& path, std::string what)
      : p_(reinterpret_cast<const uint8_t*>(begin)), end_(reinterpret_cast<const uint8_t*>(end)),
        path_(path), what_(std::move(what)) {}

  bool at_end() const { return p_ == end_; }

  // Reads the next key; returns false at the end of the message.
  bool next_field(uint32_t& field, WireType& wire) {
    if (at_end()) return false;
    const uint64_t key = varint();
    field = static_cast<uint32_t>(key >> 3);
    const uint32_t type = static_cast<uint32_t>(key & 7);
    if (field == 0) fail("field number 0");
    if (type != 0 && type != 1 && type != 2 && type != 5) {
      fail("unsupported wire type " + std::to_string(type) + " for field " + std::to_string(field));
    }
    wire = static_cast<WireType>(type);
    return true;
  }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_end()) fail("truncated varint");
      const uint8_t byte = *p_++;
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    fail("varint longer than 10 bytes");
  }

  float fixed32_float() {
    need(4);
    float value;
    std::memcpy(&value, p_, 4);  // little-endian on every platform troupe runs on
    p_ += 4;
    return value;
  }

  // A length-delimited field's bytes as [begin, end).
  std::pair<const char*, const char*> bytes() {
    const uint64_t len = varint();
    need(len);
    const char* begin = reinterpret_cast<const char*>(p_);
    p_ += len;
    return {begin, begin + len};
  }

  void skip(WireType wire) {
    switch (wire) {
      case WireType::varint: varint(); return;
      case WireType::fixed64: need(8); p_ += 8; return;
      case WireType::fixed32: need(4); p_ += 4; return;
      case WireType::length_delimited: bytes(); return;
    }
  }

  void expect(WireType actual, WireType expected, uint32_t field) {
    if (actual != expected) {
      fail("field " + std::to_string(field) + " has wire type " + std::to_string(static_cast<uint32_t>(actual)) +
           ", expected " + std::to_string(static_cast<uint32_t>(expected)));
    }
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw CheckpointError(path_ + ": not a valid SentencePiece model (" + what_ + ": " + problem +
                          "; the file may be truncated or corrupt)");
  }

 private:
  void need(uint64_t n) {
    if (static_cast<uint64_t>(end_ - p_) < n) fail("truncated: needs " + std::to_string(n) + " more bytes");
  }

  const uint8_t* p_;
  const uint8_t* end_;
  const std::string& path_;
  std::string what_;
};

// sentencepiece_model.proto: SentencePiece { piece = 1; score = 2; type = 3 }.
void read_piece(ProtoReader message, Vocab& vocab) {
  std::string piece;
  float score = 0.0f;
  uint64_t type = static_cast<uint64_t>(TokenType::normal);
  uint32_t field;
  WireType wire;
  while (message.next_field(field, wire)) {
    if (field == 1) {
      message.expect(wire, WireType::length_delimited, field);
      const auto [begin, end] = message.bytes();
      piece.assign(begin, end);
    } else if (field == 2) {
      message.expect(wire, WireType::fixed32, field);
      score = message.fixed32_float();
    } else if (field == 3) {
      message.expect(wire, WireType::varint, field);
      type = message.varint();
      if (type < 1 || type > 6) message.fail("unknown piece type " + std::to_string(type));
    } else {
      message.skip(wire);
    }
  }
  vocab.tokens.push_back(std::move(piece));
  vocab.scores.push_back(score);
  vocab.types.push_back(static_cast<TokenType>(type));
}

// TrainerSpec: model_type = 3 (UNIGRAM 1, BPE 2, WORD 3, CHAR 4), unk_id = 40, bos_id = 41,
// eos_id = 42, pad_id = 43. Returns model_type.
uint64_t read_trainer_spec(ProtoReader message, Vocab& vocab) {
  uint64_t model_type = 1;  // proto default
  uint32_t field;
  WireType wire;
  while (message.next_field(field, wire)) {
    int32_t* id = nullptr;
    switch (field) {
      case 40: id = &vocab.unk_id; break;
      case 41: id = &vocab.bos_id; break;
      case 42: id = &vocab.eos_id; break;
      case 43: id = &vocab.pad_id; break;
    }
    if (id != nullptr) {
      message.expect(wire, WireType::varint, field);
      *id = static_cast<int32_t>(message.varint());  // int32: negatives are 10-byte varints
    } else if (field == 3) {
      message.expect(wire, WireType::varint, field);
      model_type = message.varint();
    } else {
      message.skip(wire);
    }
  }
  return model_type;
}

// NormalizerSpec: add_dummy_prefix = 3 (default true).
void read_normalizer_spec(ProtoReader message, Vocab& vocab) {
  uint32_t field;
  WireType wire;
  while (message.next_field(field, wire)) {
    if (field == 3) {
      message.expect(wire, WireType::varint, field);
      vocab.add_space_prefix = message.varint() != 0;
    } else {
      message.skip(wire);
    }
  }
}

void check_special_id(const std::string& path, const char* name, int32_t id, size_t n_tokens) {
  if (id >= static_cast<int64_t>(n_tokens)) {
    throw CheckpointError(path + ": " + name + " " + std::to_string(id) + " is outside the " +
                          std::to_string(n_tokens) + " pieces (the file may be truncated)");
  }
}

}  // namespace

Vocab read_sentencepiece_model(const std::string& path) {
  const std::string file = read_whole_file(path);
  Vocab vocab;
  vocab.kind = VocabKind::spm;
  vocab.add_bos = true;
  vocab.unk_id = 0, vocab.bos_id = 1, vocab.eos_id = 2, vocab.pad_id = -1;  // TrainerSpec defaults
  vocab.add_space_prefix = true;                                            // NormalizerSpec default

  // ModelProto: pieces = 1 (repeated), trainer_spec = 2, normalizer_spec = 3.
  ProtoReader model(file.data(), file.data() + file.size(), path, "ModelProto");
  bool has_trainer_spec = false, has_normalizer_spec = false;
  uint64_t model_type = 0;
  uint32_t field;
  WireType wire;
  while (model.next_field(field, wire)) {
    if (field >= 1 && field <= 3) {
      model.expect(wire, WireType::length_delimited, field);
      const auto [begin, end] = model.bytes();
      if (field == 1) {
        read_piece(ProtoReader(begin, end, path, "piece " + std::to_string(vocab.tokens.size())), vocab);
      } else if (field == 2) {
        model_type = read_trainer_spec(ProtoReader(begin, end, path, "trainer_spec"), vocab);
        has_trainer_spec = true;
      } else {
        read_normalizer_spec(ProtoReader(begin, end, path, "normalizer_spec"), vocab);
        has_normalizer_spec = true;
      }
    } else {
      model.skip(wire);
    }
  }

  // The trainer writes pieces first, then both specs, so a file cut short anywhere among the
  // pieces lacks the specs; a real model always has them.
  if (vocab.tokens.empty()) throw CheckpointError(path + ": SentencePiece model has no pieces");
  if (!has_trainer_spec || !has_normalizer_spec) {
    throw CheckpointError(path + ": SentencePiece model lacks its " +
                          std::string(!has_trainer_spec ? "trainer_spec" : "normalizer_spec") +
                          " (the file is truncated or not a SentencePiece model)");
  }
  if (model_type != 2) {
    throw CheckpointError(path + ": SentencePiece model_type " + std::to_string(model_type) +
                          " is not supported; only BPE models (model_type 2) tokenize correctly here");
  }
  check_special_id(path, "unk_id", vocab.unk_id, vocab.tokens.size());
  check_special_id(path, "bos_id", vocab.bos_id, vocab.tokens.size());
  check_special_id(path, "eos_id", vocab.eos_id, vocab.tokens.size());
  check_special_id(path, "pad_id", vocab.pad_id, vocab.tokens.size());
  return vocab;
}

Vocab read_gpt2_vocab_files(const std::string& vocab_json, const std::string& merges_txt) {
  Vocab vocab;
  vocab.kind = VocabKind::bpe;
  vocab.add_bos = false;
  vocab.add_space_prefix = false;

  nlohmann::json token_ids;
  try {
    token_ids = nlohmann::json::parse(read_whole_file(vocab_json));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(vocab_json + ": not valid JSON: " + e.what());
  }
  if (!token_ids.is_object() || token_ids.empty()) {
    throw CheckpointError(vocab_json + ": expected a non-empty JSON object mapping tokens to ids");
  }
  vocab.tokens.resize(token_ids.size());
  std::vector<bool> seen(token_ids.size(), false);
  for (const auto& [token, id_json] : token_ids.items()) {
    if (!id_json.is_number_integer()) {
      throw CheckpointError(vocab_json + ": id of token \"" + token + "\" is not an integer");
    }
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(vocab.tokens.size())) {
      throw CheckpointError(vocab_json + ": token \"" + token + "\" has id " + std::to_string(id) +
                            ", outside 0.." + std::to_string(vocab.tokens.size() - 1) + " (ids must be dense)");
    }
    if (seen[id]) throw CheckpointError(vocab_json + ": id " + std::to_string(id) + " is used twice");
    seen[id] = true;
    vocab.tokens[id] = token;
  }

  vocab.types.assign(vocab.tokens.size(), TokenType::normal);
  if (const auto end_of_text = token_ids.find("<|endoftext|>"); end_of_text != token_ids.end()) {
    const int32_t id = end_of_text->get<int32_t>();
    vocab.bos_id = vocab.eos_id = id;
    vocab.types[id] = TokenType::control;  // as llama.cpp's converter marks it
  }

  std::istringstream merges(read_whole_file(merges_txt));
  std::string line;
  for (size_t line_number = 1; std::getline(merges, line); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_number == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t space = line.find(' ');
    if (space == 0 || space == std::string::npos || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos) {
      throw CheckpointError(merges_txt + ": line " + std::to_string(line_number) +
                            " is not a merge \"left right\": \"" + line + "\"");
    }
    vocab.merges.push_back(line);
  }
  if (vocab.merges.empty()) throw CheckpointError(merges_txt + ": no merges");
  return vocab;
}

}  // namespace troupe
