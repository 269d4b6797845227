// use_passive_openmp_wait: a program that links it runs with passive OpenMP waiting, set before
// the OpenMP runtime initialises (so the program re-executes itself), unless the user chose a
// policy. troupe and caf-node are started as a user starts them, and the runtime says what it
// read. The fallback in main: the test forks, and the child calls it; the re-executed test binary
// finds the report variable set and writes what it sees to a file before any test runs.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "models/machine/openmp_wait_policy.h"
#include "tests/test_support.h"

namespace {

constexpr const char* kReportVar = "TROUPE_TEST_WAIT_POLICY_REPORT";

// What the program runs with: the policy, its process id, and whether this is a fresh image.
void write_report(const char* path, const char* image) {
  std::ofstream out(path);
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  out << (policy ? policy : "(unset)") << " " << getpid() << " " << image;
}

// The re-executed child: report before any test runs, and end there.
const bool kReportedAsChild = [] {
  if (const char* report = std::getenv(kReportVar)) {
    write_report(report, "fresh-image");
    std::_Exit(0);
  }
  return false;
}();

struct Started {
  std::string policy;
  bool reexecuted = false;
};

// How a program starts when main calls use_passive_openmp_wait first, given the environment's
// OMP_WAIT_POLICY (nullptr: unset).
Started start_with(const char* users_policy) {
  const std::string report = (std::filesystem::temp_directory_path() /
                              ("troupe-wait-policy-" + std::to_string(getpid()) + ".txt")).string();
  std::filesystem::remove(report);
  const pid_t child = fork();
  if (child == 0) {
    if (users_policy) setenv("OMP_WAIT_POLICY", users_policy, 1);
    else unsetenv("OMP_WAIT_POLICY");
    setenv(kReportVar, report.c_str(), 1);
    std::string self = "/proc/self/exe";
    char* argv[] = {self.data(), nullptr};
    troupe::use_passive_openmp_wait(argv);
    write_report(report.c_str(), "same-image");  // not re-executed
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  std::ifstream in(report);
  Started started;
  long pid = 0;
  std::string image;
  in >> started.policy >> pid >> image;
  std::filesystem::remove(report);
  EXPECT_EQ(pid, child) << "the program should keep its process id (exec, not a new process)";
  started.reexecuted = image == "fresh-image";
  return started;
}

TEST(OpenmpWaitPolicy, ProgramRestartsItselfWithPassiveWaitingWhenTheUserSetNoPolicy) {
  const Started started = start_with(nullptr);
  EXPECT_EQ(started.policy, "passive");
  EXPECT_TRUE(started.reexecuted) << "the OpenMP runtime reads the policy when it loads: only a new image sees it";
}

TEST(OpenmpWaitPolicy, PolicyTheUserSetIsKeptWithoutARestart) {
  const Started started = start_with("active");
  EXPECT_EQ(started.policy, "active");
  EXPECT_FALSE(started.reexecuted);
}

// The real programs, started as a user starts them. GNU OpenMP prints its settings as it
// initialises when OMP_DISPLAY_ENV=verbose: GOMP_SPINCOUNT is '0' for passive, '300000' for the
// default. Printed once means the libraries initialised once: the program executed itself again
// before they did (.preinit_array), not from main after LibTorch's whole start.
size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(OpenmpWaitPolicy, ProgramsStartPassiveWithTheirLibrariesInitialisedOnce) {
  // caf-node loads LibTorch (and OpenMP) only with its stage runtime: `--probe-speed` opens it
  // as a stage would; `--version` does not load OpenMP at all.
  const std::vector<std::vector<std::string>> runs = {{"troupe", "--version"}, {"caf-node", "--probe-speed", "1"}};
  for (const auto& run : runs) {
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "OMP_WAIT_POLICY", "OMP_DISPLAY_ENV=verbose",
                                     troupe::test::bin_path(run[0])};
    argv.insert(argv.end(), run.begin() + 1, run.end());
    const auto r = troupe::test::run_command(argv);
    const std::string& program = run[0];
    ASSERT_EQ(r.exit_code, 0) << program << ": " << r.err;
    EXPECT_FALSE(r.out.empty()) << program << " printed nothing";
    EXPECT_EQ(count_of(r.err, "GOMP_SPINCOUNT = '0'"), 1u) << program << ": " << r.err;
    EXPECT_EQ(count_of(r.err, "GOMP_SPINCOUNT"), 1u) << program << " initialised OpenMP more than once: " << r.err;
  }
  const auto idle = troupe::test::run_command({"/usr/bin/env", "-u", "OMP_WAIT_POLICY", "OMP_DISPLAY_ENV=verbose",
                                               troupe::test::bin_path("caf-node"), "--version"});
  ASSERT_EQ(idle.exit_code, 0) << idle.err;
  EXPECT_EQ(count_of(idle.err, "GOMP_SPINCOUNT"), 0u) << "caf-node loaded OpenMP without a stage: " << idle.err;
}

TEST(OpenmpWaitPolicy, ProgramsKeepThePolicyTheUserSet) {
  const auto r = troupe::test::run_command(
      {"/usr/bin/env", "OMP_WAIT_POLICY=active", "OMP_DISPLAY_ENV=verbose", troupe::test::bin_path("troupe"), "--version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_of(r.err, "OMP_WAIT_POLICY = 'ACTIVE'"), 1u) << r.err;
}

}  // namespace
