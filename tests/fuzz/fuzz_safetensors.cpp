// The safetensors container: header length, JSON directory, byte ranges.
#include "models/format/checkpoint.h"
#include "models/format/safetensors_file.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  troupe::fuzz::InputFile file(data, size);
  try {
    troupe::SafetensorsFile f(file.path());
    volatile uint8_t sink = 0;
    for (const auto& [name, e] : f.entries())
      if (e.nbytes) sink ^= e.data[0] ^ e.data[e.nbytes - 1];
  } catch (const troupe::CheckpointError&) {
  }
  return 0;
}
