#pragma once
// Vocabularies from Hugging Face tokenizer files.
#include <optional>
#include <string>

#include "models/vocab/vocab.h"

namespace troupe {

// A SentencePiece `tokenizer.model` (protobuf ModelProto): pieces, scores, types.
Vocab read_sentencepiece_model(const std::string& path);
// GPT-2 style `vocab.json` (token -> id) and `merges.txt` (one merge per line).
Vocab read_gpt2_vocab_files(const std::string& vocab_json, const std::string& merges_txt);
// A `tokenizer.json` whose model is byte-level BPE: vocab + merges (either encoding),
// added_tokens, ignore_merges, the pre_tokenizer (a known Split regex, or ByteLevel) and the
// BOS its post_processor adds. Other models (WordPiece, Unigram, byte_fallback BPE) are refused.
Vocab read_hf_tokenizer_json(const std::string& path);
// The tokenizer of a Hugging Face checkpoint directory: tokenizer.model (plus the added
// tokens of a tokenizer.json beside it), else tokenizer.json, else vocab.json + merges.txt
// (nullopt when there is none); rows up to config.json's vocab_size; then tokenizer_config.json (chat
// template, bos/eos tokens, add_bos_token) and the eos_token_id of config.json and
// generation_config.json as stop ids.
std::optional<Vocab> read_hf_tokenizer_dir(const std::string& dir);

}  // namespace troupe
