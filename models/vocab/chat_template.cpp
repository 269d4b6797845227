#include "models/vocab/chat_template.h"

namespace troupe {

ChatFormat detect_chat_format(const std::string& t) {
  if (t.find("<|im_start|>") != std::string::npos) return ChatFormat::chatml;
  if (t.find("<|user|>") != std::string::npos) return ChatFormat::zephyr;
  if (t.find("[INST]") != std::string::npos) return ChatFormat::llama2;
  return ChatFormat::plain;
}

std::string chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::chatml: return "chatml";
    case ChatFormat::zephyr: return "zephyr";
    case ChatFormat::llama2: return "llama2";
    case ChatFormat::plain: break;
  }
  return "plain";
}

std::string render_chat(ChatFormat format, const std::vector<ChatMessage>& messages) {
  std::string out;
  switch (format) {
    case ChatFormat::chatml:
      for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      return out + "<|im_start|>assistant\n";
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
    case ChatFormat::plain: break;
  }
  return "\nUser:";
}

}  // namespace troupe
