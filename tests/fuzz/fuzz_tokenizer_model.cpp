// SentencePiece tokenizer.model (protobuf read by hand).
#include "models/format/checkpoint.h"
#include "models/format/hf_tokenizer_files.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  troupe::fuzz::InputFile file(data, size);
  try {
    troupe::read_sentencepiece_model(file.path());
  } catch (const troupe::CheckpointError&) {
  }
  return 0;
}
