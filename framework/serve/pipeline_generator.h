#pragma once
// A TextGenerator over a deployed pipeline: `troupe serve --nodes`. Each HTTP request is
// its own session; concurrent requests are in the pipeline at once, so while one stage
// works on one session the others work on other sessions.
#include "framework/deploy/deploy.h"
#include "framework/serve/text_generator.h"

namespace troupe {

class PipelineGenerator : public TextGenerator {
 public:
  PipelineGenerator(const Pipeline& pipeline, ChatTemplate chat_template);
  std::vector<int32_t> encode(const std::string& text) const override;
  int64_t max_positions() const override;
  const ChatTemplate& chat_template() const override { return chat_template_; }
  int64_t n_vocab() const override;
  std::string token_bytes(int32_t token) const override;
  ClusterStatus status() const override;
  GenerationOutcome generate(const std::vector<int32_t>& prompt, int64_t max_tokens, const SamplingOptions& sampling,
                             const PieceHandler& on_piece) override;
  // troupe_stage_compute_seconds_total, troupe_stage_bytes_sent_total, ... per stage.
  // and troupe_recoveries_total / troupe_recovery_seconds per kind of failure.
  std::string stage_metrics() const override;
  ServiceHealth health() const override;

 private:
  const Pipeline& pipeline_;
  ChatTemplate chat_template_;
};

}  // namespace troupe
