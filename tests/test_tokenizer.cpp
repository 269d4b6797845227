// Tokenizers against real data: the prompt tokens and generated text of llama.cpp's
// reference runs, llama.cpp's own tokenizer test vectors (test-tokenizer-0) for the
// LLaMA SentencePiece and GPT-2 vocabularies, lossless round trips, and the errors the
// Hugging Face tokenizer file readers raise.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "models/format/checkpoint.h"
#include "models/format/hf_tokenizer_files.h"
#include "models/vocab/tokenizer.h"
#include "tests/test_support.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {
namespace {

using test::model_path;

// ---- vocabulary sources ---------------------------------------------------------------

const std::map<std::string, std::function<Vocab()>>& vocab_sources() {
  static const std::map<std::string, std::function<Vocab()>> sources = {
      {"llama_spm_gguf", [] { return open_checkpoint(model_path("vocab/ggml-vocab-llama-spm.gguf"))->vocab(); }},
      {"gpt2_gguf", [] { return open_checkpoint(model_path("vocab/ggml-vocab-gpt-2.gguf"))->vocab(); }},
      {"stories260K_gguf", [] { return open_checkpoint(model_path("stories260K/stories260K.gguf"))->vocab(); }},
      {"stories260K_tokenizer_model",
       [] { return read_sentencepiece_model(model_path("stories260K/hf/tokenizer.model")); }},
      {"gpt2_tiny_gguf", [] { return open_checkpoint(model_path("gpt2-tiny/gpt2-tiny.gguf"))->vocab(); }},
      {"gpt2_tiny_vocab_json",
       [] {
         return read_gpt2_vocab_files(model_path("gpt2-tiny/hf/vocab.json"), model_path("gpt2-tiny/hf/merges.txt"));
       }},
  };
  return sources;
}

// Built once per source: the GPT-2 vocabulary takes a moment to load.
const Tokenizer& tokenizer(const std::string& source) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> built;
  auto& slot = built[source];
  if (!slot) slot = make_tokenizer(vocab_sources().at(source)());
  return *slot;
}

// ---- reference outputs ----------------------------------------------------------------

// The references store the generated text as raw bytes, which need not be valid UTF-8
// (gpt2-tiny.hello-world holds two lone 0xE1 bytes, token 157), and nlohmann::json rejects
// such strings. Reading the file as Latin-1 makes every byte a character, and mapping the
// parsed strings back gives the bytes exactly (the files use no \u escapes above 0xFF).
std::string latin1_to_utf8(const std::string& bytes) {
  std::string out;
  for (unsigned char b : bytes) {
    if (b < 0x80) {
      out += static_cast<char>(b);
    } else {
      out += static_cast<char>(0xC0 | (b >> 6));
      out += static_cast<char>(0x80 | (b & 0x3F));
    }
  }
  return out;
}

std::string utf8_to_latin1(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = text[i];
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if ((c & 0xE0) == 0xC0 && c <= 0xC3 && i + 1 < text.size()) {
      out += static_cast<char>(((c & 0x1F) << 6) | (text[++i] & 0x3F));
    } else {
      throw std::runtime_error("reference string has a character above U+00FF");
    }
  }
  return out;
}

struct Reference {
  std::string prompt;
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> generated_tokens;
  std::string text;  // raw bytes
};

Reference load_reference_bytes(const std::string& name) {
  const std::string path = test::models_dir() + "/expected/" + name + ".json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open reference " + path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const auto j = nlohmann::json::parse(latin1_to_utf8(bytes.str()));
  Reference ref;
  ref.prompt = utf8_to_latin1(j.at("prompt").get<std::string>());
  ref.prompt_tokens = j.at("prompt_tokens").get<std::vector<int32_t>>();
  for (const auto& step : j.at("steps")) ref.generated_tokens.push_back(step.at("token").get<int32_t>());
  ref.text = utf8_to_latin1(j.at("text").get<std::string>());
  return ref;
}

struct ReferenceCase {
  const char* source;     // a key of vocab_sources()
  const char* reference;  // expected/<reference>.json
};

void PrintTo(const ReferenceCase& c, std::ostream* os) { *os << c.source << " on " << c.reference; }

