#include "models/runtime/generation_loop.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "models/runtime/prompt_lookup.h"

namespace troupe {

std::vector<int32_t> recent_window(const std::vector<int32_t>& history, const SamplingOptions& options) {
  if (options.repeat_penalty == 1.0f || options.repeat_window <= 0) return {};
  const size_t n = std::min(history.size(), static_cast<size_t>(options.repeat_window));
  return std::vector<int32_t>(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
}

void run_generation(ModelStepper& stepper, const std::vector<int32_t>& prompt, const LoopOptions& options,
                    LoopResult& result) {
  using Clock = std::chrono::steady_clock;
  // Speculative steps: a draft (prompt lookup, or LoopOptions::draft) rides behind the last token, the model
  // computes all its rows in one pass, and the sampler keeps the drafts it would have drawn
  // anyway; the rows past the first wrong draft are overwritten by the next step.
  const int64_t speculate = options.want_logits ? 0 : options.speculate;
  std::vector<int32_t> history = prompt;
  std::vector<int32_t> input = prompt;
  int64_t pos = 0;
  for (int64_t step = 0; static_cast<int64_t>(result.tokens.size()) < options.n_tokens &&
                         pos + static_cast<int64_t>(input.size()) <= options.max_positions;
       ++step) {
    const int64_t made = static_cast<int64_t>(result.tokens.size());
    StepRequest request;
    if (step > 0 && speculate > 0) {
      // No draft past the tokens asked for (the step always adds one of its own) or the context.
      const int64_t room = std::min(options.n_tokens - made - 1, options.max_positions - pos - 1);
      const auto k = static_cast<int32_t>(std::min(speculate, room));
      request.draft = options.draft ? options.draft(history, k) : prompt_lookup_draft(history, k);
      input.insert(input.end(), request.draft.begin(), request.draft.end());
    }
    request.pos = pos;
    // Only the prompt is chunked: a pipeline's stages then work on consecutive chunks together.
    const int64_t n = static_cast<int64_t>(input.size());
    const int64_t chunk = step == 0 && options.prefill_chunk > 0 ? options.prefill_chunk : n;
    for (int64_t first = 0; first < n; first += chunk)
      request.parts.emplace_back(input.begin() + first, input.begin() + std::min(n, first + chunk));
    request.sampling = options.sampling;
    request.recent = recent_window(history, options.sampling);
    request.step = static_cast<uint64_t>(made);
    request.want_logits = options.want_logits;

    const auto t0 = Clock::now();
    StepResult reply = stepper.step(request);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (reply.tokens.empty()) throw std::runtime_error("a generation step gave no token");
    const std::vector<int32_t>& tokens = reply.tokens;
    if (!request.draft.empty()) {
      result.drafted += static_cast<int64_t>(request.draft.size());
      result.accepted += static_cast<int64_t>(tokens.size()) - 1;
    }
    if (step == 0) result.prefill_ms = ms;
    pos += n - static_cast<int64_t>(request.draft.size()) + static_cast<int64_t>(tokens.size()) - 1;  // up to the last draft kept
    bool stopped = false;
    for (const int32_t token : tokens) {
      if (step > 0) result.step_ms.push_back(ms / static_cast<double>(tokens.size()));
      result.tokens.push_back(token);
      if (options.want_logits) result.logits.push_back(reply.logits);
      history.push_back(token);
      const bool go_on = !options.on_token || options.on_token(token, reply.logits);
      if (!go_on || (options.is_stop && options.is_stop(token))) {
        stopped = true;
        break;
      }
    }
    if (stopped) break;
    input.assign(1, tokens.back());
  }
}

}  // namespace troupe
