#pragma once
// The sampler: turns the last stage's logits row into a token id. It lives on the same node
// as the last stage (spawned by it), so logits never cross the network; only the token id
// (and the logits row when a request asks for it) goes back to the client. Stateless: the
// options, the recent tokens and the step index all come with each request.
#include "actors/protocol/interfaces.h"

namespace troupe {

// proto::sampler_actor: LogitsRow -> TokenReply.
proto::sampler_actor::behavior_type sampler_behavior();

}  // namespace troupe
