// GGUF reader and the checkpoint built on it: metadata, tensor directory, model shape,
// vocabulary, and every tensor's bytes read through the returned view.
#include "models/arch/open_checkpoint.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  troupe::fuzz::InputFile file(data, size);
  try {
    const auto ckpt = troupe::open_checkpoint(file.path());
    if (ckpt->has_vocab()) (void)ckpt->vocab().tokens.size();
    volatile uint8_t sink = 0;
    for (const auto& name : ckpt->tensor_names()) {
      try {
        const auto view = ckpt->tensor(name);
        for (size_t i = 0; i < view.nbytes; i += 512) sink ^= view.data[i];
        if (view.nbytes) sink ^= view.data[view.nbytes - 1];
      } catch (const troupe::CheckpointError&) {
      }
    }
  } catch (const troupe::CheckpointError&) {
  }
  return 0;
}
