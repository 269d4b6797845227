#pragma once
// Shared helpers for tests: where the real model files and our binaries are, and the
// reference outputs in ../shared/models/expected.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace troupe::test {

std::string models_dir();                 // ../shared/models
std::string model_path(const std::string& relative);  // models_dir() + "/" + relative
std::string bin_path(const std::string& name);        // build/bin/<name>

struct ReferenceStep {
  int32_t token;
  std::vector<std::pair<int32_t, float>> top5;
  double logsumexp;
};
struct Reference {
  std::string prompt;
  std::vector<int32_t> prompt_tokens;
  std::vector<ReferenceStep> steps;
  std::string text;
};
Reference load_reference(const std::string& name);  // e.g. "stories260K.once-upon-a-time"

}  // namespace troupe::test
