#pragma once
// Drafting for speculative decoding without a draft model ("prompt lookup"): the tokens that
// followed the latest earlier occurrence of the sequence's last n tokens are guessed to follow
// again. Summaries, code edits and chats that quote their input repeat long runs of it, so
// such guesses are often right; a wrong guess costs only the rows that verify it.
// Torch-free.
#include <cstdint>
#include <vector>

namespace troupe {

struct PromptLookup {
  int32_t max_ngram = 3;  // the longest suffix looked up first
  int32_t min_ngram = 1;  // down to this length
};

// Up to `max_draft` tokens that followed the most recent earlier occurrence of the longest
// suffix of `history` (max_ngram..min_ngram tokens) found in it; empty when none occurs.
std::vector<int32_t> prompt_lookup_draft(const std::vector<int32_t>& history, int32_t max_draft,
                                         const PromptLookup& lookup = {});

}  // namespace troupe
