#include "models/format/fingerprint.h"

#include <algorithm>
#include <cstdio>

namespace troupe {
namespace {

struct Fnv1a {
  uint64_t h = 1469598103934665603ull;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  void add(int64_t v) { add(&v, sizeof v); }
};

}  // namespace

std::string fingerprint_model(const Checkpoint& ckpt) {
  const auto& c = ckpt.config();
  Fnv1a f;
  f.add(c.arch);
  for (int64_t v : {c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.n_ff, c.n_vocab}) f.add(v);
  auto names = ckpt.tensor_names();
  std::sort(names.begin(), names.end());
  for (const auto& name : names) f.add(name);
  // A few bytes of the first and last layer: enough to tell two random-weight models of
  // one shape apart, while touching a single page of each.
  for (const std::string name : {layer_tensor_name(0, "attn_norm.weight"), layer_tensor_name(c.n_layer - 1, "attn_norm.weight")}) {
    if (!ckpt.has_tensor(name)) continue;
    const auto t = ckpt.tensor(name);
    f.add(t.data, std::min<size_t>(t.nbytes, 64));
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(f.h));
  return buf;
}

}  // namespace troupe
