#pragma once
// Turning chat messages into one prompt. Models carry their chat template as Jinja in
// their metadata; troupe does not run Jinja but recognises the common families by their
// markers (as llama.cpp does) and renders them natively:
//   chatml  (<|im_start|>role\ncontent<|im_end|>)     Qwen, many fine-tunes
//   zephyr  (<|user|>\ncontent</s>)                   TinyLlama-Chat
//   llama2  ([INST] <<SYS>>..<</SYS>> user [/INST])   LLaMA-2-chat, Mistral-instruct
// Models without a template (base models such as stories260K or GPT-2) get the documented
// plain default: "System: ...\nUser: ...\nAssistant:".
#include <string>
#include <vector>

namespace troupe {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatFormat { plain, chatml, zephyr, llama2 };

ChatFormat detect_chat_format(const std::string& jinja_template);
std::string chat_format_name(ChatFormat f);

// The prompt for the assistant's next turn (BOS is added by the tokenizer, not here).
std::string render_chat(ChatFormat format, const std::vector<ChatMessage>& messages);

// Text that ends the assistant's turn in this format (used as an extra stop string).
std::string end_of_turn(ChatFormat format);

}  // namespace troupe
