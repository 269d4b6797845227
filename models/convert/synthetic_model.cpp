#include "models/convert/synthetic_model.h"

#include <ATen/Parallel.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <cstring>
#include <stdexcept>

#include "models/arch/architecture.h"
#include "models/format/checkpoint.h"
#include "models/format/gguf_writer.h"
#include "models/format/model_metadata.h"
#include "models/quant/quant_formats.h"
#include "models/arch/open_checkpoint.h"
#include "models/quant/quantizers.h"
#include "models/quant/type_traits.h"
#include "models/runtime/splitmix.h"

namespace troupe {

ModelConfig preset_shape(const std::string& name) {
  std::string known;
  for (const auto* a : architectures()) {
    if (auto it = a->presets.find(name); it != a->presets.end()) return it->second;
    for (const auto& [preset, config] : a->presets) known += (known.empty() ? "" : ", ") + preset;
  }
  throw std::invalid_argument("unknown shape '" + name + "' (known: " + known + ")");
}

SynthType parse_synth_type(const std::string& name) {
  std::string t = name;
  for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::pair<const char*, uint32_t> plain[] = {
      {"f32", ggml_type::F32},   {"f16", ggml_type::F16},       {"bf16", ggml_type::BF16},    {"q8_0", ggml_type::Q8_0},
      {"q4_0", ggml_type::Q4_0}, {"q4_1", ggml_type::Q4_1},     {"q5_0", ggml_type::Q5_0},    {"q5_1", ggml_type::Q5_1},
      {"q2_k", ggml_type::Q2_K}, {"q3_k", ggml_type::Q3_K},     {"q4_k", ggml_type::Q4_K},    {"q5_k", ggml_type::Q5_K},
      {"q6_k", ggml_type::Q6_K}, {"iq4_nl", ggml_type::IQ4_NL}, {"iq4_xs", ggml_type::IQ4_XS}};
  for (const auto& [n, type] : plain)
    if (t == n) return {static_cast<DType>(type), nullptr};
  for (const char* mix : {"q3_k_m", "q4_k_s", "q4_k_m", "q5_k_m"})
    if (t == mix) return {DType::F32, &quant_recipe(mix)};
  std::string known;
  for (const auto& [n, type] : plain) known += std::string(n) + ", ";
  throw std::invalid_argument("unknown weight type '" + name + "' (" + known + "q3_k_m, q4_k_s, q4_k_m, q5_k_m)");
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
  const Architecture& arch = architecture(c.arch);
  write_config_metadata(w, c, arch.format);
  if (!o.vocab_from.empty()) {
    const auto vocab_source = open_checkpoint(o.vocab_from);
    Vocab v = vocab_source->vocab();
    if (static_cast<int64_t>(v.tokens.size()) != c.n_vocab)
      throw std::invalid_argument(o.vocab_from + ": has " + std::to_string(v.tokens.size()) + " tokens, the shape needs " +
                                  std::to_string(c.n_vocab));
    write_vocab_metadata(w, v);
  } else {
    if (c.arch == "gpt2")
      throw std::invalid_argument("a GPT-2 shape needs --vocab-from (a GGUF file with a GPT-2 tokenizer)");
    write_vocab_metadata(w, generated_vocab(c.n_vocab));
  }
  w.set_u32("general.file_type", o.mix ? o.mix->file_type : static_cast<uint32_t>(o.type));
  RecipeModelShape mix_shape;
  mix_shape.n_layer = c.n_layer;
  mix_shape.n_gqa = c.n_head_kv > 0 ? c.n_head / c.n_head_kv : 1;
  mix_shape.has_output_weight = !c.tied_head;

  // Every tensor's fill counts its bytes towards on_progress.
  uint64_t total_bytes = 0;
  auto done_bytes = std::make_shared<std::atomic<uint64_t>>(0);
  auto add_tensor = [&](const std::string& name, DType type, std::vector<int64_t> shape,
                        std::function<void(uint8_t*, size_t)> fill) {
    int64_t rows = 1;  // the last dimension is the row
    for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
    const size_t nbytes = dtype_row_bytes(type, shape.back()) * static_cast<size_t>(rows);
    total_bytes += nbytes;
    w.add_tensor(name, type, shape, nbytes, [fill, done_bytes, &total_bytes, &o](uint8_t* out, size_t nbytes) {
      fill(out, nbytes);
      const uint64_t done = *done_bytes += nbytes;
      if (o.on_progress) o.on_progress(done, total_bytes);
    });
  };
  // A matrix [rows, cols] of the requested type, generated and converted row by row.
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, DType plain_type, float stddev) {
    const uint32_t type = o.mix && plain_type == o.type
                              ? recipe_tensor_type(*o.mix, name, {rows, cols}, ggml_type::F32, mix_shape)
                              : static_cast<uint32_t>(plain_type);
    const TypeTraits* q = find_type_traits(type);
    if (!q || !q->quantize_row) throw std::invalid_argument(name + ": cannot write type " + dtype_name(type));
    const uint64_t seed = splitmix64(o.seed ^ hash_name(name));
    const size_t row_bytes = dtype_row_bytes(q->type, cols);
    if (o.zero_weights)
      return add_tensor(name, static_cast<DType>(type), {rows, cols}, [](uint8_t*, size_t) {});  // the buffer is zero
    add_tensor(name, static_cast<DType>(type), {rows, cols}, [=](uint8_t* out, size_t) {
      at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = begin; r < end; ++r) {
          fill_row(row.data(), cols, splitmix64(seed + static_cast<uint64_t>(r)), stddev);
          q->quantize_row(row.data(), out + static_cast<size_t>(r) * row_bytes, cols);
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

  // The architecture lists the tensors; weights get stddev 1/sqrt(fan-in) so activations stay O(1).
  for (const TensorShape& t : arch.tensors(c)) {
    const int64_t rows = t.shape.front(), cols = t.shape.size() > 1 ? t.shape[1] : 1;
    switch (t.fill) {
      case TensorShape::weight: matrix(t.name, rows, cols, o.type, 1.0f / std::sqrt(static_cast<float>(cols))); break;
      case TensorShape::embedding: matrix(t.name, rows, cols, o.type, 1.0f); break;
      case TensorShape::positions: matrix(t.name, rows, cols, DType::F32, 0.1f); break;
      case TensorShape::ones: ones(t.name, rows); break;
      case TensorShape::zeros: zeros(t.name, rows); break;
    }
  }
  w.write(path);
  struct stat st {};
  ::stat(path.c_str(), &st);
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace troupe
