// The DSL as a library: `cmake --install` of this build, then launch/examples/three_node_pipeline.cpp
// built as an outside project with find_package(troupe) and run on three caf-node daemons.
// Slow (it compiles a program against LibTorch's headers): the only such test.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_support.h"
#include "tests/test_support_nodes.h"

namespace troupe {
namespace {

TEST(Install, ExampleBuiltOutsideAgainstTheInstalledPackageRuns) {
  test::TempDir dir;
  const std::string build_dir = std::string(TROUPE_BIN_DIR) + "/..";
  const std::string prefix = dir.file("prefix");
  const auto install = test::run_command({"/usr/bin/cmake", "--install", build_dir, "--prefix", prefix}, 300);
  ASSERT_EQ(install.exit_code, 0) << install.out << install.err;
  for (const char* file : {"/include/troupe/framework/dsl/dsl.h", "/lib/cmake/troupe/troupeConfig.cmake",
                           "/lib/troupe/libtroupe_deploy.a", "/bin/caf-node", "/lib/troupe/libtroupe_stage_runtime.so"})
    EXPECT_TRUE(std::ifstream(prefix + file).good()) << file;

  const std::string app = dir.file("app");
  ASSERT_EQ(test::run_command({"/bin/mkdir", "-p", app}).exit_code, 0);
  ASSERT_EQ(test::run_command({"/bin/cp", std::string(TROUPE_SOURCE_DIR) + "/launch/examples/three_node_pipeline.cpp", app})
                .exit_code,
            0);
  std::ofstream(app + "/CMakeLists.txt") << R"(cmake_minimum_required(VERSION 3.18)
project(outside CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(troupe REQUIRED)
find_package(CLI11 REQUIRED)
add_executable(three_node_pipeline three_node_pipeline.cpp)
target_link_libraries(three_node_pipeline PRIVATE troupe::troupe CLI11::CLI11)
)";
  const auto configure = test::run_command({"/usr/bin/cmake", "-S", app, "-B", app + "/build", "-DCMAKE_BUILD_TYPE=Release",
                                            "-DCMAKE_PREFIX_PATH=" + prefix},
                                           300);
  ASSERT_EQ(configure.exit_code, 0) << configure.out << configure.err;
  const auto build = test::run_command({"/usr/bin/cmake", "--build", app + "/build", "-j2"}, 900);
  ASSERT_EQ(build.exit_code, 0) << build.out << build.err;

  auto nodes = test::start_nodes(test::models_dir(), 1, "install-node", 3);
  const auto ref = test::load_reference("stories260K.once-upon-a-time");
  const auto run = test::run_command({app + "/build/three_node_pipeline", nodes[0]->endpoint(), nodes[1]->endpoint(),
                                      nodes[2]->endpoint(), "--model", "stories260K/stories260K.gguf", "--tokenizer",
                                      test::model_path("stories260K/stories260K.gguf"), "-n", "20"},
                                     120);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // The prompt, then the greedy continuation: the first 20 of the reference's 60 tokens.
  ASSERT_EQ(run.out.rfind(ref.prompt, 0), 0u) << run.out;
  std::string text = run.out.substr(ref.prompt.size());
  if (!text.empty() && text.back() == '\n') text.pop_back();
  EXPECT_GT(text.size(), 40u) << run.out;
  EXPECT_EQ(ref.text.rfind(text, 0), 0u) << run.out;
}

}  // namespace
}  // namespace troupe
