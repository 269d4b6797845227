#include "models/convert/synthetic_model.h"

#include <ATen/Parallel.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <cstring>
#include <stdexcept>

#include "models/format/checkpoint.h"
#include "models/format/gguf_writer.h"
#include "models/format/model_metadata.h"
#include "models/quant/quant_formats.h"
#include "models/runtime/splitmix.h"

namespace troupe {

ModelConfig preset_shape(const std::string& name) {
  ModelConfig c;
  c.name = name;
  if (name == "tinyllama") {
    c.arch = Architecture::llama;
    c.n_embd = 2048, c.n_layer = 22, c.n_head = 32, c.n_head_kv = 4, c.n_ff = 5632, c.n_vocab = 32000, c.n_ctx = 2048;
  } else if (name == "llama2-7b") {
    c.arch = Architecture::llama;
    c.n_embd = 4096, c.n_layer = 32, c.n_head = 32, c.n_head_kv = 32, c.n_ff = 11008, c.n_vocab = 32000, c.n_ctx = 4096;
  } else if (name == "gpt2") {
    c.arch = Architecture::gpt2;
    c.n_embd = 768, c.n_layer = 12, c.n_head = 12, c.n_head_kv = 12, c.n_ff = 3072, c.n_vocab = 50257, c.n_ctx = 1024;
  } else if (name == "gpt2-medium") {
    c.arch = Architecture::gpt2;
    c.n_embd = 1024, c.n_layer = 24, c.n_head = 16, c.n_head_kv = 16, c.n_ff = 4096, c.n_vocab = 50257, c.n_ctx = 1024;
  } else {
    throw std::invalid_argument("unknown shape '" + name + "' (known: tinyllama, llama2-7b, gpt2, gpt2-medium)");
  }
  c.norm_eps = 1e-5;
  c.tied_head = c.arch == Architecture::gpt2;
  return c;
}

namespace {


uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Roughly normal values (sum of uniforms), reproducible per (seed, tensor, row).
void fill_row(float* row, int64_t n, uint64_t state, float stddev) {
  for (int64_t i = 0; i < n; ++i) {
    double sum = 0;
    for (int k = 0; k < 4; ++k) sum += static_cast<double>((state = splitmix64(state)) >> 11) * (1.0 / 9007199254740992.0);
    row[i] = static_cast<float>((sum - 2.0) * std::sqrt(3.0) * stddev);
  }
}

// A byte-level SentencePiece vocabulary: control tokens, the 256 byte tokens, "▁", then
// filler pieces up to n_vocab so the shapes match real models.
Vocab generated_vocab(int64_t n_vocab) {
  Vocab v;
  v.kind = VocabKind::spm;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::unknown, TokenType::control, TokenType::control};
  char buf[16];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.tokens.push_back(buf);
    v.types.push_back(TokenType::byte);
  }
  v.tokens.push_back("\xe2\x96\x81");
  v.types.push_back(TokenType::normal);
  while (static_cast<int64_t>(v.tokens.size()) < n_vocab) {
    v.tokens.push_back("\xe2\x96\x81t" + std::to_string(v.tokens.size()));
    v.types.push_back(TokenType::normal);
  }
  v.tokens.resize(static_cast<size_t>(n_vocab));
  v.types.resize(static_cast<size_t>(n_vocab));
  v.scores.assign(v.tokens.size(), 0.0f);
  for (size_t i = 0; i < v.scores.size(); ++i) v.scores[i] = -static_cast<float>(i);
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0, v.add_bos = true;
  return v;
}

}  // namespace

