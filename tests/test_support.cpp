#include "tests/test_support.h"

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace troupe::test {

std::string models_dir() { return TROUPE_MODELS_DIR; }
std::string model_path(const std::string& relative) { return models_dir() + "/" + relative; }
std::string bin_path(const std::string& name) { return std::string(TROUPE_BIN_DIR) + "/" + name; }

namespace {

// The references' "text" holds the raw bytes the model produced, which may be invalid
// UTF-8 (a byte-level token can end mid-character); a JSON parser rejects those. So the
// text is decoded here by hand, byte for byte, and blanked before parsing the rest.
std::string take_raw_text_field(std::string& json) {
  const std::string key = "\"text\": \"";
  const size_t start = json.find(key);
  if (start == std::string::npos) throw std::runtime_error("reference without a text field");
  std::string out;
  size_t i = start + key.size();
  for (; i < json.size() && json[i] != '"'; ++i) {
    if (json[i] != '\\') {
      out += json[i];
      continue;
    }
    const char e = json[++i];
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        uint32_t cp = std::stoul(json.substr(i + 1, 4), nullptr, 16);
        i += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && json.compare(i + 1, 2, "\\u") == 0) {
          const uint32_t lo = std::stoul(json.substr(i + 3, 4), nullptr, 16);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xC0 | (cp >> 6));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
          out += static_cast<char>(0xE0 | (cp >> 12));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          out += static_cast<char>(0xF0 | (cp >> 18));
          out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        break;
      }
      default: out += e;  // \" \\ \/
    }
  }
  json.erase(start + key.size(), i - start - key.size());
  return out;
}

}  // namespace

Reference load_reference(const std::string& name) {
  const std::string path = models_dir() + "/expected/" + name + ".json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open reference " + path);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string text = take_raw_text_field(raw);
  const auto j = nlohmann::json::parse(raw);
  Reference ref;
  ref.prompt = j.at("prompt").get<std::string>();
  ref.prompt_tokens = j.at("prompt_tokens").get<std::vector<int32_t>>();
  for (const auto& s : j.at("steps")) {
    ReferenceStep step;
    step.token = s.at("token").get<int32_t>();
    for (const auto& p : s.at("top5")) step.top5.emplace_back(p.at(0).get<int32_t>(), p.at(1).get<float>());
    step.logsumexp = s.at("logsumexp").get<double>();
    ref.steps.push_back(std::move(step));
  }
  ref.text = text;
  return ref;
}

}  // namespace troupe::test
