// Finding the nodes of a cluster on the LAN (framework/cluster/discovery.h).
// The LAN tests build three "laptops" (and a fourth of another cluster) as network
// namespaces on one bridge, which itself lives in a namespace of its own: every datagram
// and connection stays inside namespaces the test made, and they are removed on every exit
// path (the destructor runs on failures too; names carry the test's pid).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "actors/protocol/messages.h"
#include "framework/cluster/discovery.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

TEST(Discovery, AnAnnouncementCarriesVersionClusterAndPortAndNothingElseDecodes) {
  Announcement a{proto::kProtocolVersion, {}, 7000};
  a.cluster[0] = 0xab;
  a.cluster[15] = 0x01;
  const std::string d = encode_announcement(a);
  EXPECT_EQ(d.size(), 26u);
  const auto back = decode_announcement(d.data(), d.size());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->version, a.version);
  EXPECT_EQ(back->cluster, a.cluster);
  EXPECT_EQ(back->port, 7000);
  EXPECT_FALSE(decode_announcement(d.data(), d.size() - 1));
  std::string bad = d;
  bad[0] = 'X';
  EXPECT_FALSE(decode_announcement(bad.data(), bad.size()));
}

TEST(Discovery, ANodeThatStopsAnnouncingExpiresAndOtherClustersAreIgnored) {
  const uint16_t port = static_cast<uint16_t>(20000 + getpid() % 20000);
  ClusterIdentity ours{}, theirs{};
  ours[0] = 1;
  theirs[0] = 2;
  DiscoveryListener listener(ours, port);
  auto a = std::make_unique<Announcer>("127.0.0.1", 7101, ours, port, 200ms);
  Announcer other("127.0.0.1", 7102, theirs, port, 200ms);
  listener.listen(700ms);
  EXPECT_EQ(listener.nodes(), std::vector<std::string>{"127.0.0.1:7101"});
  EXPECT_GT(listener.ignored(), 0u);
  a.reset();  // the node leaves
  listener.listen(700ms);
  EXPECT_EQ(listener.nodes(500ms), std::vector<std::string>{});
}

// `ip` by its full path (test::run_command does not search PATH).
std::string ip_bin() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (::access(p, X_OK) == 0) return p;
  return "/usr/sbin/ip";
}

// Three laptops and a stranger on one bridge, each a network namespace.
class NamespaceLan {
 public:
  explicit NamespaceLan(int laptops) : tag_(std::to_string(getpid() % 100000)) {
    bridge_ = "trpbr" + tag_;
    run({ip_bin(), "netns", "add", bridge_});
    run({ip_bin(), "-n", bridge_, "link", "add", "br0", "type", "bridge"});
    run({ip_bin(), "-n", bridge_, "link", "set", "br0", "up"});
    for (int i = 0; i < laptops; ++i) {
      const std::string ns = "trp" + std::to_string(i) + "x" + tag_;
      const std::string port = "p" + std::to_string(i) + "x" + tag_;
      run({ip_bin(), "netns", "add", ns});
      names_.push_back(ns);
      // Both ends made inside the namespaces: nothing appears on the host.
      run({ip_bin(), "-n", bridge_, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns});
      run({ip_bin(), "-n", bridge_, "link", "set", port, "master", "br0", "up"});
      run({ip_bin(), "-n", ns, "addr", "add", address(i) + "/24", "dev", "eth0"});
      run({ip_bin(), "-n", ns, "link", "set", "eth0", "up"});
      run({ip_bin(), "-n", ns, "link", "set", "lo", "up"});
    }
  }
  ~NamespaceLan() {
    for (const auto& ns : names_) test::run_command({ip_bin(), "netns", "del", ns}, 30);
    test::run_command({ip_bin(), "netns", "del", bridge_}, 30);
  }
  const std::string& ns(int i) const { return names_[static_cast<size_t>(i)]; }
  static std::string address(int i) { return "10.251.0." + std::to_string(i + 1); }
  std::vector<std::string> in(int i, std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {ip_bin(), "netns", "exec", ns(i)});
    return argv;
  }

 private:
  static void run(const std::vector<std::string>& argv) {
    const auto r = test::run_command(argv, 30);
    if (r.exit_code != 0) {
      std::string cmd;
      for (const auto& a : argv) cmd += a + " ";
      throw std::runtime_error(cmd + "failed: " + r.err);
    }
  }
  std::string tag_, bridge_;
  std::vector<std::string> names_;
};

bool have_netns() { return getuid() == 0 && test::run_command({ip_bin(), "netns", "list"}, 10).exit_code == 0; }

