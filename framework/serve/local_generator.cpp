#include "framework/serve/local_generator.h"

#include <chrono>

#include "models/arch/stage_model.h"

namespace troupe {

LocalGenerator::LocalGenerator(std::shared_ptr<const Checkpoint> ckpt)
    : tokenizer_(make_tokenizer(ckpt->vocab())), session_(ckpt), chat_template_(read_chat_template(ckpt->vocab().chat_template)) {}

std::vector<int32_t> LocalGenerator::encode(const std::string& text) const {
  // Special tokens written in the prompt count, as in llama.cpp's server (chat prompts hold them).
  return tokenizer_->encode(text, tokenizer_->adds_bos(), true);
}

int64_t LocalGenerator::max_positions() const { return session_.config().n_ctx; }

int64_t LocalGenerator::n_vocab() const { return session_.config().n_vocab; }

std::string LocalGenerator::token_bytes(int32_t token) const { return tokenizer_->token_bytes(token); }

std::vector<TokenLogprob> LocalGenerator::score(const std::vector<int32_t>& tokens, int top_k) {
  return score_tokens(session_.model(), tokens, top_k);
}

GenerationOutcome LocalGenerator::generate(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                           const SamplingOptions& sampling, const PieceHandler& on_piece) {
  return generate_scored(prompt, max_tokens, sampling, -1, [&](const ScoredPiece& p) { return on_piece(p.bytes); });
}

GenerationOutcome LocalGenerator::generate_scored(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                                  const SamplingOptions& sampling, int top_k,
                                                  const ScoredPieceHandler& on_piece) {
  GenerationOutcome outcome;
  const auto start = std::chrono::steady_clock::now();
  session_.generate(prompt, max_tokens, sampling, tokenizer_->eos_id(),
                    [&](int32_t token, const std::vector<float>& logits) {
                      ++outcome.completion_tokens;
                      if (tokenizer_->is_stop(token)) {
                        outcome.hit_eos = true;
                        return false;
                      }
                      TokenLogprob lp;
                      if (top_k >= 0) lp = logprob_of(logits.data(), static_cast<int64_t>(logits.size()), token, top_k);
                      const std::string bytes = tokenizer_->token_bytes(token);
                      if (!on_piece(ScoredPiece{token, bytes, top_k >= 0 ? &lp : nullptr})) {
                        outcome.cancelled = true;
                        return false;
                      }
                      return true;
                    });
  steps_ += static_cast<uint64_t>(outcome.completion_tokens);
  compute_us_ += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count());
  return outcome;
}

void LocalGenerator::prefetch_weights(const std::function<void(uint64_t, uint64_t)>& on_progress) {
  session_.model().prefetch_weights(on_progress);
}

ClusterStatus LocalGenerator::status() const {
  StageStatus s;
  s.node = "this process";
  s.layers = "all " + std::to_string(session_.config().n_layer) + " layers";
  s.steps = steps_;
  s.compute_ms = static_cast<double>(compute_us_) / 1e3;
  return ClusterStatus{{s}, {}};
}

}  // namespace troupe
