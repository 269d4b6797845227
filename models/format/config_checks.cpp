#include "models/format/config_checks.h"

#include <cmath>
#include <sstream>

#include "models/format/checkpoint.h"

namespace troupe {
namespace {

// Generous bounds: ten times the largest published models, small enough that products of
// two of them fit easily in 64 bits.
constexpr int64_t kMaxWidth = 1 << 20;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHeads = 1 << 14;
constexpr int64_t kMaxVocab = 1 << 24;
constexpr int64_t kMaxContext = 1 << 24;

[[noreturn]] void refuse(const std::string& file, const std::string& key, const std::string& value,
                         const std::string& expected) {
  throw CheckpointError(file + ": " + key + " is " + value + ", expected " + expected);
}

void check_range(const std::string& file, const std::string& key, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    refuse(file, key, std::to_string(v), "an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
}

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

void check_model_config(const ModelConfig& c, const std::string& file, const ConfigKeys& k) {
  check_range(file, k.n_embd, c.n_embd, 1, kMaxWidth);
  check_range(file, k.n_layer, c.n_layer, 1, kMaxLayers);
  check_range(file, k.n_head, c.n_head, 1, kMaxHeads);
  check_range(file, k.n_head_kv, c.n_head_kv, 1, kMaxHeads);
  check_range(file, k.n_ff, c.n_ff, 1, 16 * kMaxWidth);
  check_range(file, k.n_vocab, c.n_vocab, 1, kMaxVocab);
  check_range(file, k.n_ctx, c.n_ctx, 1, kMaxContext);
  if (c.n_embd % c.n_head != 0)
    refuse(file, k.n_head, std::to_string(c.n_head),
           "a divisor of " + k.n_embd + " (" + std::to_string(c.n_embd) + ")");
  if (c.n_head % c.n_head_kv != 0)
    refuse(file, k.n_head_kv, std::to_string(c.n_head_kv),
           "a divisor of " + k.n_head + " (" + std::to_string(c.n_head) + ")");
  if (k.rotary && c.rotary_dims() % 2 != 0)
    refuse(file, k.n_head, std::to_string(c.n_head),
           "a head count giving an even rotary width (" + k.n_embd + " " + std::to_string(c.n_embd) + " / " +
               std::to_string(c.n_head) + (c.n_rot > 0 ? ", rotary dimensions " + std::to_string(c.n_rot) : "") +
               " is odd)");
  if (k.rotary && (c.n_rot < 0 || c.n_rot > c.head_dim()))
    refuse(file, "the rotary dimension count", std::to_string(c.n_rot),
           "at most the head size " + std::to_string(c.head_dim()));
  if (!std::isfinite(c.norm_eps) || c.norm_eps <= 0 || c.norm_eps >= 1)
    refuse(file, k.norm_eps, number(c.norm_eps), "a finite number above 0 and below 1");
  if (k.rotary && (!std::isfinite(c.rope_theta) || c.rope_theta <= 1 || c.rope_theta > 1e12))
    refuse(file, k.rope_theta, number(c.rope_theta), "a finite number above 1 and at most 1e12");
}

void check_embedding_rows(const ModelConfig& c, int64_t rows, const std::string& file, const ConfigKeys& k,
                          const std::string& tensor_name) {
  if (rows != c.n_vocab)
    throw CheckpointError(file + ": tensor '" + tensor_name + "' has " + std::to_string(rows) + " rows but " +
                          k.n_vocab + " is " + std::to_string(c.n_vocab) + " (one row per token expected)");
}

}  // namespace troupe