uint64_t write_synthetic_model(const SynthOptions& o, const std::string& path) {
  const ModelConfig& c = o.config;
  GgufWriter w;
  write_config_metadata(w, c);
  if (!o.vocab_from.empty()) {
    const auto vocab_source = open_checkpoint(o.vocab_from);
    Vocab v = vocab_source->vocab();
    if (static_cast<int64_t>(v.tokens.size()) != c.n_vocab)
      throw std::invalid_argument(o.vocab_from + ": has " + std::to_string(v.tokens.size()) + " tokens, the shape needs " +
                                  std::to_string(c.n_vocab));
    write_vocab_metadata(w, v);
  } else {
    if (c.arch != Architecture::llama)
      throw std::invalid_argument("a GPT-2 shape needs --vocab-from (a GGUF file with a GPT-2 tokenizer)");
    write_vocab_metadata(w, generated_vocab(c.n_vocab));
  }
  w.set_u32("general.file_type", static_cast<uint32_t>(o.type));

  // Every tensor's fill counts its bytes towards on_progress.
  uint64_t total_bytes = 0;
  auto done_bytes = std::make_shared<std::atomic<uint64_t>>(0);
  auto add_tensor = [&](const std::string& name, DType type, std::vector<int64_t> shape,
                        std::function<void(uint8_t*, size_t)> fill) {
    int64_t rows = 1;  // the last dimension is the row
    for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
    total_bytes += dtype_row_bytes(type, shape.back()) * static_cast<uint64_t>(rows);
    w.add_tensor(name, type, shape, [fill, done_bytes, &total_bytes, &o](uint8_t* out, size_t nbytes) {
      fill(out, nbytes);
      const uint64_t done = *done_bytes += nbytes;
      if (o.on_progress) o.on_progress(done, total_bytes);
    });
  };
  // A matrix [rows, cols] of the requested type, generated and converted row by row.
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, DType type, float stddev) {
    const uint64_t seed = splitmix64(o.seed ^ hash_name(name));
    const size_t row_bytes = dtype_row_bytes(type, cols);
    add_tensor(name, type, {rows, cols}, [=](uint8_t* out, size_t) {
      at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = begin; r < end; ++r) {
          fill_row(row.data(), cols, splitmix64(seed + static_cast<uint64_t>(r)), stddev);
          quantize(type, row.data(), out + static_cast<size_t>(r) * row_bytes, cols);
        }
      });
    });
  };
  auto ones = [&](const std::string& name, int64_t n) {
    add_tensor(name, DType::F32, {n}, [](uint8_t* out, size_t nbytes) {
      const float one = 1.0f;
      for (size_t i = 0; i < nbytes; i += 4) std::memcpy(out + i, &one, 4);
    });
  };
  auto zeros = [&](const std::string& name, int64_t n) { add_tensor(name, DType::F32, {n}, [](uint8_t*, size_t) {}); };

  const int64_t d = c.n_embd, kv = c.n_head_kv * c.head_dim();
  const float std_in = 1.0f / std::sqrt(static_cast<float>(d)), std_ff = 1.0f / std::sqrt(static_cast<float>(c.n_ff));
  matrix("token_embd.weight", c.n_vocab, d, o.type, 1.0f);
  if (c.arch == Architecture::gpt2) matrix("position_embd.weight", c.n_ctx, d, DType::F32, 0.1f);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    auto name = [l](const char* s) { return layer_tensor_name(l, s); };
    if (c.arch == Architecture::llama) {
      ones(name("attn_norm.weight"), d);
      matrix(name("attn_q.weight"), d, d, o.type, std_in);
      matrix(name("attn_k.weight"), kv, d, o.type, std_in);
      matrix(name("attn_v.weight"), kv, d, o.type, std_in);
      matrix(name("attn_output.weight"), d, d, o.type, std_in);
      ones(name("ffn_norm.weight"), d);
      matrix(name("ffn_gate.weight"), c.n_ff, d, o.type, std_in);
      matrix(name("ffn_up.weight"), c.n_ff, d, o.type, std_in);
      matrix(name("ffn_down.weight"), d, c.n_ff, o.type, std_ff);
    } else {
      ones(name("attn_norm.weight"), d);
      zeros(name("attn_norm.bias"), d);
      matrix(name("attn_qkv.weight"), 3 * d, d, o.type, std_in);
      zeros(name("attn_qkv.bias"), 3 * d);
      matrix(name("attn_output.weight"), d, d, o.type, std_in);
      zeros(name("attn_output.bias"), d);
      ones(name("ffn_norm.weight"), d);
      zeros(name("ffn_norm.bias"), d);
      matrix(name("ffn_up.weight"), c.n_ff, d, o.type, std_in);
      zeros(name("ffn_up.bias"), c.n_ff);
      matrix(name("ffn_down.weight"), d, c.n_ff, o.type, std_ff);
      zeros(name("ffn_down.bias"), d);
    }
  }
  ones("output_norm.weight", d);
  if (c.arch == Architecture::gpt2) zeros("output_norm.bias", d);
  if (!c.tied_head) matrix("output.weight", c.n_vocab, d, o.type, std_in);
  w.write(path);
  struct stat st {};
  ::stat(path.c_str(), &st);
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace troupe
