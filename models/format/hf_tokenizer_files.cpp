// Vocabularies from Hugging Face tokenizer files: a SentencePiece `tokenizer.model`
// (protobuf, parsed by hand: only a handful of fields matter), a `tokenizer.json` with a
// byte-level BPE model (the only tokenizer file Llama-3 ships), GPT-2's `vocab.json` +
// `merges.txt`, and what `tokenizer_config.json` / `config.json` add (chat template, BOS,
// end-of-generation ids). Every problem is a CheckpointError naming the file.
#include "models/format/hf_tokenizer_files.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <string>
#include <vector>

#include "models/format/checkpoint.h"
#include "models/vocab/pre_tokenizer.h"

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

using nlohmann::json;

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

json parse_json_file(const std::string& path) {
  try {
    return json::parse(read_whole_file(path));
  } catch (const json::exception& e) {
    throw CheckpointError(path + ": not valid JSON: " + e.what());
  }
}

// A byte-level pre_tokenizer: ByteLevel with its own (GPT-2) regex, or Sequence[Split(regex,
// Isolated), ByteLevel(use_regex false)] as Llama-3 and Qwen2 write it. Returns the family.
const PreTokenizer& read_pre_tokenizer(const json& pre, const std::string& path) {
  auto fail = [&](const std::string& why) -> const PreTokenizer& {
    throw CheckpointError(path + ": pre_tokenizer " + pre.dump().substr(0, 300) + " is not supported (" + why +
                          "); supported: ByteLevel, or Split with the regex of one of " + known_pre_tokenizer_names() +
                          " followed by ByteLevel");
  };
  auto check_byte_level = [&](const json& p, bool own_regex) {
    if (p.value("add_prefix_space", false)) fail("ByteLevel add_prefix_space");
    if (p.value("use_regex", true) != own_regex) fail(own_regex ? "ByteLevel without its regex" : "two regexes");
  };
  if (!pre.is_object()) fail("not an object");
  const std::string type = pre.value("type", "");
  if (type == "ByteLevel") {
    check_byte_level(pre, true);
    return pre_tokenizer_named("gpt-2");
  }
  if (type != "Sequence" || !pre.contains("pretokenizers") || pre["pretokenizers"].size() != 2) {
    fail("type " + type);
  }
  const json& split = pre["pretokenizers"][0];
  const json& byte_level = pre["pretokenizers"][1];
  if (split.value("type", "") != "Split" || byte_level.value("type", "") != "ByteLevel") fail("not Split, ByteLevel");
  if (split.value("behavior", "") != "Isolated" || split.value("invert", false)) fail("Split behavior");
  check_byte_level(byte_level, false);
  if (!split.contains("pattern") || !split["pattern"].contains("Regex") || !split["pattern"]["Regex"].is_string()) {
    fail("Split without a Regex pattern");
  }
  const PreTokenizer* family = pre_tokenizer_for_hf_regex(split["pattern"]["Regex"].get<std::string>());
  if (family == nullptr) fail("unknown Split regex");
  return *family;
}

// The first special token of the post-processor's "single" template when it comes before the
// text ($A): the BOS that Llama-3's TemplateProcessing adds. -1 when there is none.
int32_t template_bos(const json& post, const std::map<std::string, int32_t>& ids_of_added) {
  if (!post.is_object()) return -1;
  if (post.value("type", "") == "Sequence" && post.contains("processors")) {
    for (const json& p : post["processors"]) {
      if (const int32_t id = template_bos(p, ids_of_added); id >= 0) return id;
    }
    return -1;
  }
  if (post.value("type", "") != "TemplateProcessing" || !post.contains("single")) return -1;
  for (const json& piece : post["single"]) {
    if (piece.contains("Sequence")) return -1;  // the text comes first
    if (piece.contains("SpecialToken")) {
      const auto found = ids_of_added.find(piece["SpecialToken"].value("id", ""));
      return found == ids_of_added.end() ? -1 : found->second;
    }
  }
  return -1;
}

// A token named in tokenizer_config.json: "<|eot_id|>" or {"content": "<|eot_id|>", ...}.
std::string token_text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

int32_t find_token(const Vocab& v, const std::string& text) {
  if (text.empty()) return -1;
  const auto found = std::find(v.tokens.begin(), v.tokens.end(), text);
  return found == v.tokens.end() ? -1 : static_cast<int32_t>(found - v.tokens.begin());
}

// eos_token_id in config.json / generation_config.json: one id or a list (Llama-3.1+).
void add_eos_ids(const json& j, const std::string& path, Vocab& v) {
  if (!j.contains("eos_token_id") || j["eos_token_id"].is_null()) return;
  const json& e = j["eos_token_id"];
  std::vector<int64_t> ids;
  if (e.is_number_integer()) {
    ids.push_back(e.get<int64_t>());
  } else if (e.is_array()) {
    for (const json& x : e) {
      if (!x.is_number_integer()) throw CheckpointError(path + ": eos_token_id list holds a non-integer");
      ids.push_back(x.get<int64_t>());
    }
  } else {
    throw CheckpointError(path + ": eos_token_id must be an integer or a list of integers");
  }
  for (int64_t id : ids) {
    if (id < 0 || id >= static_cast<int64_t>(v.tokens.size())) {
      throw CheckpointError(path + ": eos_token_id " + std::to_string(id) + " is outside the vocabulary of " +
                            std::to_string(v.tokens.size()) + " tokens");
    }
    v.extra_eos_ids.push_back(static_cast<int32_t>(id));
  }
}

}  // namespace