class ReferenceTokens : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(ReferenceTokens, PromptEncodesToTheReferencePromptTokens) {
  const Reference ref = load_reference_bytes(GetParam().reference);
  const Tokenizer& tok = tokenizer(GetParam().source);
  EXPECT_EQ(tok.encode(ref.prompt, tok.adds_bos()), ref.prompt_tokens);
}

TEST_P(ReferenceTokens, GeneratedTokenBytesConcatenateToTheReferenceText) {
  const Reference ref = load_reference_bytes(GetParam().reference);
  const Tokenizer& tok = tokenizer(GetParam().source);
  std::string text;
  for (int32_t id : ref.generated_tokens) text += tok.token_bytes(id);
  EXPECT_EQ(text, ref.text);
}

std::string case_name(const ::testing::TestParamInfo<ReferenceCase>& info) {
  return test::param_name(std::string(info.param.source) + "_" + info.param.reference);
}

INSTANTIATE_TEST_SUITE_P(
    LlamaCppRuns, ReferenceTokens,
    ::testing::Values(ReferenceCase{"stories260K_gguf", "stories260K.once-upon-a-time"},
                      ReferenceCase{"stories260K_gguf", "stories260K.lily-and-tom"},
                      ReferenceCase{"stories260K_tokenizer_model", "stories260K.once-upon-a-time"},
                      ReferenceCase{"stories260K_tokenizer_model", "stories260K.lily-and-tom"},
                      ReferenceCase{"gpt2_tiny_gguf", "gpt2-tiny.once-upon-a-time"},
                      ReferenceCase{"gpt2_tiny_gguf", "gpt2-tiny.hello-world"},
                      ReferenceCase{"gpt2_tiny_vocab_json", "gpt2-tiny.once-upon-a-time"},
                      ReferenceCase{"gpt2_tiny_vocab_json", "gpt2-tiny.hello-world"}),
    case_name);

// ---- llama.cpp's tokenizer test vectors ----------------------------------------------------

// models/ggml-vocab-{llama-spm,gpt-2}.gguf.{inp,out} from llama.cpp (MIT): texts and the ids
// the Hugging Face tokenizers give for them, without BOS. The last case ("Führer") comes from
// an earlier version of those files, which had it where the current ones have "Äpfel".
struct TokenizerCase {
  std::string text;
  std::vector<int32_t> ids;
};

