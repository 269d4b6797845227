# PCRE2 (8-bit) for the GPT-2 pre-tokenizer regex; found through pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
add_library(pcre2::pcre2 ALIAS PkgConfig::PCRE2)
