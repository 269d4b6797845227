// `troupe tokenize`: print the token ids of a text.
#include <fstream>
#include <iostream>
#include <sstream>

#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"
#include "launch/troupe/text_input.h"
#include "models/format/checkpoint.h"
#include "models/vocab/tokenizer.h"
#include "models/arch/open_checkpoint.h"

namespace troupe::cli {
namespace {

struct TokenizeOptions {
  std::string model, text, file;
  bool no_bos = false;
};

void run_tokenize(const TokenizeOptions& o) {
  const auto ckpt = open_checkpoint(o.model);
  const auto tokenizer = make_tokenizer(ckpt->vocab());
  const std::string text = o.file.empty() ? o.text : read_text_file(o.file);
  const auto ids = tokenizer->encode(text, tokenizer->adds_bos() && !o.no_bos);
  std::ostringstream line;
  for (size_t i = 0; i < ids.size(); ++i) line << (i ? " " : "") << ids[i];
  std::cout << line.str() << "\n";
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand("tokenize", "print the token ids of a text");
  cmd->add_option("--model,-m", o->model, "GGUF file (vocab-only is enough) or Hugging Face directory")->required();
  auto* text = cmd->add_option("--text", o->text, "text to tokenize");
  auto* file = cmd->add_option("--file,-f", o->file, "file whose text to tokenize");
  text->excludes(file);
  cmd->add_flag("--no-bos", o->no_bos, "do not prepend the BOS token");
  cmd->callback([o, text, file] {
    run_reporting_errors([&] {
      if (text->count() == 0 && file->count() == 0) throw std::invalid_argument("give --text or --file");
      run_tokenize(*o);
    });
  });
}

}  // namespace troupe::cli