const std::vector<TokenizerCase> kLlamaSpmCases = {
    {"ied 4 ½ months", {474, 287, 29871, 29946, 29871, 30226, 7378}},
    {"Äpfel", {11585, 7810, 295}},
    {"", {}},
    {" ", {259}},
    {"  ", {1678}},
    {"   ", {268}},
    {"\t", {29871, 12}},
    {"\n", {29871, 13}},
    {"\n\n", {29871, 13, 13}},
    {"\n\n\n", {29871, 13, 13, 13}},
    {"\t\n", {29871, 12, 13}},
    {"Hello world", {15043, 3186}},
    {" Hello world", {29871, 15043, 3186}},
    {"Hello World", {15043, 2787}},
    {" Hello World", {29871, 15043, 2787}},
    {" Hello World!", {29871, 15043, 2787, 29991}},
    {"Hello, world!", {15043, 29892, 3186, 29991}},
    {" Hello, world!", {29871, 15043, 29892, 3186, 29991}},
    {" this is 🦙.cpp", {29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223}},
    {"w048 7tuijk dsdfhu", {281, 29900, 29946, 29947, 29871, 29955, 9161, 13535, 18031, 2176, 6905}},
    {"нещо на Български", {1538, 4851, 665, 1386, 29713, 1305}},
    {"កាន់តែពិសេសអាចខលចេញ", {29871, 31849, 31324, 31934, 228, 162, 142, 228, 161, 146, 228, 162, 133, 228, 161, 153, 228, 161, 186, 31708, 228, 162, 132, 31708, 228, 161, 165, 31324, 228, 161, 136, 228, 161, 132, 228, 161, 158, 228, 161, 136, 228, 162, 132, 228, 161, 140}},
    {"🚀 (normal) 😶\u200d🌫\ufe0f (multiple emojis concatenated) ✅ (only emoji that has its own token)", {29871, 243, 162, 157, 131, 313, 8945, 29897, 29871, 243, 162, 155, 185, 30722, 243, 162, 143, 174, 30598, 313, 20787, 953, 3848, 275, 16125, 630, 29897, 29871, 31681, 313, 6194, 953, 29877, 2397, 393, 756, 967, 1914, 5993, 29897}},
    {"Hello", {15043}},
    {" Hello", {29871, 15043}},
    {"  Hello", {259, 15043}},
    {"   Hello", {1678, 15043}},
    {"    Hello", {268, 15043}},
    {"    Hello\n    Hello", {268, 15043, 13, 1678, 15043}},
    {" (", {29871, 313}},
    {"\n =", {29871, 13, 353}},
    {"' era", {525, 3152}},
    {"Hello, y'all! How are you 😁 ?我想在apple工作1314151天～", {15043, 29892, 343, 29915, 497, 29991, 1128, 526, 366, 29871, 243, 162, 155, 132, 1577, 30672, 31522, 30505, 11548, 31041, 30732, 29896, 29941, 29896, 29946, 29896, 29945, 29896, 30408, 30739}},
    {"!!!!!!", {1738, 6824, 21004}},
    {"3", {29871, 29941}},
    {"33", {29871, 29941, 29941}},
    {"333", {29871, 29941, 29941, 29941}},
    {"3333", {29871, 29941, 29941, 29941, 29941}},
    {"33333", {29871, 29941, 29941, 29941, 29941, 29941}},
    {"333333", {29871, 29941, 29941, 29941, 29941, 29941, 29941}},
    {"3333333", {29871, 29941, 29941, 29941, 29941, 29941, 29941, 29941}},
    {"33333333", {29871, 29941, 29941, 29941, 29941, 29941, 29941, 29941, 29941}},
    {"333333333", {29871, 29941, 29941, 29941, 29941, 29941, 29941, 29941, 29941, 29941}},
    {"Cửa Việt", {315, 228, 190, 176, 29874, 10630, 30529, 29873}},
    {" discards", {29871, 2313, 3163}},
    {"\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫\ufe0f (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL", {29871, 13, 29871, 13, 13, 29871, 13, 13, 13, 29871, 12, 29871, 12, 12, 29871, 12, 13, 259, 13, 1678, 13, 268, 13, 418, 13, 243, 162, 157, 131, 313, 8945, 29897, 29871, 243, 162, 155, 185, 30722, 243, 162, 143, 174, 30598, 313, 20787, 953, 3848, 275, 16125, 630, 29897, 29871, 31681, 29871, 243, 162, 169, 156, 243, 162, 169, 156, 29871, 29941, 29871, 29941, 29941, 29871, 29941, 29941, 29941, 29871, 29941, 29941, 29941, 29941, 29871, 29941, 29941, 29941, 29941, 29941, 29871, 29941, 29941, 29941, 29941, 29941, 29941, 29871, 29941, 29941, 29941, 29941, 29941, 29941, 29941, 29871, 29941, 29941, 29941, 29941, 29941, 29941, 29941, 29941, 29871, 29941, 29889, 29941, 29871, 29941, 636, 29941, 29871, 29941, 856, 29941, 29871, 31849, 31324, 31934, 228, 162, 142, 228, 161, 146, 228, 162, 133, 228, 161, 153, 228, 161, 186, 31708, 228, 162, 132, 31708, 228, 161, 165, 31324, 228, 161, 136, 243, 162, 155, 132, 1577, 30672, 31522, 30505, 11548, 31041, 30732, 29896, 29941, 29896, 29946, 29896, 29945, 29896, 30408, 30739, 448, 23648, 2751, 25512, 1538, 4851, 665, 1386, 29713, 1305, 14550, 4907, 11120, 16159, 16159, 16159, 15945, 15945, 3045, 636, 6824, 6824, 6824, 8773, 8773, 8773, 306, 29915, 345, 1063, 525, 29873, 1025, 540, 29915, 29879, 727, 29892, 525, 1525, 366, 1854, 29973, 525, 29924, 451, 1854, 306, 29915, 645, 1207, 372, 29892, 525, 29928, 366, 763, 777, 23429, 29973, 1334, 29915, 29963, 29872, 263, 29915, 29880, 29931}},
    {"Führer", {383, 4000, 261}},
};

