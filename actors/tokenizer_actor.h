#pragma once
// The tokenizer, on the client: text -> token ids for the prompt, token ids -> text for the
// output. Never remote (no network message carries text).
#include <caf/fwd.hpp>
#include <memory>
#include <string>

namespace troupe {

class Tokenizer;

// Loads the vocabulary of a model file or Hugging Face directory (a vocab-only GGUF is
// enough). Throws CheckpointError naming the path.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& model_path);

// Handles encode_atom, decode_atom, piece_atom and info_atom (see framework/messages.h).
caf::actor spawn_tokenizer_actor(caf::actor_system& sys, std::shared_ptr<const Tokenizer> tokenizer);

}  // namespace troupe