Vocab read_hf_tokenizer_json(const std::string& path) {
  const json root = parse_json_file(path);
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
    throw CheckpointError(path + ": no \"model\" object (not a Hugging Face tokenizer.json)");
  }
  const json& model = root["model"];
  const std::string type = model.value("type", "");
  if (type != "BPE") {
    throw CheckpointError(path + ": model type '" + type + "' is not supported (only byte-level BPE tokenizer.json)");
  }
  if (model.value("byte_fallback", false)) {
    throw CheckpointError(path + ": BPE with byte_fallback (a SentencePiece-style tokenizer.json) is not supported; "
                                 "give the model's tokenizer.model instead");
  }
  if (root.contains("normalizer") && !root["normalizer"].is_null() && root["normalizer"].value("type", "") != "NFC") {
    throw CheckpointError(path + ": normalizer " + root["normalizer"].dump().substr(0, 200) +
                          " is not supported (none, or NFC, which llama.cpp does not apply either)");
  }
  const PreTokenizer& pre = read_pre_tokenizer(root.value("pre_tokenizer", json()), path);

  Vocab v;
  v.kind = VocabKind::bpe;
  v.pre = pre.name;
  v.ignore_merges = model.value("ignore_merges", false);
  v.add_space_prefix = false;

  if (!model.contains("vocab") || !model["vocab"].is_object() || model["vocab"].empty()) {
    throw CheckpointError(path + ": model.vocab must be a non-empty object mapping tokens to ids");
  }
  std::map<int64_t, std::pair<std::string, TokenType>> by_id;
  auto place = [&](const std::string& text, const json& id_json, TokenType t) {
    if (!id_json.is_number_integer()) throw CheckpointError(path + ": id of token \"" + text + "\" is not an integer");
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id > (1 << 24)) throw CheckpointError(path + ": token \"" + text + "\" has id " + std::to_string(id));
    by_id[id] = {text, t};
  };
  for (const auto& [text, id] : model["vocab"].items()) place(text, id, TokenType::normal);
  std::map<std::string, int32_t> ids_of_added;
  if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
    for (const json& added : root["added_tokens"]) {
      const std::string text = added.value("content", "");
      if (text.empty() || !added.contains("id")) throw CheckpointError(path + ": an added_tokens entry lacks id or content");
      // As llama.cpp's converter: special added tokens are control tokens, the others user-defined.
      place(text, added["id"], added.value("special", false) ? TokenType::control : TokenType::user_defined);
      const int32_t id = added["id"].get<int32_t>();
      ids_of_added[text] = id;
      if (added.value("lstrip", false)) v.lstrip_ids.push_back(id);
      if (added.value("rstrip", false)) v.rstrip_ids.push_back(id);
    }
  }
  const int64_t n = by_id.rbegin()->first + 1;
  v.tokens.resize(n);
  v.types.assign(n, TokenType::user_defined);
  for (int64_t id = 0; id < n; ++id) v.tokens[id] = "[PAD" + std::to_string(id) + "]";  // gaps, as llama.cpp fills them
  for (const auto& [id, token] : by_id) {
    v.tokens[id] = token.first;
    v.types[id] = token.second;
  }

  if (!model.contains("merges") || !model["merges"].is_array() || model["merges"].empty()) {
    throw CheckpointError(path + ": model.merges must be a non-empty list");
  }
  v.merges.reserve(model["merges"].size());
  for (const json& merge : model["merges"]) {
    // Two encodings: "left right" (tokenizers < 0.20) and ["left", "right"] (newer files).
    if (merge.is_string()) {
      v.merges.push_back(merge.get<std::string>());
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      v.merges.push_back(merge[0].get<std::string>() + " " + merge[1].get<std::string>());
    } else {
      throw CheckpointError(path + ": merge " + std::to_string(v.merges.size()) + " is " + merge.dump().substr(0, 100) +
                            ", expected \"left right\" or [\"left\", \"right\"]");
    }
  }

  v.bos_id = template_bos(root.value("post_processor", json()), ids_of_added);
  v.add_bos = v.bos_id >= 0;
  if (const int32_t end_of_text = find_token(v, "<|endoftext|>"); end_of_text >= 0) {
    v.eos_id = end_of_text;  // GPT-2 and Qwen2 end texts with it
    if (v.bos_id < 0 && pre.name == "gpt-2") v.bos_id = end_of_text;
  }
  return v;
}

