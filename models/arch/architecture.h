#pragma once
// One architecture, everything particular to it in one place (its file models/arch/arch_<name>.cpp):
// how its files name and lay out things (ArchitectureFormat), which tensors go to the first
// and last stage, what a layer costs, the tensors of a model of its shape (for synth), the
// named shapes of real models, and its forward pass. The registry maps names to these;
// an unknown name is refused with the list of known ones.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/format/architecture_format.h"
#include "models/format/model_config.h"

namespace troupe {

class Checkpoint;
class StageModel;
struct StageSpec;

// A tensor of a model of some shape, and how a random-weight copy fills it.
struct TensorShape {
  enum Fill { weight, embedding, positions, ones, zeros };
  std::string name;
  std::vector<int64_t> shape;  // outermost first
  Fill fill = weight;
};

struct Architecture {
  ArchitectureFormat format;
  // Non-layer tensors only the first stage loads, and those the last stage loads (a tied
  // head loads token_embd.weight too). Other non-layer tensors (rope_freqs) go to every stage.
  std::vector<std::string> first_stage_tensors;
  std::vector<std::string> last_stage_tensors;
  // Parameters a token is multiplied with in one layer (the planner counts 2 FLOPs each).
  double (*matmul_params_per_layer)(const ModelConfig& c) = nullptr;
  // Every tensor of a model of shape `c`, in file order.
  std::vector<TensorShape> (*tensors)(const ModelConfig& c) = nullptr;
  // Shapes of real models by name (`troupe synth --shape`).
  std::map<std::string, ModelConfig> presets;
  std::unique_ptr<StageModel> (*make_stage)(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec) = nullptr;
};

// Every known architecture, and one by name (a GGUF alias like "mistral" included). Throws
// std::invalid_argument naming the unknown architecture and the known ones.
const std::vector<const Architecture*>& architectures();
const Architecture& architecture(const std::string& name);
// The file-format facts of all of them, for the checkpoint readers.
const ArchitectureCatalog& architecture_catalog();

// The architectures, one function each (arch_<name>.cpp).
const Architecture& llama_architecture();
const Architecture& gpt2_architecture();
const Architecture& phi2_architecture();
const Architecture& gptj_architecture();
const Architecture& qwen2_architecture();
const Architecture& phi3_architecture();

}  // namespace troupe
