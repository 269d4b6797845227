#include "actors/tokenizer_actor.h"

#include <caf/all.hpp>

#include "actors/protocol/messages.h"
#include "models/format/checkpoint.h"
#include "models/vocab/tokenizer.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {

namespace {

struct TokenizerState {
  std::shared_ptr<const Tokenizer> tokenizer;
  static inline const char* name = "troupe.tokenizer";
};

caf::behavior tokenizer_behavior(caf::stateful_actor<TokenizerState>* self, std::shared_ptr<const Tokenizer> tok) {
  self->state.tokenizer = std::move(tok);
  const Tokenizer& t = *self->state.tokenizer;
  return {
    // Special tokens written in a prompt count, as in llama.cpp's CLI and server.
    [&t](proto::encode_atom, const std::string& text) { return t.encode(text, t.adds_bos(), true); },
    [&t](proto::decode_atom, const std::vector<int32_t>& ids) { return t.decode(ids); },
    [&t](proto::piece_atom, int32_t id) { return t.token_bytes(id); },
    [&t](proto::info_atom) {
      proto::TokenizerInfo info;
      info.n_vocab = t.n_vocab();
      info.bos_id = t.bos_id();
      info.eos_id = t.eos_id();
      info.adds_bos = t.adds_bos();
      return info;
    },
  };
}

}  // namespace

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& model_path) {
  const auto ckpt = open_checkpoint(model_path);
  return make_tokenizer(ckpt->vocab());
}

caf::actor spawn_tokenizer_actor(caf::actor_system& sys, std::shared_ptr<const Tokenizer> tokenizer) {
  return sys.spawn(tokenizer_behavior, std::move(tokenizer));
}

}  // namespace troupe
