#include "models/runtime/byte_size.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace troupe {

uint64_t parse_size(const std::string& text) {
  auto fail = [&] {
    return std::invalid_argument("'" + text + "' is not a size (examples: 4096, 512M, 6G, 1.5GiB)");
  };
  size_t i = 0;
  const size_t n = text.size();
  while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const size_t number_start = i;
  while (i < n && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string number = text.substr(number_start, i - number_start);
  if (number.empty() || number == "." || number.find('.') != number.rfind('.')) throw fail();
  while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit;
  for (; i < n; ++i) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) break;
    unit += static_cast<char>(std::toupper(static_cast<unsigned char>(text[i])));
  }
  while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i != n) throw fail();

  double scale = 1;
  if (!unit.empty() && unit != "B") {
    const char prefix = unit[0];
    const std::string rest = unit.substr(1);
    if (rest != "" && rest != "B" && rest != "IB") throw fail();
    switch (prefix) {
      case 'K': scale = 1024.0; break;
      case 'M': scale = kMiB; break;
      case 'G': scale = kGiB; break;
      case 'T': scale = kGiB * 1024.0; break;
      default: throw fail();
    }
  }
  const double bytes = std::stod(number) * scale;
  if (!(bytes < 18446744073709551615.0)) throw std::invalid_argument("'" + text + "' is too large a size");
  return static_cast<uint64_t>(bytes);
}

std::string format_size(uint64_t bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  if (unit == 0 || value >= 100)
    std::snprintf(buf, sizeof buf, "%.0f %s", value, units[unit]);
  else if (value >= 10)
    std::snprintf(buf, sizeof buf, "%.1f %s", value, units[unit]);
  else
    std::snprintf(buf, sizeof buf, "%.2f %s", value, units[unit]);
  return buf;
}

}  // namespace troupe
