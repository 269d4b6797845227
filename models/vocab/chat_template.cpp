#include "models/vocab/chat_template.h"

namespace troupe {
namespace {

// Jinja string literals write a newline as \n; templates stored with real newlines have them too.
std::string unescape_jinja(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The literal system message a ChatML template writes itself: the text between
// "<|im_start|>system\n" and "<|im_end|>" in a string literal (no Jinja code in between).
std::string chatml_default_system(const std::string& t) {
  const std::string open = "<|im_start|>system", close = "<|im_end|>";
  for (size_t at = t.find(open); at != std::string::npos; at = t.find(open, at + 1)) {
    size_t begin = at + open.size();
    if (t.compare(begin, 1, "\n") == 0) {
      begin += 1;
    } else if (t.compare(begin, 2, "\\n") == 0) {
      begin += 2;
    } else {
      continue;
    }
    const size_t end = t.find(close, begin);
    if (end == std::string::npos || end == begin) continue;
    const std::string text = t.substr(begin, end - begin);
    if (text.find_first_of("'\"{}") == std::string::npos) return unescape_jinja(text);
  }
  return "";
}

std::string trim(const std::string& s) {
  const char* space = " \t\n\r\f\v";
  const size_t begin = s.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

}  // namespace

ChatFormat detect_chat_format(const std::string& t) {
  if (t.find("<|start_header_id|>") != std::string::npos) return ChatFormat::llama3;
  if (t.find("<|im_start|>") != std::string::npos) return ChatFormat::chatml;
  if (t.find("<|user|>") != std::string::npos && t.find("<|end|>") != std::string::npos) return ChatFormat::phi3;
  if (t.find("<|user|>") != std::string::npos) return ChatFormat::zephyr;
  if (t.find("[INST]") != std::string::npos) return ChatFormat::llama2;
  return ChatFormat::plain;
}

ChatTemplate read_chat_template(const std::string& t) {
  ChatTemplate result;
  result.format = detect_chat_format(t);
  if (result.format == ChatFormat::chatml) result.default_system = chatml_default_system(t);
  if (result.format == ChatFormat::phi3) result.system_turn = t.find("<|system|>") != std::string::npos;
  return result;
}

std::string chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::chatml: return "chatml";
    case ChatFormat::zephyr: return "zephyr";
    case ChatFormat::llama2: return "llama2";
    case ChatFormat::llama3: return "llama3";
    case ChatFormat::phi3: return "phi3";
    case ChatFormat::plain: break;
  }
  return "plain";
}

std::string render_chat(ChatFormat format, const std::vector<ChatMessage>& messages) {
  ChatTemplate t;
  t.format = format;
  return render_chat(t, messages);
}

std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  std::string out;
  switch (t.format) {
    case ChatFormat::llama3:
      // Llama-3's template trims each message's content.
      for (const auto& m : messages) {
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
      }
      return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case ChatFormat::chatml:
      if (!t.default_system.empty() && (messages.empty() || messages.front().role != "system")) {
        out += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
      }
      for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      return out + "<|im_start|>assistant\n";
    case ChatFormat::phi3:
      for (const auto& m : messages) {
        if (m.role == "system" && !t.system_turn) continue;
        out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      }
      return out + "<|assistant|>\n";
    case ChatFormat::zephyr:
      for (const auto& m : messages) out += "<|" + m.role + "|>\n" + m.content + "</s>\n";
      return out + "<|assistant|>\n";
    case ChatFormat::llama2: {
      // The system prompt goes inside the first [INST] block.
      std::string system;
      bool first = true;
      for (const auto& m : messages) {
        if (m.role == "system") {
          system = "<<SYS>>\n" + m.content + "\n<</SYS>>\n\n";
        } else if (m.role == "user") {
          out += std::string(first ? "" : " ") + "[INST] " + system + m.content + " [/INST]";
          system.clear();
          first = false;
        } else {
          out += " " + m.content;
        }
      }
      return out;
    }
    case ChatFormat::plain:
      break;
  }
  for (const auto& m : messages) {
    const std::string who = m.role == "system" ? "System" : m.role == "assistant" ? "Assistant" : "User";
    out += who + ": " + m.content + "\n";
  }
  return out + "Assistant:";
}

std::string end_of_turn(ChatFormat format) {
  switch (format) {
    case ChatFormat::chatml: return "<|im_end|>";
    case ChatFormat::zephyr: return "</s>";
    case ChatFormat::llama2: return "[INST]";
    case ChatFormat::llama3: return "<|eot_id|>";
    case ChatFormat::phi3: return "<|end|>";
    case ChatFormat::plain: break;
  }
  return "\nUser:";
}

}  // namespace troupe
