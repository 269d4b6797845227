#pragma once
// Reads a whole text file for the commands that take --file.
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace troupe::cli {

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace troupe::cli
