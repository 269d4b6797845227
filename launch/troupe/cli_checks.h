#pragma once
// Range checks for numeric options whose errors read as sentences ("-n: must be at least 1,
// got 0"), unlike CLI11's PositiveNumber ("not in range 0.000000 to 1797693134862315...").
// Shared by `troupe` and `caf-node`, with the --version text.
#include <CLI/CLI.hpp>
#include <cmath>
#include <sstream>
#include <string>

namespace troupe::cli {

inline std::string version_text(const char* program) {
  return std::string(program) + " " + TROUPE_VERSION +
         " (CAF 0.17, LibTorch 1.13)";
}

namespace detail {
inline std::string number_text(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
// lo/hi: NaN for no bound; lo_open: the bound itself is not allowed.
inline CLI::Validator range_check(double lo, double hi, bool lo_open, const std::string& description) {
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(in, &used);
          if (used != in.size()) throw std::invalid_argument(in);
        } catch (const std::exception&) {
          return "expected a number, got '" + in + "'";
        }
        const bool low = !std::isnan(lo) && (lo_open ? v <= lo : v < lo);
        const bool high = !std::isnan(hi) && v > hi;
        if (low || high) return "must be " + description + ", got " + in;
        return std::string();
      },
      description);
}
}  // namespace detail

inline CLI::Validator positive() { return detail::range_check(0, NAN, true, "above 0"); }
inline CLI::Validator non_negative() { return detail::range_check(0, NAN, false, "0 or more"); }
inline CLI::Validator between(double lo, double hi) {
  return detail::range_check(lo, hi, false,
                             "between " + detail::number_text(lo) + " and " + detail::number_text(hi));
}

}  // namespace troupe::cli