const std::vector<TokenizerCase> kGpt2Cases = {
    {"ied 4 ½ months", {798, 604, 25208, 1933}},
    {"Äpfel", {127, 226, 79, 69, 417}},
    {"", {}},
    {" ", {220}},
    {"  ", {220, 220}},
    {"   ", {220, 220, 220}},
    {"\t", {197}},
    {"\n", {198}},
    {"\n\n", {628}},
    {"\n\n\n", {628, 198}},
    {"\t\n", {197, 198}},
    {"Hello world", {15496, 995}},
    {" Hello world", {18435, 995}},
    {"Hello World", {15496, 2159}},
    {" Hello World", {18435, 2159}},
    {" Hello World!", {18435, 2159, 0}},
    {"Hello, world!", {15496, 11, 995, 0}},
    {" Hello, world!", {18435, 11, 995, 0}},
    {" this is 🦙.cpp", {428, 318, 12520, 99, 247, 13, 20322}},
    {"w048 7tuijk dsdfhu", {86, 47202, 767, 28047, 45961, 288, 82, 7568, 13415}},
    {"нещо на Български", {22177, 16843, 141, 231, 15166, 12466, 121, 16142, 12466, 239, 141, 232, 30143, 140, 111, 16142, 21169, 21727, 31583, 18849}},
    {"កាន់តែពិសេសអាចខលចេញ", {157, 252, 222, 157, 252, 114, 157, 252, 241, 157, 253, 233, 157, 252, 237, 157, 253, 224, 157, 252, 244, 157, 252, 115, 157, 252, 253, 157, 253, 223, 157, 252, 253, 157, 252, 95, 157, 252, 114, 157, 252, 227, 157, 252, 223, 157, 252, 249, 157, 252, 227, 157, 253, 223, 157, 252, 231}},
    {"🚀 (normal) 😶\u200d🌫\ufe0f (multiple emojis concatenated) ✅ (only emoji that has its own token)", {8582, 248, 222, 357, 11265, 8, 30325, 114, 447, 235, 8582, 234, 104, 37929, 357, 48101, 795, 13210, 271, 1673, 36686, 515, 8, 14519, 227, 357, 8807, 44805, 326, 468, 663, 898, 11241, 8}},
    {"Hello", {15496}},
    {" Hello", {18435}},
    {"  Hello", {220, 18435}},
    {"   Hello", {220, 220, 18435}},
    {"    Hello", {220, 220, 220, 18435}},
    {"    Hello\n    Hello", {220, 220, 220, 18435, 198, 220, 220, 220, 18435}},
    {" (", {357}},
    {"\n =", {198, 796}},
    {"' era", {6, 6980}},
    {"Hello, y'all! How are you 😁 ?我想在apple工作1314151天～", {15496, 11, 331, 6, 439, 0, 1374, 389, 345, 30325, 223, 5633, 22755, 239, 46349, 111, 28839, 101, 18040, 32432, 98, 43291, 1485, 1415, 24309, 25465, 171, 121, 252}},
    {"!!!!!!", {13896, 3228}},
    {"3", {18}},
    {"33", {2091}},
    {"333", {20370}},
    {"3333", {24840}},
    {"33333", {2091, 20370}},
    {"333333", {24840, 2091}},
    {"3333333", {24840, 20370}},
    {"33333333", {24840, 24840}},
    {"333333333", {24840, 2091, 20370}},
    {"Cửa Việt", {34, 157, 119, 255, 64, 16049, 157, 119, 229, 83}},
    {" discards", {1221, 1371}},
    {"\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫\ufe0f (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL", {198, 220, 628, 220, 628, 198, 220, 197, 220, 197, 197, 220, 197, 198, 220, 220, 198, 220, 220, 220, 198, 220, 220, 220, 220, 198, 220, 220, 220, 220, 220, 198, 8582, 248, 222, 357, 11265, 8, 30325, 114, 447, 235, 8582, 234, 104, 37929, 357, 48101, 795, 13210, 271, 1673, 36686, 515, 8, 14519, 227, 12520, 99, 247, 8582, 99, 247, 513, 4747, 23460, 513, 20370, 23460, 2091, 23460, 20370, 23460, 24840, 23460, 2091, 20370, 513, 13, 18, 513, 492, 18, 513, 986, 18, 28053, 252, 222, 157, 252, 114, 157, 252, 241, 157, 253, 233, 157, 252, 237, 157, 253, 224, 157, 252, 244, 157, 252, 115, 157, 252, 253, 157, 253, 223, 157, 252, 253, 157, 252, 95, 157, 252, 114, 157, 252, 227, 47249, 223, 5633, 22755, 239, 46349, 111, 28839, 101, 18040, 32432, 98, 43291, 1485, 1415, 24309, 25465, 171, 121, 252, 40103, 1421, 18604, 12466, 121, 16843, 141, 231, 15166, 12466, 121, 16142, 12466, 239, 141, 232, 30143, 140, 111, 16142, 21169, 21727, 31583, 18849, 705, 39115, 6, 33153, 15506, 63, 15931, 15931, 16317, 13896, 3228, 9805, 3548, 314, 1053, 587, 705, 44040, 339, 338, 612, 11, 705, 2200, 345, 1654, 30, 705, 44, 407, 1654, 314, 1183, 787, 340, 11, 705, 35, 345, 588, 617, 8887, 30, 775, 6, 26979, 257, 6, 75, 43}},
    {"Führer", {37, 9116, 71, 11751}},
};

