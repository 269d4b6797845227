#pragma once
// The two block shapes the architectures share, with the options that tell the members of
// a family apart. arch_llama.cpp holds the sequential pre-norm block (RMSNorm, attention,
// RMSNorm, SwiGLU) that LLaMA, Mistral, Llama-3, Qwen2 and Phi-3 use; arch_phi2.cpp the
// parallel block (one LayerNorm feeding attention and MLP side by side) of Phi-2 and GPT-J.
#include <memory>

#include "models/arch/architecture.h"
#include "models/arch/layers.h"
#include "models/arch/stage_model.h"

namespace troupe {

struct LlamaVariant {
  bool qkv_bias = false;       // Qwen2: biases on q, k, v
  bool fused_qkv = false;      // Phi-3: one attn_qkv matrix (q, then k, then v rows)
  bool fused_gate_up = false;  // Phi-3: one ffn_up matrix (gate rows, then up rows)
  RotaryOrder rotary = RotaryOrder::interleaved;
};
std::unique_ptr<StageModel> make_llama_stage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec,
                                             const LlamaVariant& variant);

struct ParallelVariant {
  bool attention_bias = true;  // Phi-2: biases on q, k, v and the output projection; GPT-J: none
  RotaryOrder rotary = RotaryOrder::halves;
};
std::unique_ptr<StageModel> make_parallel_stage(const std::shared_ptr<const Checkpoint>& ckpt, const StageSpec& spec,
                                                const ParallelVariant& variant);

// Shared pieces of the architectures' declarations.
double sequential_block_params(const ModelConfig& c);  // q, o, k, v; ffn gate, up, down
double parallel_block_params(const ModelConfig& c);    // q, k, v, o; ffn up, down
std::vector<TensorShape> sequential_block_tensors(const ModelConfig& c, const LlamaVariant& variant);
std::vector<TensorShape> parallel_block_tensors(const ModelConfig& c, bool attention_bias);

}  // namespace troupe
