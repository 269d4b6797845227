// The CLI as a new user meets it (issue 18): --version everywhere, `troupe help [command]`,
// range errors that read as sentences, one spelling per --wire value, and a caf-node on a
// taken port saying so (and using every core unless told otherwise) or missing its stage runtime.
#include <gtest/gtest.h>

#include <thread>

#include "tests/test_support.h"
#include "tests/test_support_nodes.h"

namespace troupe {
namespace {

std::string troupe_bin() { return test::bin_path("troupe"); }

TEST(CliPolish, VersionOnTheProgramEveryCommandAndTheDaemon) {
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{troupe_bin(), "--version"}, {troupe_bin(), "generate", "--version"},
        {troupe_bin(), "serve", "--version"}, {test::bin_path("caf-node"), "--version"}}) {
    const auto r = test::run_command(argv);
    EXPECT_EQ(r.exit_code, 0) << argv[1] << r.err;
    EXPECT_NE(r.out.find(" 0.1.0 "), std::string::npos) << argv[1] << ": " << r.out;
  }
}

TEST(CliPolish, HelpCommandShowsTheProgramOrOneCommand) {
  const auto all = test::run_command({troupe_bin(), "help"});
  EXPECT_EQ(all.exit_code, 0) << all.err;
  for (const char* command : {"generate", "serve", "perplexity", "status"})
    EXPECT_NE(all.out.find(command), std::string::npos) << command;
  const auto one = test::run_command({troupe_bin(), "help", "generate"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("--n-tokens"), std::string::npos) << one.out;
  const auto unknown = test::run_command({troupe_bin(), "help", "fly"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no command 'fly'"), std::string::npos) << unknown.err;
}

TEST(CliPolish, RangeErrorsAreSentencesWithoutHugeNumbers) {
  const auto r = test::run_command(
      {troupe_bin(), "generate", "-m", test::model_path("stories260K/stories260K.gguf"), "-p", "Hi", "-n", "0"});
  EXPECT_NE(r.exit_code, 0);
  const std::string said = r.out + r.err;
  EXPECT_NE(said.find("must be above 0, got 0"), std::string::npos) << said;
  EXPECT_EQ(said.find("179769"), std::string::npos) << said;
  const auto p = test::run_command(
      {troupe_bin(), "generate", "-m", test::model_path("stories260K/stories260K.gguf"), "-p", "Hi", "--top-p", "1.5"});
  EXPECT_NE((p.out + p.err).find("must be between 0 and 1, got 1.5"), std::string::npos) << p.out + p.err;
}

TEST(CliPolish, WireHelpAndErrorSpellTheValuesTheSameWay) {
  const auto help = test::run_command({troupe_bin(), "help", "generate"});
  EXPECT_NE(help.out.find("f32, f16 or bf16"), std::string::npos) << help.out;
  EXPECT_EQ(help.out.find("fp16"), std::string::npos) << help.out;
  const auto bad = test::run_command({troupe_bin(), "generate", "-m", test::model_path("stories260K/stories260K.gguf"),
                                      "-p", "Hi", "--nodes", "127.0.0.1:1", "--wire", "fp8"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE((bad.out + bad.err).find("expected f32, f16 or bf16"), std::string::npos) << bad.out + bad.err;
}

TEST(CliPolish, CafNodeOnATakenPortSaysSoAndUsesEveryCoreByDefault) {
  test::TempDir dir;
  test::ChildProcess first({test::bin_path("caf-node"), "--port", "0", "--port-file", dir.file("port"), "--models",
                            dir.path()});
  const int port = first.wait_for_port_file(dir.file("port"), 120000);  // it measures its speed first
  const auto second = test::run_command({test::bin_path("caf-node"), "--port", std::to_string(port), "--models", dir.path()});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("cannot listen on 127.0.0.1:" + std::to_string(port) + ": the port is taken"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(second.err.find("caf::"), std::string::npos) << second.err;
  EXPECT_EQ(second.err.find("sec::"), std::string::npos) << second.err;
  const std::string threads = std::to_string(std::max(1u, std::thread::hardware_concurrency())) + " threads per stage";
  EXPECT_NE(first.log().find(threads), std::string::npos) << first.log();
}

// caf-node opens its stage runtime (libtroupe_stage_runtime.so, LibTorch and the model core)
// from beside itself or ../lib/troupe: without it, or with something else under its name, it
// says which file and what is wrong, and does not start.
TEST(CliPolish, CafNodeWithoutItsStageRuntimeNamesTheMissingOrWrongModule) {
  test::TempDir dir;
  const std::string node = dir.file("caf-node");
  ASSERT_EQ(test::run_command({"/bin/cp", test::bin_path("caf-node"), node}).exit_code, 0);
  const auto missing = test::run_command({node, "--port", "0", "--models", dir.path()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("its stage runtime libtroupe_stage_runtime.so is neither beside " + node), std::string::npos)
      << missing.err;

  // A shared library that is not troupe's (CAF's own) under the module's name.
  ASSERT_EQ(test::run_command({"/bin/cp", "/usr/lib/x86_64-linux-gnu/libcaf_core.so", dir.file("libtroupe_stage_runtime.so")})
                .exit_code,
            0);
  const auto wrong = test::run_command({node, "--port", "0", "--models", dir.path()});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find("the stage runtime " + dir.file("libtroupe_stage_runtime.so") + " has no troupe_stage_runtime_v1"),
            std::string::npos)
      << wrong.err;
}

TEST(CliPolish, GenerationStoppedByTheContextSaysSoAndCtxLengthensIt) {
  const std::string model = test::model_path("stories260K/stories260K.gguf");  // declares 128 positions
  const auto plain = test::run_command({troupe_bin(), "generate", "-m", model, "-p", "Once upon a time", "-n", "200",
                                        "--temp", "0", "--threads", "1"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.err.find("the context of 128 positions is full (--ctx N for a longer one)"), std::string::npos)
      << plain.err;
  const auto longer = test::run_command({troupe_bin(), "generate", "-m", model, "-p", "Once upon a time", "-n", "200",
                                         "--temp", "0", "--threads", "1", "--ctx", "256"});
  ASSERT_EQ(longer.exit_code, 0) << longer.err;
  EXPECT_NE(longer.err.find("--ctx 256 is longer than the 128 positions"), std::string::npos) << longer.err;
  EXPECT_NE(longer.err.find("decode: 199 tokens"), std::string::npos) << longer.err;
  EXPECT_EQ(longer.err.find("is full"), std::string::npos) << longer.err;
  EXPECT_EQ(longer.out.rfind(plain.out.substr(0, plain.out.size() - 1), 0), 0u);  // the same text, then more
  EXPECT_GT(longer.out.size(), plain.out.size());
  const auto gpt2 = test::run_command({troupe_bin(), "generate", "-m", test::model_path("gpt2-tiny/gpt2-tiny.gguf"), "-p",
                                       "Hi", "--ctx", "512"});
  EXPECT_NE(gpt2.exit_code, 0);
  EXPECT_NE(gpt2.err.find("longer than the 256 positions its position table (position_embd.weight) has"), std::string::npos) << gpt2.err;
}

TEST(CliPolish, LongCommandsShowPercentRateAndTimeLeft) {
  // TROUPE_PROGRESS_AFTER_MS=0 shows progress at once (normally after 2 s), so small runs show it.
  test::TempDir dir;
  const auto synth = test::run_command({"/usr/bin/env", "TROUPE_PROGRESS_AFTER_MS=0", troupe_bin(), "synth", "--shape",
                                        "gpt2", "--layers", "1", "--type", "f16", "--vocab-from",
                                        test::model_path("gpt2-tiny/gpt2-tiny.gguf"), "--out", dir.file("m.gguf")});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  EXPECT_NE(synth.err.find("synth " + dir.file("m.gguf") + ": 100% ("), std::string::npos) << synth.err;
  EXPECT_NE(synth.err.find("/s"), std::string::npos) << synth.err;
  EXPECT_NE(synth.err.find(" left)"), std::string::npos) << synth.err;
  const auto ppl = test::run_command({"/usr/bin/env", "TROUPE_PROGRESS_AFTER_MS=0", troupe_bin(), "perplexity", "-m",
                                      test::model_path("stories260K/stories260K.gguf"), "-f",
                                      "/usr/share/common-licenses/GPL-3", "--threads", "1"});
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
  EXPECT_NE(ppl.err.find("perplexity: 100% ("), std::string::npos) << ppl.err;
  EXPECT_NE(ppl.err.find(" chunks/s"), std::string::npos) << ppl.err;
  EXPECT_NE(ppl.err.find("loading " + test::model_path("stories260K/stories260K.gguf") + ": 100% ("), std::string::npos)
      << ppl.err;
}

}  // namespace
}  // namespace troupe
