#include "actors/protocol/messages.h"

#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace troupe {
namespace proto {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<NodeInfo>("troupe.NodeInfo");
  cfg.add_message_type<SpawnStage>("troupe.SpawnStage");
  cfg.add_message_type<StageReady>("troupe.StageReady");
  cfg.add_message_type<Activation>("troupe.Activation");
  cfg.add_message_type<LogitsRow>("troupe.LogitsRow");
  cfg.add_message_type<TokenReply>("troupe.TokenReply");
  cfg.add_message_type<StageStats>("troupe.StageStats");
  cfg.add_message_type<LoadProgress>("troupe.LoadProgress");
  cfg.add_message_type<CachedShard>("troupe.CachedShard");
  cfg.add_message_type<ShardOffer>("troupe.ShardOffer");
  cfg.add_message_type<StageFailure>("troupe.StageFailure");
  // Handles that cross the network as a message element of their own (not inside a struct).
  cfg.add_message_type<stage_actor>("troupe.stage_actor");
  cfg.add_message_type<stage_successor>("troupe.stage_successor");
}

caf::error stage_failure_error(const std::string& text, StageFailure failure) {
  return caf::make_error(caf::sec::runtime_error, text, std::move(failure));
}

std::optional<StageFailure> stage_failure_of(const caf::error& err) {
  if (!err) return std::nullopt;
  const caf::message& m = err.context();
  for (size_t i = 0; i < m.size(); ++i)
    if (m.match_element<StageFailure>(i)) return m.get_as<StageFailure>(i);
  return std::nullopt;
}

std::string version_mismatch_text(const std::string& other, uint32_t version, const std::string& me) {
  return other + " speaks troupe protocol v" + std::to_string(version) + ", " + me + " v" +
         std::to_string(kProtocolVersion) + ": run the same troupe version on every machine";
}

std::string error_text(const caf::error& err) {
  if (!err) return "no error";
  std::string context;
  const caf::message& m = err.context();
  for (size_t i = 0; i < m.size(); ++i) {
    if (!m.match_element<std::string>(i)) continue;
    if (!context.empty()) context += "; ";
    context += m.get_as<std::string>(i);
  }
  if (err.category() == caf::atom("system")) {
    const auto code = static_cast<caf::sec>(err.code());
    if (code == caf::sec::runtime_error && !context.empty()) return context;
    return caf::to_string(code) + (context.empty() ? "" : ": " + context);
  }
  return caf::to_string(err);
}

}  // namespace proto
}  // namespace troupe
