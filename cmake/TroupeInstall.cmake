# `cmake --install build --prefix P` puts the DSL in place for programs outside this tree:
#   P/include/troupe/{models,actors,framework}/...  the headers (#include "framework/dsl/dsl.h")
#   P/lib/troupe/libtroupe_*.a                      one static library per source folder
#   P/lib/cmake/troupe/                             the package: find_package(troupe) gives troupe::troupe
#   P/bin/troupe, P/bin/caf-node                    the programs
# The package finds the same dependencies the build did (Torch, CAF, spdlog, cereal, ...).
include(CMakePackageConfigHelpers)
install(DIRECTORY models actors framework DESTINATION include/troupe FILES_MATCHING PATTERN "*.h")

add_library(troupe_package INTERFACE)
set_target_properties(troupe_package PROPERTIES EXPORT_NAME troupe)
target_link_libraries(troupe_package INTERFACE troupe_framework troupe_models)
install(TARGETS troupe_package troupe_framework troupe_models EXPORT troupeTargets)
install(EXPORT troupeTargets NAMESPACE troupe:: DESTINATION lib/cmake/troupe)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES cmake/troupeConfig.cmake ${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake cmake/CAF.cmake cmake/PCRE2.cmake
              cmake/HttpLib.cmake
        DESTINATION lib/cmake/troupe)
install(TARGETS troupe caf-node RUNTIME DESTINATION bin)