TEST(LlamaSpmVocab, EncodesLlamaCppTestVectorsLikeTheHuggingFaceTokenizer) {
  const Tokenizer& tok = tokenizer("llama_spm_gguf");
  for (const auto& c : kLlamaSpmCases) EXPECT_EQ(tok.encode(c.text, false), c.ids) << "text: \"" << c.text << "\"";
}

TEST(LlamaSpmVocab, PutsBosFirstAndTheSpacePrefixOnlyOnce) {
  const Tokenizer& tok = tokenizer("llama_spm_gguf");
  ASSERT_TRUE(tok.adds_bos());
  EXPECT_EQ(tok.encode("Hello world", tok.adds_bos()), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tok.encode(" Hello world", tok.adds_bos()), (std::vector<int32_t>{1, 29871, 15043, 3186}));
  EXPECT_EQ(tok.encode("", tok.adds_bos()), (std::vector<int32_t>{1}));
}

TEST(Gpt2Vocab, EncodesLlamaCppTestVectorsLikeTheHuggingFaceTokenizer) {
  const Tokenizer& tok = tokenizer("gpt2_gguf");
  for (const auto& c : kGpt2Cases) EXPECT_EQ(tok.encode(c.text, false), c.ids) << "text: \"" << c.text << "\"";
}

