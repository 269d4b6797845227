#include "models/vocab/vocab.h"

#include <algorithm>

namespace troupe {

TokenType token_type(const Vocab& vocab, int32_t id) {
  return id >= 0 && static_cast<size_t>(id) < vocab.types.size() ? vocab.types[id] : TokenType::normal;
}

std::vector<int32_t> end_of_generation_ids(const Vocab& vocab) {
  static const char* const kEndTexts[] = {"<|eot_id|>", "<|eom_id|>",     "<|im_end|>",      "<|end|>", "<end_of_turn>",
                                          "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>"};
  const int32_t n = static_cast<int32_t>(vocab.tokens.size());
  std::vector<int32_t> ids;
  auto add = [&](int32_t id) {
    if (id >= 0 && id < n) ids.push_back(id);
  };
  add(vocab.eos_id);
  for (int32_t id : vocab.extra_eos_ids) add(id);
  for (int32_t id = 0; id < n; ++id) {
    const std::string& text = vocab.tokens[id];
    if (text.size() < 5 || text.size() > 15) continue;  // the lengths of kEndTexts
    for (const char* end : kEndTexts) {
      if (text == end) add(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace troupe
