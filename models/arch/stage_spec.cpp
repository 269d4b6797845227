#include "models/arch/stage_spec.h"

#include <sstream>
#include <stdexcept>

namespace troupe {

std::string StageSpec::describe() const {
  std::string s = n_layers() > 0 ? "layers " + std::to_string(layer_first) + "-" + std::to_string(layer_last) : "no layers";
  if (has_embedding) s += " +embedding";
  if (has_head) s += " +head";
  return s;
}

StageSpec whole_model_spec(int64_t n_layer) { return StageSpec{0, n_layer - 1, true, true}; }

std::vector<StageSpec> even_split(int64_t n_layer, int64_t n_stages) {
  if (n_stages < 1 || n_stages > n_layer)
    throw std::invalid_argument("cannot split " + std::to_string(n_layer) + " layers into " + std::to_string(n_stages) +
                                " stages (each stage needs at least one layer)");
  std::vector<StageSpec> specs;
  int64_t first = 0;
  for (int64_t i = 0; i < n_stages; ++i) {
    const int64_t count = n_layer / n_stages + (i < n_layer % n_stages ? 1 : 0);
    specs.push_back({first, first + count - 1, i == 0, i == n_stages - 1});
    first += count;
  }
  return specs;
}

std::vector<StageSpec> parse_layer_ranges(const std::string& text, int64_t n_layer) {
  std::vector<StageSpec> specs;
  std::stringstream in(text);
  std::string item;
  int64_t expected_first = 0;
  while (std::getline(in, item, ',')) {
    int64_t first = -1, last = -1;
    char dash = 0, extra = 0;
    std::istringstream range(item);
    if (!(range >> first >> dash >> last) || dash != '-' || (range >> extra))
      throw std::invalid_argument("layer range '" + item + "' is not of the form FIRST-LAST");
    if (first != expected_first)
      throw std::invalid_argument("layer range '" + item + "' should start at layer " + std::to_string(expected_first));
    if (last < first || last >= n_layer)
      throw std::invalid_argument("layer range '" + item + "' is outside the model's layers 0-" + std::to_string(n_layer - 1));
    specs.push_back({first, last, specs.empty(), false});
    expected_first = last + 1;
  }
  if (specs.empty() || expected_first != n_layer)
    throw std::invalid_argument("layer ranges '" + text + "' do not cover all " + std::to_string(n_layer) + " layers");
  specs.back().has_head = true;
  return specs;
}

}  // namespace troupe
