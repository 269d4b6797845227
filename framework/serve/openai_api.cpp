#include "framework/serve/openai_api.h"

#include <sstream>

namespace troupe {

using json = nlohmann::json;

json ApiError::body() const {
  return {{"error", {{"message", what()}, {"type", type_}, {"code", status_}}}};
}

namespace {

[[noreturn]] void bad_request(const std::string& message) { throw ApiError(400, "invalid_request_error", message); }

// 0, 2, 0.5: no trailing zeros in error messages.
std::string number_text(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

template <typename T>
T number_field(const json& j, const char* key, T fallback, double lo, double hi) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) bad_request(std::string("'") + key + "' must be a number");
  const double v = j[key].get<double>();
  if (v < lo || v > hi)
    bad_request(std::string("'") + key + "' must be between " + number_text(lo) + " and " + number_text(hi));
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
  if (j.contains("tools") && !j["tools"].is_null() && !(j["tools"].is_array() && j["tools"].empty()))
    bad_request("'tools': tools (function calling) are not supported by this server");
  if (chat) {
    if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
      bad_request("'messages' must be a non-empty array");
    for (size_t i = 0; i < j["messages"].size(); ++i) {
      const auto& m = j["messages"][i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) bad_request(where + ".role must be a string");
      std::string role = m["role"].get<std::string>();
      if (role == "developer") role = "system";  // OpenAI's newer name for it
      if (role == "tool" || role == "function" || (m.contains("tool_calls") && !m["tool_calls"].is_null()) ||
          (m.contains("function_call") && !m["function_call"].is_null()))
        bad_request(where + " is a tool call or tool result: tools (function calling) are not supported by this server");
      if (role != "system" && role != "user" && role != "assistant")
        bad_request(where + ".role '" + role + "' is not system, user or assistant (or developer)");
      const json content = m.contains("content") ? m["content"] : json();
      // An assistant turn may have no content (OpenAI sends null with a refusal or tool calls).
      r.messages.push_back({role, role == "assistant" && content.is_null() ? std::string() : text_of(content, where)});
    }
    r.max_tokens = 256;
    if (j.contains("logprobs") && !j["logprobs"].is_null()) {
      if (!j["logprobs"].is_boolean()) bad_request("'logprobs' must be a boolean");
      if (j["logprobs"].get<bool>()) r.top_logprobs = number_field<int>(j, "top_logprobs", 0, 0, 20);
    }
    if (r.top_logprobs < 0 && j.contains("top_logprobs") && !j["top_logprobs"].is_null())
      bad_request("'top_logprobs' needs 'logprobs': true");
  } else {
    if (!j.contains("prompt")) bad_request("'prompt' is required");
    const auto& p = j["prompt"];
    auto token_ids = [&](const json& a, const std::string& where) {
      PromptInput in;
      in.is_tokens = true;
      for (const auto& t : a) {
        if (!t.is_number_integer()) bad_request(where + " must hold token ids (integers)");
        in.tokens.push_back(t.get<int32_t>());
      }
      if (in.tokens.empty()) bad_request(where + " is empty");
      return in;
    };
    if (p.is_string()) {
      r.prompts.push_back({p.get<std::string>(), {}, false});
    } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
      r.prompts.push_back(token_ids(p, "'prompt'"));
    } else if (p.is_array() && !p.empty()) {
      for (size_t i = 0; i < p.size(); ++i) {
        const std::string where = "prompt[" + std::to_string(i) + "]";
        if (p[i].is_string()) r.prompts.push_back({p[i].get<std::string>(), {}, false});
        else if (p[i].is_array()) r.prompts.push_back(token_ids(p[i], where));
        else bad_request(where + " must be a string or an array of token ids");
      }
    } else {
      bad_request("'prompt' must be a string, an array of strings, an array of token ids or an array of those");
    }
    if (j.contains("echo") && !j["echo"].is_null()) {
      if (!j["echo"].is_boolean()) bad_request("'echo' must be a boolean");
      r.echo = j["echo"].get<bool>();
    }
    r.top_logprobs = number_field<int>(j, "logprobs", -1, 0, 5);
  }
  const char* max_key = j.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  r.max_tokens = number_field<int64_t>(j, max_key, r.max_tokens, chat ? 1 : 0, 1 << 20);
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
  if (j.contains("stream_options") && !j["stream_options"].is_null()) {
    const auto& so = j["stream_options"];
    if (!so.is_object()) bad_request("'stream_options' must be an object");
    if (!r.stream) bad_request("'stream_options' is only allowed with 'stream': true");
    if (so.contains("include_usage") && !so["include_usage"].is_null()) {
      if (!so["include_usage"].is_boolean()) bad_request("'stream_options.include_usage' must be a boolean");
      r.include_usage = so["include_usage"].get<bool>();
    }
  }
  if (j.contains("n") && !j["n"].is_null() && (!j["n"].is_number_integer() || j["n"].get<int64_t>() != 1))
    bad_request("'n' must be 1");
  return r;
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json completion_logprobs(const std::vector<LogprobEntry>& entries, int64_t offset, int top_logprobs) {
  json tokens = json::array(), logprobs = json::array(), tops = json::array(), offsets = json::array();
  for (const auto& e : entries) {
    tokens.push_back(e.token);
    logprobs.push_back(e.logprob ? json(*e.logprob) : json(nullptr));
    if (!e.logprob) {
      tops.push_back(nullptr);
    } else {
      json top = json::object();
      for (const auto& [t, lp] : e.top)
        if (!top.contains(t)) top[t] = lp;  // two ids may decode to the same text: keep the likelier
      tops.push_back(top_logprobs > 0 ? top : json::object());
    }
    offsets.push_back(offset);
    offset += static_cast<int64_t>(e.token.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", logprobs}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

namespace {
json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}
}  // namespace

json chat_logprobs(const std::vector<LogprobEntry>& entries) {
  json content = json::array();
  for (const auto& e : entries) {
    json top = json::array();
    for (const auto& [t, lp] : e.top) top.push_back({{"token", t}, {"logprob", lp}, {"bytes", bytes_of(t)}});
    content.push_back(
        {{"token", e.token}, {"logprob", e.logprob.value_or(0.0)}, {"bytes", bytes_of(e.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

json completion_response(const CompletionRequest& r, const std::string& id, int64_t created,
                         const std::vector<ChoiceResult>& results, int64_t prompt_tokens, int64_t completion_tokens) {
  json choices = json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& c = results[i];
    json choice = {{"index", i}, {"finish_reason", c.finish_reason}, {"logprobs", c.logprobs}};
    if (r.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
    } else {
      choice["text"] = c.text;
    }
    choices.push_back(choice);
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"system_fingerprint", nullptr},
          {"choices", choices},
          {"usage", usage_json(prompt_tokens, completion_tokens)}};
}

json completion_chunk(const CompletionRequest& r, const std::string& id, int64_t created, const std::string& text,
                      const std::optional<std::string>& finish_reason, size_t index, const json& logprobs) {
  json choice = {{"index", index},
                 {"finish_reason", finish_reason ? json(*finish_reason) : json(nullptr)},
                 {"logprobs", logprobs}};
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
