#pragma once
// The bytes that cross the network between two stages: one tensor (element type, shape,
// raw little-endian data) plus the session it belongs to, its position in the sequence and
// what the sampler at the end of the chain will need. Encoded with cereal's binary archive
// behind a magic and a format version, so a peer speaking another version, or a damaged
// message, is refused with a clear WireError instead of being misread.
//
// Torch-free on purpose (at::Tensor is only forward-declared): messages.h includes this.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/runtime/sampler.h"

namespace at {
class Tensor;
}

namespace troupe {

// Bumped whenever the encoding below changes; decode refuses any other version.
constexpr uint32_t kWireFormatVersion = 2;  // 2: SamplingRequest::draft

// Element types on the wire. Activations are fp32 by default; f16/bf16 halve the bytes
// (converted on send, back to fp32 on receive). Token ids travel as i32.
enum class WireDType : uint8_t { f32 = 0, f16 = 1, bf16 = 2, i32 = 3 };

std::string to_string(WireDType t);
WireDType wire_dtype_from_string(const std::string& name);  // "f32"/"fp32", "f16"/"fp16", "bf16"; throws otherwise
size_t wire_dtype_size(WireDType t);

// Raised for every message that cannot be decoded; what() says what was wrong.
class WireError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct WireTensor {
  WireDType dtype = WireDType::f32;
  std::vector<int64_t> shape;
  std::string data;  // elements * wire_dtype_size(dtype) bytes
};

// What the sampler needs; rides along unchanged from the client through every stage.
struct SamplingRequest {
  SamplingOptions options;
  std::vector<int32_t> recent;  // tokens so far (only the repetition window is sent)
  uint64_t step = 0;            // index of the token being generated (for the seeded draw)
  bool want_logits = false;     // also return the logits row (tests, diagnostics)
  // Speculative decoding: the input rows are the last token and then these drafted tokens.
  // The last stage sends the logits of every row; the sampler draws row i's token as plain
  // decoding would (step + i) and keeps the drafts while they equal what it drew.
  std::vector<int32_t> draft;
};

// One hop of one session: token ids into the first stage, hidden states between stages.
struct TensorMessage {
  uint64_t session_id = 0;
  int64_t pos = 0;  // position of the first row of `tensor` in the session's sequence
  WireTensor tensor;
  SamplingRequest sampling;
};

// Throws WireError unless the element type is known, the rank at most 8, the shape sane and
// the data exactly as long as the shape says.
void check_wire_tensor(const WireTensor& w);

// Float tensors are converted to `float_dtype` (f32/f16/bf16); integer tensors go as i32.
// (wire_tensor_convert.cpp: the only part that needs LibTorch.)
WireTensor to_wire(const at::Tensor& t, WireDType float_dtype);
// Floats come back as fp32, integers as int64 (what StageModel::forward takes).
at::Tensor from_wire(const WireTensor& w);
// Token ids [T] as i32, without going through a tensor (for clients that do not link ATen).
WireTensor tokens_to_wire(const std::vector<int32_t>& ids);

std::string encode_tensor_message(const TensorMessage& m);
TensorMessage decode_tensor_message(const std::string& bytes);  // throws WireError

}  // namespace troupe
