#pragma once
// Vocabularies from Hugging Face tokenizer files.
#include <string>

#include "models/vocab/vocab.h"

namespace troupe {

// A SentencePiece `tokenizer.model` (protobuf ModelProto): pieces, scores, types.
Vocab read_sentencepiece_model(const std::string& path);
// GPT-2 style `vocab.json` (token -> id) and `merges.txt` (one merge per line).
Vocab read_gpt2_vocab_files(const std::string& vocab_json, const std::string& merges_txt);

}  // namespace troupe
