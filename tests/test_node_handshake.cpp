// The version handshake: a client talks to a node only when both speak the same troupe
// protocol version, and says so before any versioned struct crosses.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <gtest/gtest.h>

#include <chrono>

#include "actors/protocol/messages.h"
#include "framework/cluster/cluster.h"
#include "tests/test_support_pipeline.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

// A node of another troupe version: it answers hello with its own version, and would send
// a NodeInfo of another shape if asked for it (here: a string, which this client cannot decode
// as NodeInfo), so the test also shows that info is never asked for.
caf::behavior node_of_version(caf::event_based_actor*, uint32_t version, int* info_requests) {
  return {
    [version](proto::hello_atom, uint32_t) { return caf::make_message(proto::hello_atom::value, version); },
    [info_requests](proto::info_atom) {
      ++*info_requests;
      return std::string("a NodeInfo of another shape");
    },
  };
}

uint16_t publish_on_free_port(caf::actor_system& sys, const caf::actor& node) {
  auto port = sys.middleman().publish(node, 0, "127.0.0.1", true);
  if (!port) throw std::runtime_error("cannot publish: " + sys.render(port.error()));
  return *port;
}

TEST(NodeHandshake, NodeOfAnotherProtocolVersionIsRefusedNamingBothVersions) {
  auto& sys = test::actor_system();
  int info_requests = 0;
  auto node = sys.spawn(node_of_version, proto::kProtocolVersion + 1, &info_requests);
  const uint16_t port = publish_on_free_port(sys, node);
  try {
    connect_node(sys, Endpoint{"127.0.0.1", port}, 5s);
    FAIL() << "a node of another version was accepted";
  } catch (const NodeUnreachable& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("speaks troupe protocol v" + std::to_string(proto::kProtocolVersion + 1)), std::string::npos)
      << what;
    EXPECT_NE(what.find("this client v" + std::to_string(proto::kProtocolVersion)), std::string::npos) << what;
  }
  EXPECT_EQ(info_requests, 0) << "no versioned struct may be asked for before the versions agree";
  caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
}

TEST(NodeHandshake, NodeOfTheSameVersionIsAskedForItsInfo) {
  auto& sys = test::actor_system();
  int info_requests = 0;
  auto node = sys.spawn(node_of_version, proto::kProtocolVersion, &info_requests);
  const uint16_t port = publish_on_free_port(sys, node);
  // This node answers info with a string, so the connect fails, but only after asking.
  EXPECT_THROW(connect_node(sys, Endpoint{"127.0.0.1", port}, 5s), NodeUnreachable);
  EXPECT_EQ(info_requests, 1);
  caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
}

}  // namespace
}  // namespace troupe
