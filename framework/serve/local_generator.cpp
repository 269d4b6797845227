#include "framework/serve/local_generator.h"

namespace troupe {

LocalGenerator::LocalGenerator(std::shared_ptr<const Checkpoint> ckpt)
    : tokenizer_(make_tokenizer(ckpt->vocab())), session_(ckpt), chat_template_(read_chat_template(ckpt->vocab().chat_template)) {}

std::vector<int32_t> LocalGenerator::encode(const std::string& text) const {
  // Special tokens written in the prompt count, as in llama.cpp's server (chat prompts hold them).
  return tokenizer_->encode(text, tokenizer_->adds_bos(), true);
}

int64_t LocalGenerator::max_positions() const { return session_.config().n_ctx; }

GenerationOutcome LocalGenerator::generate(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                           const SamplingOptions& sampling, const PieceHandler& on_piece) {
  GenerationOutcome outcome;
  session_.generate(prompt, max_tokens, sampling, tokenizer_->eos_id(),
                                        [&](int32_t token, const std::vector<float>&) {
                                          ++outcome.completion_tokens;
                                          if (tokenizer_->is_stop(token)) {
                                            outcome.hit_eos = true;
                                            return false;
                                          }
                                          if (!on_piece(tokenizer_->token_bytes(token))) {
                                            outcome.cancelled = true;
                                            return false;
                                          }
                                          return true;
                                        });
  return outcome;
}

}  // namespace troupe
