// The activation wire decoder: every byte a peer stage sends reaches this first.
#include <ATen/ATen.h>

#include "actors/protocol/wire_tensor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto m = troupe::decode_tensor_message(std::string(reinterpret_cast<const char*>(data), size));
    (void)troupe::from_wire(m.tensor).sum();
  } catch (const troupe::WireError&) {
  }
  return 0;
}
