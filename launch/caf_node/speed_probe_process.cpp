#include "launch/caf_node/speed_probe_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace troupe {

namespace {

constexpr const char* kTag = "troupe-machine-speed-v1";
constexpr auto kChildDeadline = std::chrono::seconds(60);

void write_figure(std::ostream& out, const ProbedFigure& f) {
  out << ' ' << f.median << ' ' << f.spread << ' ' << f.rounds << ' ' << f.uncertain;
}

bool read_figure(std::istream& in, ProbedFigure& f) {
  return static_cast<bool>(in >> f.median >> f.spread >> f.rounds >> f.uncertain);
}

}  // namespace

std::string format_machine_speed(const MachineSpeed& s) {
  std::ostringstream out;
  out.precision(17);
  out << kTag;
  write_figure(out, s.gflops);
  write_figure(out, s.mem_gbps);
  out << ' ' << s.complete << '\n';
  return out.str();
}

std::optional<MachineSpeed> parse_machine_speed(const std::string& text) {
  const size_t at = text.rfind(kTag);
  if (at == std::string::npos) return std::nullopt;
  std::istringstream in(text.substr(at + std::string(kTag).size()));
  MachineSpeed s;
  if (!read_figure(in, s.gflops) || !read_figure(in, s.mem_gbps) || !(in >> s.complete)) return std::nullopt;
  return s;
}

MachineSpeed probe_speed_in_child(const std::string& exe, int threads, const std::function<bool()>& keep_going) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("speed probe: cannot make a pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);  // not the daemon's sockets
  const std::string threads_arg = std::to_string(threads);
  char* argv[] = {const_cast<char*>(exe.c_str()), const_cast<char*>("--probe-speed"),
                  const_cast<char*>(threads_arg.c_str()), nullptr};
  // The daemon blocks its stop signals (it waits for them); the child must not inherit that.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, exe.c_str(), &actions, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (spawned != 0) {
    close(out[0]);
    throw std::runtime_error("speed probe: cannot run " + exe + ": " + strerror(spawned));
  }
  std::string text;
  bool stopped = false, late = false;
  const auto deadline = std::chrono::steady_clock::now() + kChildDeadline;
  for (;;) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      char buf[512];
      const ssize_t n = read(out[0], buf, sizeof(buf));
      if (n <= 0) break;  // the child is done
      text.append(buf, static_cast<size_t>(n));
    }
    stopped = keep_going && !keep_going();
    late = std::chrono::steady_clock::now() > deadline;
    if (stopped || late) {
      kill(pid, SIGKILL);
      break;
    }
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (stopped) {
    MachineSpeed incomplete;
    incomplete.complete = false;
    return incomplete;
  }
  if (late) throw std::runtime_error("speed probe: " + exe + " --probe-speed gave no figures within a minute");
  const auto speed = parse_machine_speed(text);
  if (!speed || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("speed probe: " + exe + " --probe-speed failed (see the messages above)");
  return *speed;
}

}  // namespace troupe