TEST(Gpt2Vocab, AddsNoBosByDefault) {
  const Tokenizer& tok = tokenizer("gpt2_gguf");
  ASSERT_FALSE(tok.adds_bos());
  EXPECT_EQ(tok.encode("Hello world", tok.adds_bos()), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(tok.encode(" Hello world", tok.adds_bos()), (std::vector<int32_t>{18435, 995}));
}

// ---- decoding ---------------------------------------------------------------------------

TEST(SpmTokenizer, TokenBytesTurnSpaceMarkersIntoSpacesAndControlTokensIntoNothing) {
  const Tokenizer& tok = tokenizer("llama_spm_gguf");
  EXPECT_EQ(tok.token_bytes(15043), " Hello");  // "▁Hello"
  EXPECT_EQ(tok.token_bytes(13), "\n");         // "<0x0A>"
  EXPECT_EQ(tok.token_bytes(tok.bos_id()), "");
  EXPECT_EQ(tok.token_bytes(tok.eos_id()), "");
}

TEST(SpmTokenizer, DecodeDropsBosEosAndTheSpacePrefix) {
  const Tokenizer& tok = tokenizer("llama_spm_gguf");
  EXPECT_EQ(tok.decode({1, 15043, 3186, 2}), "Hello world");
  EXPECT_EQ(tok.decode({1, 29871, 15043, 3186}), " Hello world");
}

TEST(SpmTokenizer, FallsBackToByteTokensForCharactersOutsideTheVocabulary) {
  const Tokenizer& tok = tokenizer("stories260K_gguf");
  const auto& tokens = tok.vocab().tokens;
  auto id_of = [&](const std::string& piece) {
    return static_cast<int32_t>(std::find(tokens.begin(), tokens.end(), piece) - tokens.begin());
  };
  const std::vector<int32_t> ids = tok.encode("a\xF0\x9F\x99\x82", false);  // "a🙂"
  EXPECT_EQ(ids, (std::vector<int32_t>{id_of("\xE2\x96\x81" "a"), id_of("<0xF0>"), id_of("<0x9F>"), id_of("<0x99>"),
                                       id_of("<0x82>")}));
}

TEST(Gpt2Tokenizer, TokenBytesMapTheByteLevelAlphabetBackToBytes) {
  const Tokenizer& tok = tokenizer("gpt2_gguf");
  EXPECT_EQ(tok.token_bytes(18435), " Hello");  // "ĠHello"
  EXPECT_EQ(tok.token_bytes(198), "\n");        // "Ċ"
  EXPECT_EQ(tok.token_bytes(157), "\xE1");      // half of a UTF-8 character
  EXPECT_EQ(tok.token_bytes(50256), "");        // <|endoftext|> is a control token
}

// ---- round trips ------------------------------------------------------------------------

class RoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(RoundTrip, DecodeOfEncodeGivesBackTheText) {
  const Tokenizer& tok = tokenizer(GetParam());
  const std::vector<std::string> texts = {
      "Hello, world!",
      " leading space, and trailing   ",
      "line one\nline two\n\n\tindented\r\n",
      "several     spaces\t\ttabs",
      "12345 6.7 -8e9 0x1F",
      "Punctuation: (a) [b] {c} <d> \"e\" 'f' `g` ~!@#$%^&*_+=|\\/?;:",
      "Grüße, 世界! 🙂\n\tnaïve café",
      "🦙🦙 नमस्ते",
      "\n starts with a newline",
      "invalid UTF-8: \xF3\xEE\x01 x \xFF\xC3( \xE2\x82",  // bytes, not text: still lossless
  };
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = tok.encode(text, tok.adds_bos());
    EXPECT_EQ(tok.decode(ids), text) << "text: \"" << text << "\"";
  }
}

