#include "framework/serve/openai_api.h"

namespace troupe {

using json = nlohmann::json;

json ApiError::body() const {
  return {{"error", {{"message", what()}, {"type", type_}, {"code", status_}}}};
}

namespace {

[[noreturn]] void bad_request(const std::string& message) { throw ApiError(400, "invalid_request_error", message); }

template <typename T>
T number_field(const json& j, const char* key, T fallback, double lo, double hi) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) bad_request(std::string("'") + key + "' must be a number");
  const double v = j[key].get<double>();
  if (v < lo || v > hi)
    bad_request(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return static_cast<T>(v);
}

std::string text_of(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {  // [{"type":"text","text":"..."}]
    std::string text;
    for (const auto& part : content) {
      if (!part.is_object() || !part.contains("text") || !part["text"].is_string())
        bad_request(where + " has a content part without text");
      text += part["text"].get<std::string>();
    }
    return text;
  }
  bad_request(where + ".content must be a string");
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& body, bool chat, uint64_t default_seed) {
  json j;
  try {
    j = json::parse(body);
  } catch (const std::exception& e) {
    bad_request(std::string("request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) bad_request("request body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  if (j.contains("model") && !j["model"].is_null()) {
    if (!j["model"].is_string()) bad_request("'model' must be a string");
    r.model = j["model"].get<std::string>();
  }
  if (chat) {
    if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
      bad_request("'messages' must be a non-empty array");
    for (size_t i = 0; i < j["messages"].size(); ++i) {
      const auto& m = j["messages"][i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) bad_request(where + ".role must be a string");
      const std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant")
        bad_request(where + ".role '" + role + "' is not system, user or assistant");
      r.messages.push_back({role, text_of(m.contains("content") ? m["content"] : json(), where)});
    }
    r.max_tokens = 256;
  } else {
    if (!j.contains("prompt")) bad_request("'prompt' is required");
    const auto& p = j["prompt"];
    if (p.is_string()) {
      r.prompt = p.get<std::string>();
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
      r.prompt = p[0].get<std::string>();
    } else {
      bad_request("'prompt' must be a string (one prompt per request)");
    }
  }
  const char* max_key = j.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  r.max_tokens = number_field<int64_t>(j, max_key, r.max_tokens, 1, 1 << 20);
  if (j.contains("stop") && !j["stop"].is_null()) {
    const auto& s = j["stop"];
    if (s.is_string()) {
      r.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const auto& x : s) {
        if (!x.is_string()) bad_request("'stop' entries must be strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      bad_request("'stop' must be a string or an array of up to 4 strings");
    }
  }
  r.sampling.temperature = number_field<float>(j, "temperature", 1.0f, 0.0, 2.0);
  r.sampling.top_p = number_field<float>(j, "top_p", 1.0f, 0.0, 1.0);
  r.sampling.top_k = 0;
  r.sampling.seed = default_seed;
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer()) bad_request("'seed' must be an integer");
    r.sampling.seed = static_cast<uint64_t>(j["seed"].get<int64_t>());
  }
  const float presence = number_field<float>(j, "frequency_penalty", 0.0f, -2.0, 2.0);
  if (presence > 0) r.sampling.repeat_penalty = 1.0f + presence / 2;  // closest troupe equivalent
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) bad_request("'stream' must be a boolean");
    r.stream = j["stream"].get<bool>();
  }
  if (j.contains("n") && !j["n"].is_null() && (!j["n"].is_number_integer() || j["n"].get<int64_t>() != 1))
    bad_request("'n' must be 1");
  return r;
}

json completion_response(const CompletionRequest& r, const std::string& id, int64_t created, const std::string& text,
                         const std::string& finish_reason, int64_t prompt_tokens, int64_t completion_tokens) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason}};
  if (r.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})},
          {"usage",
           {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}}}};
}

json completion_chunk(const CompletionRequest& r, const std::string& id, int64_t created, const std::string& text,
                      const std::optional<std::string>& finish_reason) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason ? json(*finish_reason) : json(nullptr)}};
  if (r.chat) {
    choice["delta"] = finish_reason && text.empty() ? json::object() : json{{"content", text}};
  } else {
    choice["text"] = text;
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})}};
}

std::string sse_event(const json& j) { return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

size_t utf8_complete_prefix(const std::string& s) {
  // Look back at most 3 bytes for the start of a multi-byte character.
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    return back >= need ? n : n - back;
  }
  return n;
}

}  // namespace troupe
