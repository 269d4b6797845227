#include "models/format/gguf_checkpoint.h"

#include "models/format/config_checks.h"
#include "models/format/fingerprint.h"
#include "models/format/gguf_file.h"
#include "models/format/gguf_vocab.h"
#include "models/quant/type_traits.h"

namespace troupe {
namespace {

ModelConfig read_config(const GgufFile& f, const ArchitectureCatalog& catalog) {
  ModelConfig c;
  const std::string arch_name = f.get_string("general.architecture");
  const ArchitectureFormat& arch = catalog.by_gguf_name(arch_name, f.path());
  c.arch = arch.name;
  const std::string p = arch_name + ".";
  c.name = f.get_string("general.name", arch_name);
  c.n_embd = f.get_int(p + "embedding_length");
  c.n_layer = f.get_int(p + "block_count");
  c.n_head = f.get_int(p + "attention.head_count");
  c.n_head_kv = f.get_int(p + "attention.head_count_kv", c.n_head);
  c.n_ff = f.get_int(p + "feed_forward_length");
  c.n_ctx = f.get_int(p + "context_length");
  arch.read_gguf(f, p, c);
  if (f.has(p + "vocab_size")) {
    c.n_vocab = f.get_int(p + "vocab_size");
  } else if (f.has("tokenizer.ggml.tokens")) {
    c.n_vocab = static_cast<int64_t>(f.get_array("tokenizer.ggml.tokens").strings.size());
  } else if (const auto* t = f.find_tensor("token_embd.weight")) {
    c.n_vocab = t->ne[1];
  }
  // A shard records whether the full model ties its head; a whole file shows it by the missing tensor.
  c.tied_head = f.has("troupe.tied_head") ? f.get_bool("troupe.tied_head", false) : f.find_tensor("output.weight") == nullptr;

  const ConfigKeys keys{p + "embedding_length", p + "block_count", p + "attention.head_count",
                        p + "attention.head_count_kv", p + "feed_forward_length",
                        f.has(p + "vocab_size") ? p + "vocab_size" : "the vocabulary size (tokenizer.ggml.tokens)",
                        p + "context_length",
                        p + (f.has(p + "attention.layer_norm_rms_epsilon") ? "attention.layer_norm_rms_epsilon"
                                                                            : "attention.layer_norm_epsilon"),
                        p + "rope.freq_base", arch.rotary};
  check_model_config(c, f.path(), keys);
  if (const auto* t = f.find_tensor("token_embd.weight"); t && t->ne.size() == 2)
    check_embedding_rows(c, t->ne[1], f.path(), keys, "token_embd.weight");
  return c;
}

class GgufCheckpoint : public Checkpoint {
 public:
  GgufCheckpoint(const std::string& path, const ArchitectureCatalog& catalog)
      : file_(path), config_(read_config(file_, catalog)) {
    if (file_.has("tokenizer.ggml.model")) {
      vocab_ = read_gguf_vocab(file_);
      has_vocab_ = true;
    }
    if (file_.has("troupe.shard.layer_first")) {
      shard_.is_shard = true;
      shard_.model_id = file_.get_string("troupe.model_id");
      shard_.layer_first = file_.get_int("troupe.shard.layer_first");
      shard_.layer_last = file_.get_int("troupe.shard.layer_last");
      shard_.has_embedding = file_.get_bool("troupe.shard.has_embedding", false);
      shard_.has_head = file_.get_bool("troupe.shard.has_head", false);
    }
  }

  const std::string& path() const override { return file_.path(); }
  const ModelConfig& config() const override { return config_; }
  bool has_vocab() const override { return has_vocab_; }
  const Vocab& vocab() const override {
    if (!has_vocab_) throw CheckpointError(path() + ": no tokenizer in this file");
    return vocab_;
  }
  bool has_tensor(const std::string& name) const override { return file_.find_tensor(name) != nullptr; }
  std::vector<std::string> tensor_names() const override {
    std::vector<std::string> names;
    for (const auto& t : file_.tensors()) names.push_back(t.name);
    return names;
  }
  ShardInfo shard_info() const override { return shard_; }

  TensorView tensor(const std::string& name) const override {
    const auto* t = file_.find_tensor(name);
    if (!t) {
      std::string where = shard_.is_shard ? " (this is a shard holding layers " + std::to_string(shard_.layer_first) +
                                                 "-" + std::to_string(shard_.layer_last) + ")"
                                           : "";
      throw CheckpointError(path() + ": tensor '" + name + "' not found" + where);
    }
    if (!dtype_supported(t->ggml_type))
      throw CheckpointError(path() + ": tensor '" + name + "' has type " + dtype_name(t->ggml_type) +
                            ", which troupe does not support (supported: " + supported_type_names() + ")");
    TensorView v;
    v.name = name;
    v.dtype = static_cast<DType>(t->ggml_type);
    v.shape.assign(t->ne.rbegin(), t->ne.rend());
    v.data = file_.tensor_data(*t);
    v.nbytes = t->nbytes;
    return v;
  }

  std::string model_id() const override {
    if (shard_.is_shard) return shard_.model_id;
    if (file_.has("troupe.model_id")) return file_.get_string("troupe.model_id");
    return fingerprint_model(*this);
  }

 private:
  GgufFile file_;
  ModelConfig config_;
  Vocab vocab_;
  bool has_vocab_ = false;
  ShardInfo shard_;
};

}  // namespace

std::unique_ptr<Checkpoint> open_gguf_checkpoint(const std::string& path, const ArchitectureCatalog& catalog) {
  return std::make_unique<GgufCheckpoint>(path, catalog);
}

}  // namespace troupe
