#include "framework/serve/text_generator.h"

#include <stdexcept>

namespace troupe {

std::vector<TokenLogprob> TextGenerator::score(const std::vector<int32_t>&, int) {
  throw std::logic_error("this generator does not compute log-probabilities");
}

GenerationOutcome TextGenerator::generate_scored(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                                 const SamplingOptions& sampling, int top_k,
                                                 const ScoredPieceHandler& on_piece) {
  if (top_k >= 0) throw std::logic_error("this generator does not compute log-probabilities");
  return generate(prompt, max_tokens, sampling,
                  [&](const std::string& bytes) { return on_piece(ScoredPiece{-1, bytes, nullptr}); });
}

}  // namespace troupe
