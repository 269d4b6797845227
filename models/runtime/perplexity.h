#pragma once
// Perplexity as llama.cpp's llama-perplexity measures it: the text is cut into
// non-overlapping chunks of n_ctx tokens; a chunk's first token becomes BOS when the
// model adds BOS; each chunk is one forward pass from an empty cache, and only the
// predictions of its second half count.
#include <cstdint>
#include <functional>
#include <vector>

namespace troupe {

class StageModel;

struct PerplexityResult {
  double ppl = 0;
  int64_t n_chunks = 0;
  int64_t n_scored = 0;  // predictions counted
};

// `progress(chunk, n_chunks, running_ppl)` is called after each chunk. Throws
// std::invalid_argument when the text has fewer than 2*n_ctx tokens.
PerplexityResult perplexity(StageModel& model, const std::vector<int32_t>& tokens, int64_t n_ctx, bool add_bos,
                            int32_t bos_id, const std::function<void(int64_t, int64_t, double)>& progress = {});

}  // namespace troupe
