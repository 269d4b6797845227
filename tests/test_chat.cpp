// `troupe chat` driven through a pseudo-terminal as a person would: turns that follow the
// model's chat template with the history, /reset, and Ctrl-C stopping an answer, not the program.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>

#include "framework/serve/local_generator.h"
#include "framework/serve/stop_sequences.h"
#include "models/arch/open_checkpoint.h"
#include "tests/test_support.h"

namespace troupe {
namespace {

// A program on the slave side of a pty (no echo, no CR/LF translation, Ctrl-C as SIGINT).
class Terminal {
 public:
  explicit Terminal(const std::vector<std::string>& argv) {
    termios t{};
    cfmakeraw(&t);
    t.c_lflag |= ISIG | ICANON;
    t.c_iflag |= ICRNL;
    t.c_cc[VINTR] = 3;
    t.c_cc[VEOF] = 4;
    t.c_cc[VMIN] = 1;
    pid_ = forkpty(&fd_, nullptr, &t, nullptr);
    if (pid_ == 0) {
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Terminal() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }
  void type(const std::string& s) { ASSERT_EQ(write(fd_, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  // Output until it ends with `marker` (which is included); throws after `seconds`.
  std::string read_until(const std::string& marker, int seconds = 120) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (buffer_.find(marker) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("no '" + marker + "' in: " + buffer_);
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n <= 0) throw std::runtime_error("the program closed the terminal; output: " + buffer_);
      buffer_.append(chunk, static_cast<size_t>(n));
    }
    const size_t end = buffer_.find(marker) + marker.size();
    std::string out = buffer_.substr(0, end);
    buffer_.erase(0, end);
    return out;
  }
  // At least `n` more bytes of output (waits up to `seconds`).
  std::string read_bytes(size_t n, int seconds = 120) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (buffer_.size() < n) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("no output after: " + buffer_);
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char chunk[4096];
      const ssize_t got = read(fd_, chunk, sizeof(chunk));
      if (got <= 0) throw std::runtime_error("the program closed the terminal; output: " + buffer_);
      buffer_.append(chunk, static_cast<size_t>(got));
    }
    std::string out = buffer_;
    buffer_.clear();
    return out;
  }
  // The exit status once the program has exited (waits up to `seconds`), -1 if it has not.
  int wait_exit(int seconds = 60) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return status;
      }
      usleep(50 * 1000);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool exited_ = false;
  std::string buffer_;
};

// What the chat should answer: greedy, the template over `history`, up to the end of the turn.
std::string expected_answer(LocalGenerator& gen, const std::vector<ChatMessage>& history, int64_t max_tokens) {
  const auto prompt = gen.encode(render_chat(gen.chat_template(), history));
  StopSequences stops({end_of_turn(gen.chat_template().format)});
  std::string text;
  SamplingOptions greedy;
  greedy.temperature = 0;
  gen.generate(prompt, std::min<int64_t>(max_tokens, gen.max_positions() - static_cast<int64_t>(prompt.size())), greedy,
               [&](const std::string& piece) {
                 text += stops.push(piece);
                 return !stops.stopped();
               });
  if (!stops.stopped()) text += stops.flush();
  return text;
}

// The answer of one turn: the output before the next prompt.
std::string answer_of(const std::string& output) { return output.substr(0, output.size() - std::string("\n> ").size()); }

TEST(Chat, TurnsKeepTheHistoryAndResetForgetsIt) {
  const std::string model = test::model_path("stories260K/stories260K.gguf");
  LocalGenerator gen(open_checkpoint(model));
  Terminal term({test::bin_path("troupe"), "chat", "-m", model, "--temp", "0", "-n", "40", "--threads", "1"});
  term.read_until("\n> ");
  term.type("Tell me a story.\n");
  const std::string first = answer_of(term.read_until("\n> "));
  std::vector<ChatMessage> history = {{"user", "Tell me a story."}};
  EXPECT_EQ(first, expected_answer(gen, history, 40));
  EXPECT_FALSE(first.empty());
  term.type("What did the cat do?\n");
  const std::string second = answer_of(term.read_until("\n> "));
  history.push_back({"assistant", first});
  history.push_back({"user", "What did the cat do?"});
  EXPECT_EQ(second, expected_answer(gen, history, 40));  // the first turn was part of the prompt
  term.type("/reset\n");
  EXPECT_NE(term.read_until("\n> ").find("forgotten"), std::string::npos);
  term.type("What did the cat do?\n");
  EXPECT_EQ(answer_of(term.read_until("\n> ")), expected_answer(gen, {{"user", "What did the cat do?"}}, 40));
  term.type("/quit\n");
  const int status = term.wait_exit();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(Chat, CtrlCStopsTheAnswerNotTheProgram) {
  // A slower model (GPT-2 width, random weights, ~10 ms a token) so that the answer is still
  // being written when Ctrl-C arrives.
  test::TempDir dir;
  const auto synth = test::run_command({test::bin_path("troupe"), "synth", "--shape", "gpt2", "--layers", "2", "--type",
                                        "f16", "--vocab-from", test::model_path("gpt2-tiny/gpt2-tiny.gguf"), "--out",
                                        dir.file("slow.gguf")});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  Terminal term({test::bin_path("troupe"), "chat", "-m", dir.file("slow.gguf"), "--temp", "0", "-n", "100000",
                 "--threads", "1"});
  term.read_until("\n> ");
  term.type("Hello\n");
  const std::string started = term.read_bytes(3);  // the answer has started
  ASSERT_EQ(started.find("\n> "), std::string::npos) << "the answer ended at once: " << started;
  term.type("\x03");
  const std::string rest = term.read_until("\n> ");
  EXPECT_NE(rest.find(" [stopped]\n> "), std::string::npos) << rest;
  term.type("\x03");  // at the prompt: a new prompt, still running
  EXPECT_NE(term.read_until("\n> ").find("Ctrl-D or /quit leaves"), std::string::npos);
  term.type("\x04");  // Ctrl-D at an empty prompt leaves
  const int status = term.wait_exit();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace troupe
