#include "models/format/model_metadata.h"

namespace troupe {

void write_config_metadata(GgufWriter& w, const ModelConfig& c, const ArchitectureFormat& arch) {
  const std::string p = arch.name + ".";
  w.set_string("general.architecture", arch.name);
  w.set_string("general.name", c.name.empty() ? arch.name : c.name);
  w.set_u32(p + "context_length", static_cast<uint32_t>(c.n_ctx));
  w.set_u32(p + "embedding_length", static_cast<uint32_t>(c.n_embd));
  w.set_u32(p + "feed_forward_length", static_cast<uint32_t>(c.n_ff));
  w.set_u32(p + "block_count", static_cast<uint32_t>(c.n_layer));
  w.set_u32(p + "attention.head_count", static_cast<uint32_t>(c.n_head));
  w.set_u32(p + "vocab_size", static_cast<uint32_t>(c.n_vocab));
  arch.write_gguf(w, p, c);
}

void write_vocab_metadata(GgufWriter& w, const Vocab& v) {
  w.set_string("tokenizer.ggml.model", v.kind == VocabKind::spm ? "llama" : "gpt2");
  w.set_strings("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) w.set_f32s("tokenizer.ggml.scores", v.scores);
  if (!v.types.empty()) {
    std::vector<int32_t> types;
    for (auto t : v.types) types.push_back(static_cast<int32_t>(t));
    w.set_i32s("tokenizer.ggml.token_type", types);
  }
  if (!v.merges.empty()) w.set_strings("tokenizer.ggml.merges", v.merges);
  if (v.kind == VocabKind::bpe) w.set_string("tokenizer.ggml.pre", v.pre);
  if (v.bos_id >= 0) w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos_id));
  if (v.eos_id >= 0) w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos_id));
  if (v.unk_id >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk_id));
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  if (v.kind == VocabKind::spm) w.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

}  // namespace troupe
