// The `troupe` command as a user runs it: generated text on stdout, token ids, the
// perplexity line, and one clear error line with a non-zero exit for bad input.
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace troupe {
namespace {

std::string troupe_bin() { return test::bin_path("troupe"); }

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

struct GenerateCase {
  const char* model;
  const char* reference;
};
class CliGenerate : public ::testing::TestWithParam<GenerateCase> {};

TEST_P(CliGenerate, GreedyOutputIsTheReferenceTextOnStdout) {
  const auto ref = test::load_reference(GetParam().reference);
  const auto r = test::run_command({troupe_bin(), "generate", "--model", test::model_path(GetParam().model), "--prompt",
                                    ref.prompt, "-n", std::to_string(ref.steps.size()), "--temp", "0", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, ref.text);
}

INSTANTIATE_TEST_SUITE_P(RealModels, CliGenerate,
                         ::testing::Values(GenerateCase{"stories260K/stories260K.gguf", "stories260K.once-upon-a-time"},
                                           GenerateCase{"stories260K/hf", "stories260K.lily-and-tom"},
                                           GenerateCase{"gpt2-tiny/gpt2-tiny.gguf", "gpt2-tiny.hello-world"},
                                           GenerateCase{"gpt2-tiny/hf", "gpt2-tiny.once-upon-a-time"}));

TEST(CliGenerate, FixedSeedRepeatsAndQuantizedModelsGenerate) {
  for (const char* model : {"stories260K/stories260K-q8_0.gguf", "stories260K/stories260K-q4_0.gguf"}) {
    const std::vector<std::string> cmd = {troupe_bin(), "generate", "-m", test::model_path(model), "-p", "Once upon a time",
                                          "-n", "40", "--temp", "0.8", "--seed", "11"};
    const auto a = test::run_command(cmd), b = test::run_command(cmd);
    ASSERT_EQ(a.exit_code, 0) << a.err;
    EXPECT_EQ(a.out, b.out);
    EXPECT_GT(a.out.size(), 60u) << a.out;
  }
}

TEST(CliGenerate, StopsAtEndOfSequence) {
  // stories260K ends its short stories with EOS well before 400 tokens.
  const auto r = test::run_command({troupe_bin(), "generate", "-m", test::model_path("stories260K/stories260K.gguf"), "-p",
                                    "Once upon a time", "-n", "120", "--temp", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("decode:"), std::string::npos) << r.err;
}

TEST(CliTokenize, PrintsIdsOnOneLineWithBosUnlessAskedNot) {
  const auto ref = test::load_reference("stories260K.lily-and-tom");
  std::string expected;
  for (size_t i = 0; i < ref.prompt_tokens.size(); ++i) expected += (i ? " " : "") + std::to_string(ref.prompt_tokens[i]);
  auto r = test::run_command({troupe_bin(), "tokenize", "-m", test::model_path("stories260K/stories260K.gguf"), "--text", ref.prompt});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, expected + "\n");
  r = test::run_command({troupe_bin(), "tokenize", "-m", test::model_path("stories260K/stories260K.gguf"), "--text", ref.prompt, "--no-bos"});
  EXPECT_EQ(r.out, expected.substr(2) + "\n");
}

TEST(CliTokenize, WorksFromAVocabOnlyFile) {
  const auto r = test::run_command({troupe_bin(), "tokenize", "-m", test::model_path("vocab/ggml-vocab-gpt-2.gguf"), "--text", "Hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "15496 995\n");
}

TEST(CliPerplexity, PrintsThePerplexityLine) {
  const auto r = test::run_command({troupe_bin(), "perplexity", "-m", test::model_path("stories260K/stories260K.gguf"), "-f",
                                    "/usr/share/common-licenses/GPL-3", "--ctx", "128", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("PPL = 105.3", 0), 0u) << r.out;
}

TEST(CliErrors, MissingModelFileExitsWithOneLineNamingIt) {
  const auto r = test::run_command({troupe_bin(), "generate", "-m", "/nowhere/model.gguf", "-p", "hi"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("/nowhere/model.gguf"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(CliErrors, PromptLongerThanTheContextIsRefused) {
  std::string prompt;
  for (int i = 0; i < 200; ++i) prompt += "the cat sat. ";  // stories260K.gguf has a 128-token context
  const auto r = test::run_command({troupe_bin(), "generate", "-m", test::model_path("stories260K/stories260K.gguf"), "-p", prompt});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not fit the context of 128 tokens"), std::string::npos) << r.err;
}

TEST(CliErrors, FileThatIsNotAModelIsNamed) {
  const auto r = test::run_command({troupe_bin(), "tokenize", "-m", "/usr/share/common-licenses/GPL-3", "--text", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("GPL-3: not a model troupe can read"), std::string::npos) << r.err;
}

TEST(CliErrors, StallTimeoutOutOfRangeIsRefusedByNameOnGenerateAndServe) {
  for (const auto& [cmd, bad] : std::vector<std::pair<std::string, std::string>>{
         {"generate", "0.2"}, {"generate", "soon"}, {"serve", "-1"}, {"serve", "5000"}}) {
    const auto r = test::run_command(
      {troupe_bin(), cmd, "-m", test::model_path("stories260K/stories260K.gguf"), "--stall-timeout", bad});
    EXPECT_NE(r.exit_code, 0) << cmd << " " << bad;
    EXPECT_NE(r.err.find("--stall-timeout: must be 0 (not watched) or from 1 to 3600 seconds, got " + bad),
              std::string::npos)
      << cmd << " " << bad << ": " << r.err;
  }
  // In range it is taken (here by a local run, which has no stages to watch).
  const auto r = test::run_command({troupe_bin(), "generate", "-m", test::model_path("stories260K/stories260K.gguf"), "-p",
                                    "Once", "-n", "4", "--stall-timeout", "2.5"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(CliErrors, ADraftModelWithoutNodesIsRefusedSayingItNeedsThem) {
  const std::string model = test::model_path("stories260K/stories260K.gguf");
  const auto r = test::run_command({troupe_bin(), "generate", "-m", model, "-p", "Once", "--draft", model});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--draft needs --nodes"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace troupe
