# troupe_library(<name> [PUBLIC deps...] [PRIVATE deps...]): one static library of the *.cpp
# files in the calling folder. Every folder of the source tree is one library; which libraries
# it links says which folders it may include (tests/test_layering checks the includes).
function(troupe_library name)
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  add_library(${name} STATIC ${sources})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}> $<INSTALL_INTERFACE:include/troupe>)
  target_link_libraries(${name} ${ARGN})
  # cmake --install: into the troupe package (cmake/TroupeInstall.cmake).
  install(TARGETS ${name} EXPORT troupeTargets ARCHIVE DESTINATION lib/troupe)
endfunction()
