#pragma once
// The OpenAI-compatible HTTP protocol: parsing /v1/completions and /v1/chat/completions
// requests (with validation that names the offending field) and building the JSON
// responses and server-sent-event chunks. No networking here: framework/http_server does that.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/vocab/chat_template.h"
#include "models/runtime/sampler.h"

namespace troupe {

// An error the client caused or must see: HTTP status + OpenAI-style JSON body.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, const std::string& message)
      : std::runtime_error(message), status_(status), type_(std::move(type)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  nlohmann::json body() const;

 private:
  int status_;
  std::string type_;
};

// One completions prompt: text, or token ids as given (no BOS added).
struct PromptInput {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct CompletionRequest {
  bool chat = false;
  std::string model;
  std::vector<PromptInput> prompts;    // completions: one choice per prompt, index = position
  std::vector<ChatMessage> messages;   // chat
  int64_t max_tokens = 16;             // completions allow 0 (with echo: score the prompt only)
  std::vector<std::string> stop;
  SamplingOptions sampling;            // temperature, top_p, seed (top_k off: OpenAI has none)
  bool stream = false;
  bool include_usage = false;          // stream_options.include_usage: a last chunk with usage
  bool echo = false;                   // completions: the prompt is part of the text (and logprobs)
  int top_logprobs = -1;               // -1: no logprobs; else how many alternatives per token
};

// A token as `logprobs` reports it: its text, log-probability (none for a prompt's first
// token) and alternatives.
struct LogprobEntry {
  std::string token;
  std::optional<double> logprob;
  std::vector<std::pair<std::string, double>> top;
};
// Completions' {tokens, token_logprobs, top_logprobs, text_offset}; offsets start at `offset`.
nlohmann::json completion_logprobs(const std::vector<LogprobEntry>& entries, int64_t offset, int top_logprobs);
// Chat's {content: [{token, logprob, bytes, top_logprobs}]}.
nlohmann::json chat_logprobs(const std::vector<LogprobEntry>& entries);

// Throws ApiError(400) for malformed JSON, unknown roles, fields of the wrong type or out
// of range, and for tools (function calling: not supported); unknown fields are ignored as
// OpenAI's own API does.
CompletionRequest parse_completion_request(const std::string& body, bool chat, uint64_t default_seed);

// One choice of a response; `logprobs` is null unless asked for.
struct ChoiceResult {
  std::string text;
  std::string finish_reason;
  nlohmann::json logprobs;
};
nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// Non-streaming responses.
nlohmann::json completion_response(const CompletionRequest& r, const std::string& id, int64_t created,
                                   const std::vector<ChoiceResult>& choices, int64_t prompt_tokens,
                                   int64_t completion_tokens);
// One server-sent event chunk of choice `index` with `text` (finish_reason null until its
// last chunk; `logprobs` null unless asked for).
nlohmann::json completion_chunk(const CompletionRequest& r, const std::string& id, int64_t created,
                                const std::string& text, const std::optional<std::string>& finish_reason,
                                size_t index = 0, const nlohmann::json& logprobs = nullptr);

// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& j);

// Length of the longest prefix of `s` that ends on a UTF-8 character boundary (JSON
// strings must be valid UTF-8; a token may end in the middle of a character).
size_t utf8_complete_prefix(const std::string& s);

}  // namespace troupe
