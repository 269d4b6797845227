#pragma once
// A TextGenerator running the whole model in this process (no nodes): `troupe serve`
// without --nodes, and the server's own tests.
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
  GenerationOutcome generate(const std::vector<int32_t>& prompt, int64_t max_tokens, const SamplingOptions& sampling,
                             const PieceHandler& on_piece) override;

 private:
  std::unique_ptr<Tokenizer> tokenizer_;
  LocalSession session_;
  ChatTemplate chat_template_;
};

}  // namespace troupe
