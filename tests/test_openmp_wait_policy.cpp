// use_passive_openmp_wait: a program that calls it first thing runs with passive OpenMP waiting,
// set before the OpenMP runtime loads (so the program re-executes itself), unless the user
// chose a policy. The test forks, and the child calls it with an argv that makes the re-executed
// test binary run only ReportsTheWaitPolicyItRunsWith, which writes what it sees to a file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "models/machine/openmp_wait_policy.h"

namespace {

constexpr const char* kReportVar = "TROUPE_TEST_WAIT_POLICY_REPORT";

// What the program runs with: the policy, its process id, and whether this is a fresh image.
void write_report(const char* path, const char* image) {
  std::ofstream out(path);
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  out << (policy ? policy : "(unset)") << " " << getpid() << " " << image;
}

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
    std::string filter = "--gtest_filter=OpenmpWaitPolicy.ReportsTheWaitPolicyItRunsWith";
    char* argv[] = {self.data(), filter.data(), nullptr};
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

TEST(OpenmpWaitPolicy, ReportsTheWaitPolicyItRunsWith) {
  const char* report = std::getenv(kReportVar);
  if (report == nullptr) GTEST_SKIP() << "run by the other tests, in a re-executed child";
  write_report(report, "fresh-image");
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

}  // namespace
