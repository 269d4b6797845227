#include "actors/sampler_actor.h"

#include <caf/all.hpp>

#include "actors/protocol/messages.h"
#include "models/runtime/sampler.h"

namespace troupe {

caf::behavior sampler_behavior(caf::event_based_actor* self) {
  return {
    [](proto::LogitsRow& row) -> caf::result<proto::TokenReply> {
      if (row.logits.empty()) return caf::make_error(caf::sec::runtime_error, "sampler: empty logits row");
      proto::TokenReply reply;
      reply.session_id = row.session_id;
      try {
        const SamplingRequest& s = row.sampling;
        reply.token = sample_token(s.options, row.logits.data(), static_cast<int64_t>(row.logits.size()), s.recent,
                                   s.step);
      } catch (const std::exception& e) {
        return caf::make_error(caf::sec::runtime_error, std::string("sampler: ") + e.what());
      }
      if (row.sampling.want_logits) reply.logits = std::move(row.logits);
      return reply;
    },
  };
}

}  // namespace troupe
