#pragma once
// Turning chat messages into one prompt. Models carry their chat template as Jinja in
// their metadata (GGUF tokenizer.chat_template, HF tokenizer_config.json); troupe does not
// run Jinja but recognises the common families by their markers (as llama.cpp does) and
// renders them natively:
//   llama3  (<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>)  Llama-3.x
//   chatml  (<|im_start|>role\ncontent<|im_end|>\n)                         Qwen2/2.5, many fine-tunes
//   phi3    (<|user|>\ncontent<|end|>\n)                                    Phi-3
//   zephyr  (<|user|>\ncontent</s>)                                         TinyLlama-Chat
//   llama2  ([INST] <<SYS>>..<</SYS>> user [/INST])                         LLaMA-2-chat, Mistral-instruct
// Models without a template (base models such as stories260K or GPT-2) get the documented
// plain default: "System: ...\nUser: ...\nAssistant:". The rendered prompt holds special
// tokens as text: tokenize it with parse_special.
#include <string>
#include <vector>

namespace troupe {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatFormat { plain, chatml, zephyr, llama2, llama3, phi3 };

// What the renderer needs from a template besides its family.
struct ChatTemplate {
  ChatFormat format = ChatFormat::plain;
  // chatml: the system message the template writes when the chat has none (Qwen2's
  // "You are a helpful assistant"), "" when it writes none.
  std::string default_system;
  // phi3: whether the template has a system turn (<|system|>); without one, system
  // messages are left out as the template leaves them out.
  bool system_turn = true;
};

ChatTemplate read_chat_template(const std::string& jinja_template);
ChatFormat detect_chat_format(const std::string& jinja_template);
std::string chat_format_name(ChatFormat f);

// The prompt for the assistant's next turn (BOS is added by the tokenizer, not here).
std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages);
std::string render_chat(ChatFormat format, const std::vector<ChatMessage>& messages);

// Text that ends the assistant's turn in this format (used as an extra stop string).
std::string end_of_turn(ChatFormat format);

}  // namespace troupe
