#include "actors/sampler_actor.h"

#include <caf/all.hpp>

#include "actors/protocol/messages.h"
#include "models/runtime/sampler.h"

namespace troupe {

proto::sampler_actor::behavior_type sampler_behavior() {
  return {
    [](proto::LogitsRow& row) -> caf::result<proto::TokenReply> {
      if (row.logits.empty()) return caf::make_error(caf::sec::runtime_error, "sampler: empty logits row");
      proto::TokenReply reply;
      reply.session_id = row.session_id;
      const SamplingRequest& s = row.sampling;
      const size_t rows = s.draft.size() + 1;
      if (row.logits.size() % rows != 0)
        return caf::make_error(caf::sec::runtime_error, "sampler: " + std::to_string(row.logits.size()) +
                                                          " logits do not make " + std::to_string(rows) + " rows");
      const int64_t n_vocab = static_cast<int64_t>(row.logits.size() / rows);
      try {
        if (s.draft.empty()) {
          reply.token = sample_token(s.options, row.logits.data(), n_vocab, s.recent, s.step);
        } else {
          // Row i is what plain decoding sees at step + i once the drafts before it are taken:
          // draw its token exactly as it would, and go on only while the draft guessed it.
          std::vector<int32_t> recent = s.recent;
          for (size_t i = 0; i < rows; ++i) {
            const int32_t t = sample_token(s.options, row.logits.data() + i * n_vocab, n_vocab, recent, s.step + i);
            reply.tokens.push_back(t);
            if (i + 1 == rows || t != s.draft[i]) break;
            recent.push_back(t);
            if (s.options.repeat_window > 0 && recent.size() > static_cast<size_t>(s.options.repeat_window))
              recent.erase(recent.begin());
          }
          reply.token = reply.tokens.back();
        }
      } catch (const std::exception& e) {
        return caf::make_error(caf::sec::runtime_error, std::string("sampler: ") + e.what());
      }
      if (s.want_logits) {
        const size_t last = reply.tokens.empty() ? 0 : reply.tokens.size() - 1;  // the row of `token`
        reply.logits.assign(row.logits.begin() + static_cast<std::ptrdiff_t>(last * n_vocab),
                            row.logits.begin() + static_cast<std::ptrdiff_t>((last + 1) * n_vocab));
      }
      return reply;
    },
  };
}

}  // namespace troupe