TEST(Discovery, OnALanOfNamespacesEveryNodeOfTheClusterIsFoundOthersIgnoredALeavingNodeDisappears) {
  if (!have_netns()) GTEST_SKIP() << "needs root and ip netns";
  test::TempDir dir;
  const std::string ours = dir.file("ours.pem"), theirs = dir.file("theirs.pem");
  for (const auto& k : {ours, theirs}) {
    const auto r = test::run_command({test::bin_path("troupe"), "keys", "init", "--out", k});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::filesystem::create_directories(dir.file("models"));
  NamespaceLan lan(4);  // laptops 0-2 of our cluster, 3 of another
  std::vector<std::unique_ptr<test::ChildProcess>> nodes;
  for (int i = 0; i < 4; ++i) {
    const std::string cache = dir.file("cache" + std::to_string(i));
    nodes.push_back(std::make_unique<test::ChildProcess>(lan.in(
      i, {test::bin_path("caf-node"), "--port", "7000", "--listen", NamespaceLan::address(i), "--models",
          dir.file("models"), "--threads", "1", "--cluster-key", i < 3 ? ours : theirs, "--cache", cache,
          "--port-file", dir.file("port" + std::to_string(i))})));
  }
  for (int i = 0; i < 4; ++i) nodes[static_cast<size_t>(i)]->wait_for_port_file(dir.file("port" + std::to_string(i)), 90000);

  auto status = [&](int from) {
    return test::run_command(lan.in(from, {test::bin_path("troupe"), "--cluster-key", ours, "status", "--discover"}), 60);
  };
  const auto all = status(1);
  ASSERT_EQ(all.exit_code, 0) << all.out << all.err;
  for (int i = 0; i < 3; ++i)
    EXPECT_NE(all.out.find(NamespaceLan::address(i) + ":7000"), std::string::npos) << all.out << all.err;
  EXPECT_EQ(all.out.find(NamespaceLan::address(3)), std::string::npos) << all.out;
  EXPECT_NE(all.err.find("other clusters ignored"), std::string::npos) << all.err;
  EXPECT_EQ(all.out.find("UNREACHABLE"), std::string::npos) << all.out;

  // One command: the laptop with the model generates through every node it found, each
  // receiving its shard, and gets the single-process text.
  const std::string model = test::model_path("stories260K/stories260K.gguf");
  const auto local = test::run_command({test::bin_path("troupe"), "generate", "-m", model, "-p", "Once upon a time",
                                        "-n", "24", "--temp", "0", "--threads", "1"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  const auto remote = test::run_command(
    lan.in(0, {test::bin_path("troupe"), "--cluster-key", ours, "generate", "-m", model, "-p", "Once upon a time",
               "-n", "24", "--temp", "0", "--threads", "1", "--discover", "--shard-dir", dir.file("outgoing")}),
    300);
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  EXPECT_EQ(remote.out, local.out);
  EXPECT_NE(remote.err.find("sending the shard of"), std::string::npos) << remote.err;

  nodes[2]->stop();  // laptop 2 leaves
  const auto after = status(0);
  ASSERT_EQ(after.exit_code, 0) << after.out << after.err;
  EXPECT_EQ(after.out.find(NamespaceLan::address(2)), std::string::npos) << after.out;
  EXPECT_NE(after.out.find(NamespaceLan::address(0) + ":7000"), std::string::npos) << after.out;
  for (auto& n : nodes) n->stop();
}

// GET or POST (with a JSON body) on a local `troupe serve`; the body of the answer.
std::string http(uint16_t port, const std::string& path, const std::string& body = "") {
  return test::http_request("http://127.0.0.1:" + std::to_string(port) + path, body, 120).body;
}

// `troupe serve --discover` on loopback: a node started after the pipeline was deployed is
// heard, stands by (/v1/status "standby_nodes"), and takes over the stage of a node that is
// killed; the text stays the undisturbed one.
TEST(Discovery, ServeTakesANodeThatJoinsLaterAsStandbyAndMovesALostStageOntoIt) {
  const uint16_t discovery_port = static_cast<uint16_t>(20000 + (getpid() + 1) % 20000);
  const std::vector<std::string> announce{"--announce", "on", "--discovery-port", std::to_string(discovery_port)};
  auto early = test::start_nodes(test::models_dir(), 1, "early", std::vector<std::vector<std::string>>{announce, announce});
  test::TempDir dir;
  test::ChildProcess server({test::bin_path("troupe"), "serve", "--model", test::model_path("stories260K/stories260K.gguf"),
                             "--discover", "--discovery-port", std::to_string(discovery_port), "--layers", "0-2,3-4",
                             "--port", "0", "--port-file", dir.file("port"), "--threads", "1"});
  const auto port = static_cast<uint16_t>(server.wait_for_port_file(dir.file("port"), 120000));
  const std::string request = R"({"prompt": "Once upon a time", "max_tokens": 30, "temperature": 0})";
  const std::string expected = nlohmann::json::parse(http(port, "/v1/completions", request))["choices"][0]["text"];
  auto status = [&] { return nlohmann::json::parse(http(port, "/v1/status"), nullptr, false); };
  EXPECT_TRUE(status()["standby_nodes"].empty()) << status().dump();

  test::NodeProcess late(test::models_dir(), 1, "late", 0, announce);
  late.wait_ready();
  EXPECT_TRUE(test::eventually([&] { return status()["standby_nodes"] == nlohmann::json::array({late.endpoint()}); },
                               std::chrono::seconds(30)))
    << status().dump() << server.log();

  kill(early[1]->pid(), SIGKILL);
  EXPECT_TRUE(test::eventually([&] { return status()["recoveries"].size() == 1; }, std::chrono::seconds(60)))
    << status().dump();
  const std::string recovery = status()["recoveries"][0];
  EXPECT_NE(recovery.find("moved to " + late.endpoint()), std::string::npos) << recovery;
  EXPECT_EQ(nlohmann::json::parse(http(port, "/v1/completions", request))["choices"][0]["text"], expected);
}

}  // namespace
}  // namespace troupe
