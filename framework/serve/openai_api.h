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

struct CompletionRequest {
  bool chat = false;
  std::string model;
  std::string prompt;                  // completions
  std::vector<ChatMessage> messages;   // chat
  int64_t max_tokens = 16;
  std::vector<std::string> stop;
  SamplingOptions sampling;            // temperature, top_p, seed (top_k off: OpenAI has none)
  bool stream = false;
};

// Throws ApiError(400) for malformed JSON, unknown roles, fields of the wrong type or out
// of range; unknown fields are ignored as OpenAI's own API does.
CompletionRequest parse_completion_request(const std::string& body, bool chat, uint64_t default_seed);

// Non-streaming responses.
nlohmann::json completion_response(const CompletionRequest& r, const std::string& id, int64_t created,
                                   const std::string& text, const std::string& finish_reason,
                                   int64_t prompt_tokens, int64_t completion_tokens);
// One server-sent event chunk with `text` (finish_reason null until the last chunk).
nlohmann::json completion_chunk(const CompletionRequest& r, const std::string& id, int64_t created,
                                const std::string& text, const std::optional<std::string>& finish_reason);

// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& j);

// Length of the longest prefix of `s` that ends on a UTF-8 character boundary (JSON
// strings must be valid UTF-8; a token may end in the middle of a character).
size_t utf8_complete_prefix(const std::string& s);

}  // namespace troupe