std::string source_name(const ::testing::TestParamInfo<const char*>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(AllVocabularies, RoundTrip,
                         ::testing::Values("llama_spm_gguf", "gpt2_gguf", "stories260K_gguf",
                                           "stories260K_tokenizer_model", "gpt2_tiny_gguf", "gpt2_tiny_vocab_json"),
                         source_name);

// ---- a long real text: speed, losslessness, thread safety ----------------------------------

std::string gpl3_text() {
  std::ifstream in("/usr/share/common-licenses/GPL-3", std::ios::binary);
  if (!in) throw std::runtime_error("cannot open /usr/share/common-licenses/GPL-3");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

class LongText : public ::testing::TestWithParam<const char*> {};

// The perplexity command tokenizes this whole 35 KB licence (speed is measured by the
// benchmark in the closing notes, not asserted here: this machine is noisy).
TEST_P(LongText, EncodesThe35KbGpl3AndDecodesItBack) {
  const Tokenizer& tok = tokenizer(GetParam());
  const std::string text = gpl3_text();
  const std::vector<int32_t> ids = tok.encode(text, false);
  EXPECT_GT(ids.size(), 5000u);
  EXPECT_EQ(tok.decode(ids), text);
}

TEST_P(LongText, EncodesTheSameFromSeveralThreadsAtOnce) {
  const Tokenizer& tok = tokenizer(GetParam());
  const std::string text = gpl3_text();
  const std::vector<int32_t> expected = tok.encode(text, false);
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&tok, &text, &result] {
      for (int i = 0; i < 3; ++i) result = tok.encode(text, false);
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

INSTANTIATE_TEST_SUITE_P(SpmAndBpe, LongText, ::testing::Values("llama_spm_gguf", "gpt2_gguf"), source_name);

// ---- Hugging Face tokenizer files ------------------------------------------------------------

TEST(HfTokenizerFiles, TokenizerModelGivesTheSameVocabularyAsTheStories260KGguf) {
  const Vocab hf = read_sentencepiece_model(model_path("stories260K/hf/tokenizer.model"));
  const Vocab gguf = open_checkpoint(model_path("stories260K/stories260K.gguf"))->vocab();
  EXPECT_EQ(hf.kind, VocabKind::spm);
  EXPECT_EQ(hf.tokens, gguf.tokens);
  EXPECT_EQ(hf.scores, gguf.scores);
  EXPECT_EQ(hf.types, gguf.types);
  EXPECT_EQ(hf.bos_id, gguf.bos_id);
  EXPECT_EQ(hf.eos_id, gguf.eos_id);
  EXPECT_EQ(hf.unk_id, gguf.unk_id);
  EXPECT_EQ(hf.add_bos, gguf.add_bos);
  EXPECT_EQ(hf.add_space_prefix, gguf.add_space_prefix);
}

TEST(HfTokenizerFiles, VocabJsonAndMergesGiveTheSameVocabularyAsTheGpt2TinyGguf) {
  const Vocab hf = read_gpt2_vocab_files(model_path("gpt2-tiny/hf/vocab.json"), model_path("gpt2-tiny/hf/merges.txt"));
  const Vocab gguf = open_checkpoint(model_path("gpt2-tiny/gpt2-tiny.gguf"))->vocab();
  EXPECT_EQ(hf.kind, VocabKind::bpe);
  EXPECT_EQ(hf.tokens, gguf.tokens);
  EXPECT_EQ(hf.merges, gguf.merges);
  EXPECT_EQ(hf.types, gguf.types);
  EXPECT_EQ(hf.bos_id, gguf.bos_id);
  EXPECT_EQ(hf.eos_id, gguf.eos_id);
  EXPECT_EQ(hf.add_bos, gguf.add_bos);
}

// A fresh directory for files a test writes, removed with the test.
class ScratchDir {
 public:
  ScratchDir()
      : path_(std::filesystem::temp_directory_path() /
              ("troupe_test_tokenizer_" + std::to_string(::getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name, const std::string& contents) const {
    const std::string path = (path_ / name).string();
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

 private:
  std::filesystem::path path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// The message of the CheckpointError `load` throws, or "" when it throws none.
std::string checkpoint_error_message(const std::function<void()>& load) {
  try {
    load();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

TEST(HfTokenizerFiles, MissingTokenizerModelIsACheckpointErrorNamingThePath) {
  const std::string path = model_path("stories260K/hf/no-such-tokenizer.model");
  EXPECT_NE(checkpoint_error_message([&] { read_sentencepiece_model(path); }).find(path), std::string::npos);
}

TEST(HfTokenizerFiles, EveryTruncationOfTokenizerModelIsACheckpointErrorNamingThePath) {
  const std::string whole = read_file(model_path("stories260K/hf/tokenizer.model"));
  ASSERT_GT(whole.size(), 1000u);
  ScratchDir dir;
  for (size_t length = 0; length < whole.size(); ++length) {
    const std::string path = dir.file("tokenizer.model", whole.substr(0, length));
    EXPECT_NE(checkpoint_error_message([&] { read_sentencepiece_model(path); }).find(path), std::string::npos)
        << "truncated to " << length << " of " << whole.size() << " bytes";
  }
}

TEST(HfTokenizerFiles, VocabJsonThatIsNotJsonIsACheckpointErrorNamingThePath) {
  ScratchDir dir;
  const std::string vocab_json = dir.file("vocab.json", "{\"!\": 0, \"\\\"\": 1,");
  const std::string merges_txt = model_path("gpt2-tiny/hf/merges.txt");
  EXPECT_NE(checkpoint_error_message([&] { read_gpt2_vocab_files(vocab_json, merges_txt); }).find(vocab_json),
            std::string::npos);
}

TEST(HfTokenizerFiles, MissingMergesTxtIsACheckpointErrorNamingThePath) {
  const std::string merges_txt = model_path("gpt2-tiny/hf/no-such-merges.txt");
  EXPECT_NE(checkpoint_error_message([&] { read_gpt2_vocab_files(model_path("gpt2-tiny/hf/vocab.json"), merges_txt); })
                .find(merges_txt),
            std::string::npos);
}

}  // namespace
}  // namespace troupe
