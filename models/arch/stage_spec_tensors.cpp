// stage_needs_tensor (stage_spec.h), apart from the rest of StageSpec: it asks the architecture
// registry, which brings every architecture's forward (and LibTorch) with it, while StageSpec
// itself travels in messages that caf-node decodes without LibTorch.
#include <algorithm>
#include <regex>

#include "models/arch/architecture.h"
#include "models/arch/stage_spec.h"
#include "models/format/model_config.h"

namespace troupe {

bool stage_needs_tensor(const ModelConfig& c, const std::string& name, const StageSpec& spec) {
  static const std::regex layer_re(R"(blk\.(\d+)\..+)");
  std::smatch m;
  if (std::regex_match(name, m, layer_re)) {
    const int64_t layer = std::stoll(m[1].str());
    return layer >= spec.layer_first && layer <= spec.layer_last;
  }
  const Architecture& arch = architecture(c.arch);
  auto listed = [&](const std::vector<std::string>& names) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  const bool first = listed(arch.first_stage_tensors), last = listed(arch.last_stage_tensors);
  if (name == "token_embd.weight" && c.tied_head) return spec.has_embedding || spec.has_head;
  if (first || last) return (first && spec.has_embedding) || (last && spec.has_head);
  return true;  // model-wide tensors (e.g. rotary frequency tables) go to every stage
}

}  // namespace troupe