namespace {

// A SentencePiece model's added tokens live beside it (Phi-3: <|end|>, <|user|>, ... from
// 32000): tokenizer.json's added_tokens, with their special/rstrip flags.
void add_added_tokens(const std::string& path, Vocab& v) {
  const json root = parse_json_file(path);
  if (!root.contains("added_tokens") || !root["added_tokens"].is_array()) return;
  if (v.types.empty()) v.types.assign(v.tokens.size(), TokenType::normal);
  for (const json& added : root["added_tokens"]) {
    const std::string text = added.value("content", "");
    if (text.empty() || !added.contains("id") || !added["id"].is_number_integer()) {
      throw CheckpointError(path + ": an added_tokens entry lacks id or content");
    }
    const int64_t id = added["id"].get<int64_t>();
    if (id < 0 || id > (1 << 24)) throw CheckpointError(path + ": added token \"" + text + "\" has id " + std::to_string(id));
    while (static_cast<int64_t>(v.tokens.size()) <= id) {
      v.tokens.push_back("[PAD" + std::to_string(v.tokens.size()) + "]");
      v.types.push_back(TokenType::unused);
      if (!v.scores.empty()) v.scores.push_back(-1000.0f);
    }
    if (v.tokens[id] != text && id < static_cast<int64_t>(v.tokens.size()) && v.types[id] != TokenType::unused) {
      throw CheckpointError(path + ": added token \"" + text + "\" has id " + std::to_string(id) + ", which the "
                            "SentencePiece model gives to \"" + v.tokens[id] + "\"");
    }
    if (v.tokens[id] != text || v.types[id] == TokenType::normal || v.types[id] == TokenType::unused) {
      v.tokens[id] = text;
      v.types[id] = added.value("special", false) ? TokenType::control : TokenType::user_defined;
      if (!v.scores.empty()) v.scores[id] = 0.0f;
    }
    if (added.value("lstrip", false)) v.lstrip_ids.push_back(static_cast<int32_t>(id));
    if (added.value("rstrip", false)) v.rstrip_ids.push_back(static_cast<int32_t>(id));
  }
}

}  // namespace

std::optional<Vocab> read_hf_tokenizer_dir(const std::string& dir) {
  Vocab v;
  if (file_exists(dir + "/tokenizer.model")) {
    v = read_sentencepiece_model(dir + "/tokenizer.model");
    if (file_exists(dir + "/tokenizer.json")) add_added_tokens(dir + "/tokenizer.json", v);
  } else if (file_exists(dir + "/tokenizer.json")) {
    v = read_hf_tokenizer_json(dir + "/tokenizer.json");
  } else if (file_exists(dir + "/vocab.json") && file_exists(dir + "/merges.txt")) {
    v = read_gpt2_vocab_files(dir + "/vocab.json", dir + "/merges.txt");
  } else {
    return std::nullopt;
  }

  const std::string config = dir + "/config.json";
  json model_config;
  if (file_exists(config)) model_config = parse_json_file(config);
  // The embedding may have more rows than the tokenizer has tokens (Qwen2: 151936 for
  // 151665, Phi-3: 32064 for 32011); llama.cpp's converter names the rest [PAD<id>].
  if (model_config.is_object() && model_config.contains("vocab_size") && model_config["vocab_size"].is_number_integer()) {
    const int64_t n = model_config["vocab_size"].get<int64_t>();
    if (n > static_cast<int64_t>(v.tokens.size()) && n <= (1 << 24)) {
      if (v.types.empty()) v.types.assign(v.tokens.size(), TokenType::normal);
      for (int64_t id = static_cast<int64_t>(v.tokens.size()); id < n; ++id) {
        v.tokens.push_back("[PAD" + std::to_string(id) + "]");
        v.types.push_back(v.kind == VocabKind::bpe ? TokenType::user_defined : TokenType::unused);
        if (!v.scores.empty()) v.scores.push_back(-1000.0f);
      }
    }
  }

  const std::string tokenizer_config = dir + "/tokenizer_config.json";
  if (file_exists(tokenizer_config)) {
    const json cfg = parse_json_file(tokenizer_config);
    if (cfg.contains("chat_template")) {
      const json& t = cfg["chat_template"];
      if (t.is_string()) {
        v.chat_template = t.get<std::string>();
      } else if (t.is_array()) {  // named templates: [{"name": "default", "template": "..."}, ...]
        for (const json& named : t) {
          if (named.value("name", "") == "default" && named.contains("template")) v.chat_template = named["template"];
        }
      }
    }
    if (const int32_t id = find_token(v, cfg.contains("bos_token") ? token_text(cfg["bos_token"]) : ""); id >= 0) {
      v.bos_id = id;
    }
    if (const int32_t id = find_token(v, cfg.contains("eos_token") ? token_text(cfg["eos_token"]) : ""); id >= 0) {
      v.eos_id = id;
    }
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) v.add_bos = cfg["add_bos_token"].get<bool>();
  }
  v.add_bos = v.add_bos && v.bos_id >= 0;

  if (model_config.is_object()) add_eos_ids(model_config, config, v);
  const std::string generation_config = dir + "/generation_config.json";
  if (file_exists(generation_config)) add_eos_ids(parse_json_file(generation_config), generation_config, v);
  return v;
}

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
