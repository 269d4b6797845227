# cpp-httplib: Debian ships it compiled (libcpp-httplib.so); found through pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(CPP_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
add_library(httplib::httplib ALIAS PkgConfig::CPP_HTTPLIB)
