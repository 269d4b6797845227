#pragma once
// A TextGenerator running the whole model in this process (no nodes): `troupe serve`
// without --nodes, and the server's own tests. Generations run one at a time.
#include <atomic>
#include <memory>

#include "framework/serve/text_generator.h"
#include "models/format/checkpoint.h"
#include "models/runtime/local_session.h"
#include "models/vocab/tokenizer.h"

namespace troupe {

class LocalGenerator : public TextGenerator {
 public:
  explicit LocalGenerator(std::shared_ptr<const Checkpoint> ckpt);
  std::vector<int32_t> encode(const std::string& text) const override;
  int64_t max_positions() const override;
  const ChatTemplate& chat_template() const override { return chat_template_; }
  int64_t n_vocab() const override;
  std::string token_bytes(int32_t token) const override;
  bool supports_logprobs() const override { return true; }
  std::vector<TokenLogprob> score(const std::vector<int32_t>& tokens, int top_k) override;
  GenerationOutcome generate(const std::vector<int32_t>& prompt, int64_t max_tokens, const SamplingOptions& sampling,
                             const PieceHandler& on_piece) override;
  GenerationOutcome generate_scored(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                    const SamplingOptions& sampling, int top_k,
                                    const ScoredPieceHandler& on_piece) override;
  ClusterStatus status() const override;
  // Reads the weights into memory now: (bytes done, bytes total).
  void prefetch_weights(const std::function<void(uint64_t, uint64_t)>& on_progress);

 private:
  std::unique_ptr<Tokenizer> tokenizer_;
  LocalSession session_;
  ChatTemplate chat_template_;
  std::atomic<uint64_t> steps_{0}, compute_us_{0};  // for status()
};

}  // namespace troupe
