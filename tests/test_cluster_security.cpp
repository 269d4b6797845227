// A cluster only its owner can use, with real caf-node daemons on 127.0.0.1: the cluster key
// (troupe keys init) admits exactly the processes that hold it, hostile bytes on a keyed
// node's port never reach CAF's parser, TLS changes no bit of the output, a node serves only
// what lies inside its --models dir, and its caps hold.
#include <arpa/inet.h>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "actors/protocol/actor_system.h"
#include "actors/protocol/cluster_key.h"
#include "framework/cluster/cluster.h"
#include "framework/deploy/deploy.h"
#include "framework/dsl/dsl.h"
#include "tests/test_support.h"
#include "tests/test_support_nodes.h"
#include "tests/test_support_pipeline.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::NodeProcess;

const std::string kModel = "stories260K/stories260K.gguf";

// A client's actor system holding `key` (TLS to every node), as `troupe --cluster-key` makes it.
class KeyedSystem {
 public:
  explicit KeyedSystem(const std::string& key) {
    configure_actor_system(cfg_, 2, key);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }
  caf::actor_system& get() { return *sys_; }

 private:
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
};

// Two cluster keys made once for this test process (key generation is cheap, files are not shared).
struct Keys {
  test::TempDir dir;
  std::string ours = dir.file("cluster.pem");
  std::string theirs = dir.file("other.pem");
  Keys() {
    create_cluster_key(ours);
    create_cluster_key(theirs);
  }
};
Keys& keys() {
  static Keys k;
  return k;
}

std::unique_ptr<NodeProcess> keyed_node(const std::string& name, std::vector<std::string> extra = {}) {
  extra.insert(extra.end(), {"--cluster-key", keys().ours});
  auto node = std::make_unique<NodeProcess>(test::models_dir(), test::kPipelineThreads, name, 0, extra);
  node->wait_ready();
  return node;
}

std::string failure_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

size_t rss_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6)) * 1024;
  return 0;
}

// How many listening TCP sockets process `pid` holds.
int listening_sockets(pid_t pid) {
  std::set<std::string> inodes;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& e : fs::directory_iterator(fd_dir)) {
    std::error_code ec;
    const std::string t = fs::read_symlink(e.path(), ec).string();
    if (!ec && t.rfind("socket:[", 0) == 0) inodes.insert(t.substr(8, t.size() - 9));
  }
  int n = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string slot, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> slot >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state == "0A" && inodes.count(inode)) ++n;  // 0A: LISTEN
    }
  }
  return n;
}

// Connects to 127.0.0.1:port, sends `bytes`, and waits (at most 2 s) for the node to close.
void send_raw(uint16_t port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ssize_t sent = 0;
  while (sent < static_cast<ssize_t>(bytes.size())) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the node closed on us: fine
    sent += n;
  }
  char buf[4096];
  while (recv(fd, buf, sizeof(buf), 0) > 0) {
  }
  close(fd);
}

// -- the key file ---------------------------------------------------------------------------------

TEST(ClusterKey, InitWritesAFileOnlyItsOwnerCanReadAndNeverOverwritesIt) {
  test::TempDir dir;
  const std::string path = dir.file("sub/cluster.pem");
  create_cluster_key(path);
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const ClusterKeyInfo info = check_cluster_key(path);
  EXPECT_EQ(info.subject.rfind("troupe cluster ", 0), 0u) << info.subject;
  EXPECT_NE(check_cluster_key(keys().ours).fingerprint, check_cluster_key(keys().theirs).fingerprint);
  const std::string error = failure_of([&] { create_cluster_key(path); });
  EXPECT_NE(error.find("already exists"), std::string::npos) << error;
  EXPECT_EQ(check_cluster_key(path).fingerprint, info.fingerprint);
}

TEST(ClusterKey, AKeyOthersCanReadIsRefusedWithTheFixToRun) {
  test::TempDir dir;
  const std::string path = dir.file("cluster.pem");
  create_cluster_key(path);
  chmod(path.c_str(), 0644);
  const std::string error = failure_of([&] { check_cluster_key(path); });
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("chmod 600"), std::string::npos) << error;
}

TEST(ClusterKey, TheTroupeCommandMakesAKey) {
  test::TempDir dir;
  const auto r = test::run_command({test::bin_path("troupe"), "keys", "init", "--out", dir.file("k.pem")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("caf-node --cluster-key"), std::string::npos) << r.out;
  EXPECT_EQ(check_cluster_key(dir.file("k.pem")).subject.empty(), false);
}

// -- who may connect --------------------------------------------------------------------------------

TEST(SecureNode, ServesAClientHoldingTheSameKey) {
  auto node = keyed_node("keyed");
  KeyedSystem client(keys().ours);
  const ConnectedNode n = connect_node(client.get(), parse_endpoint(node->endpoint()), 5s);
  EXPECT_EQ(n.info.stages, 0);
  EXPECT_GT(n.info.memory_limit, 0u) << "--memory-limit defaults to the available memory less a margin";
}

TEST(SecureNode, AConnectionLeftIdleStillCarriesRequests) {
  auto node = keyed_node("keyed");
  KeyedSystem client(keys().ours);
  connect_node(client.get(), parse_endpoint(node->endpoint()), 5s);
  std::this_thread::sleep_for(5s);  // heartbeats only, over TLS
  EXPECT_EQ(connect_node(client.get(), parse_endpoint(node->endpoint()), 5s).info.stages, 0);
}

TEST(SecureNode, RefusesAClientWithoutAKeyAndTheClientSaysWhy) {
  auto node = keyed_node("keyed");
  const std::string error =
    failure_of([&] { connect_node(test::actor_system(), parse_endpoint(node->endpoint()), 2s); });
  EXPECT_NE(error.find(node->endpoint()), std::string::npos) << error;
  EXPECT_NE(error.find("--cluster-key"), std::string::npos) << error;
  // And the node is none the worse for it.
  KeyedSystem client(keys().ours);
  EXPECT_NO_THROW(connect_node(client.get(), parse_endpoint(node->endpoint()), 5s));
}

TEST(SecureNode, RefusesAClientWithAnotherKeyAndTheClientSaysWhy) {
  auto node = keyed_node("keyed");
  KeyedSystem stranger(keys().theirs);
  const std::string error = failure_of([&] { connect_node(stranger.get(), parse_endpoint(node->endpoint()), 5s); });
  EXPECT_NE(error.find(node->endpoint()), std::string::npos) << error;
  EXPECT_NE(error.find("different cluster key"), std::string::npos) << error;
}

TEST(SecureNode, AKeyedClientSaysWhenTheNodeHasNoTls) {
  NodeProcess plain(test::models_dir(), test::kPipelineThreads, "plain");
  plain.wait_ready();
  KeyedSystem client(keys().ours);
  const std::string error = failure_of([&] { connect_node(client.get(), parse_endpoint(plain.endpoint()), 3s); });
  EXPECT_NE(error.find("does not speak TLS"), std::string::npos) << error;
}

TEST(SecureNode, WithoutAKeyANodeListensOnlyOnLoopbackUnlessToldInsecure) {
  const auto r = test::run_command({test::bin_path("caf-node"), "--port", "0", "--listen", "0.0.0.0", "--models",
                                    test::models_dir()},
                                   30);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("without a cluster key"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("troupe keys init"), std::string::npos) << r.err;
}

// -- hostile bytes ----------------------------------------------------------------------------------

TEST(SecureNode, HostileBytesLeaveItAliveServingAndAtItsOldMemory) {
  auto node = keyed_node("keyed");
  // A member stays connected through the attack; its connection must keep working.
  KeyedSystem client(keys().ours);
  connect_node(client.get(), parse_endpoint(node->endpoint()), 5s);  // TLS and CAF allocations made once
  const size_t rss_before = rss_of(node->pid());

  std::string r1(32, '\0');
  r1[0] = '\x01';  // a BASP client handshake with an empty payload: crashed CAF 0.17 when parsed
  std::string huge_len(48, '\0');
  huge_len[0] = '\x01';
  for (int i = 4; i < 8; ++i) huge_len[i] = '\xff';  // BASP payload length 0xFFFFFFFF: a 4 GB allocation
  const std::string tls_huge_record = std::string("\x16\x03\x01\xff\xff", 5) + std::string(100, '\x01');
  std::mt19937 rng(15);
  std::string random(1 << 16, '\0');
  for (auto& c : random) c = static_cast<char>(rng());
  const std::vector<std::string> attacks = {r1, huge_len, tls_huge_record, random, random.substr(0, 7), "\x16\x03"};
  for (int round = 0; round < 3; ++round)
    for (const auto& bytes : attacks) send_raw(node->port(), bytes);

  ASSERT_EQ(kill(node->pid(), 0), 0) << "the node died:\n" << node->log();
  const size_t rss_after = rss_of(node->pid());
  std::printf("node RSS before %zu KiB, after %zu KiB\n", rss_before / 1024, rss_after / 1024);
  EXPECT_LT(rss_after, rss_before + (8u << 20)) << "RSS grew from " << rss_before << " to " << rss_after;
  // Still serving: the member asks again and runs a stage.
  const ConnectedNode n = connect_node(client.get(), parse_endpoint(node->endpoint()), 5s);
  EXPECT_EQ(n.info.stages, 0);
  dsl::PipelineDesc desc = dsl::tokenizer(kModel) >>
                           dsl::stage(kModel, dsl::layers(0, test::n_layer_of(kModel) - 1)).on(node->endpoint()) >>
                           dsl::sampler(dsl::greedy());
  Pipeline p = deploy(client.get(), desc, test::bounded_deploy_options());
  EXPECT_EQ(p.generate("Once upon a time", 4).tokens.size(), 4u);
}

// -- TLS changes nothing in the output -------------------------------------------------------------------

TEST(SecureNode, ThreeKeyedNodesGiveBitwiseTheSameOutputAsOneProcess) {
  std::vector<std::unique_ptr<NodeProcess>> nodes;
  for (int i = 0; i < 3; ++i)
    nodes.push_back(std::make_unique<NodeProcess>(test::models_dir(), test::kPipelineThreads,
                                                  "keyed" + std::to_string(i), 0,
                                                  std::vector<std::string>{"--cluster-key", keys().ours}));
  for (auto& n : nodes) n->wait_ready(60s);  // three start at once, each measuring its speed
  const int64_t n_layer = test::n_layer_of(kModel);
  dsl::PipelineDesc desc;
  desc.tokenizer = dsl::tokenizer(kModel);
  int64_t first = 0;
  for (int i = 0; i < 3; ++i) {
    const int64_t last = first + (n_layer - first) / (3 - i) - 1;
    desc.stages.push_back(dsl::stage(kModel, dsl::layers(first, last)).on(nodes[i]->endpoint()));
    first = last + 1;
  }
  desc.sampler = dsl::sampler(dsl::greedy());
  KeyedSystem client(keys().ours);
  Pipeline p = deploy(client.get(), desc, test::bounded_deploy_options());
  const std::vector<int32_t> prompt = p.encode("Once upon a time");
  const SamplingOptions greedy;
  const test::Output expected = test::single_process(kModel, prompt, 24, greedy);
  EXPECT_TRUE(test::bitwise_same(expected, test::through(p, prompt, 24, greedy)));
  // Stage to stage directly, over TLS (node-to-node peering): the activations did not pass
  // through this client.
  EXPECT_TRUE(test::directly_connected(nodes[0]->pid(), nodes[0]->port(), nodes[1]->pid(), nodes[1]->port()));
  EXPECT_TRUE(test::directly_connected(nodes[1]->pid(), nodes[1]->port(), nodes[2]->pid(), nodes[2]->port()));
  // The client listens nowhere: nodes answer over the connections it opened.
  EXPECT_EQ(listening_sockets(getpid()), 0) << "the client process listens on a TCP port";
  // Each node listens only on its published port.
  for (const auto& n : nodes) EXPECT_EQ(listening_sockets(n->pid()), 1) << n->log();
}

// -- what a node serves ----------------------------------------------------------------------------------

// The error deploying `model` on `node`, with every mention of `model` replaced by "<model>".
std::string spawn_error(const NodeProcess& node, const std::string& model) {
  dsl::PipelineDesc desc = dsl::stage(model, dsl::layers(0, 0)).on(node.endpoint()) >> dsl::sampler(dsl::greedy());
  std::string error = failure_of([&] { deploy(test::actor_system(), desc, test::bounded_deploy_options()); });
  for (size_t at; (at = error.find(model)) != std::string::npos;) error.replace(at, model.size(), "<model>");
  return error;
}

TEST(NodeModelsDir, PathsOutsideItAreRefusedExactlyAsAMissingFile) {
  test::TempDir root;
  const std::string models = root.file("models");
  fs::create_directories(models + "/sub");
  fs::copy_file(test::model_path(kModel), models + "/sub/inside.gguf");
  fs::copy_file(test::model_path(kModel), root.file("outside.gguf"));  // exists, next to the models dir
  fs::create_symlink(root.file("outside.gguf"), models + "/link-out.gguf");
  fs::create_symlink("/etc", models + "/etc-link");
  fs::create_symlink("sub/inside.gguf", models + "/link-in.gguf");
  NodeProcess node(models, test::kPipelineThreads, "jail");
  node.wait_ready();

  const std::string missing = spawn_error(node, "no-such.gguf");
  EXPECT_NE(missing.find("model not found"), std::string::npos) << missing;
  for (const std::string& outside : {std::string("/etc/passwd"), std::string("../outside.gguf"),
                                    std::string("sub/../../outside.gguf"), root.file("outside.gguf"),
                                    std::string("link-out.gguf"), std::string("etc-link/passwd")})
    EXPECT_EQ(spawn_error(node, outside), missing) << outside;
  // Inside, by name or by a link that stays inside: served.
  for (const std::string& inside : {"sub/inside.gguf", "link-in.gguf"}) {
    dsl::PipelineDesc desc = dsl::stage(inside, dsl::layers(0, test::n_layer_of(kModel) - 1)).on(node.endpoint()) >>
                             dsl::sampler(dsl::greedy());
    EXPECT_NO_THROW(deploy(test::actor_system(), desc, test::bounded_deploy_options()).shutdown()) << inside;
  }
}

// -- a node that dies while loading ------------------------------------------------------------------

TEST(NodeDeath, ANodeThatDiesWhileLoadingIsReportedAsDownNotAfterTheLoadTimeout) {
  test::TempDir models;
  // Opening a FIFO blocks until someone writes: the stage is "loading" for as long as we like.
  ASSERT_EQ(mkfifo(models.file("slow.gguf").c_str(), 0600), 0);
  NodeProcess node(models.path(), test::kPipelineThreads, "dying", 0, {"--memory-limit", "0"});
  node.wait_ready();
  DeployOptions options = test::bounded_deploy_options();
  options.spawn_timeout = 120s;
  dsl::PipelineDesc desc = dsl::stage("slow.gguf", dsl::layers(0, 0)).on(node.endpoint()) >> dsl::sampler(dsl::greedy());
  auto deploying = std::async(std::launch::async, [&] { return failure_of([&] { deploy(test::actor_system(), desc, options); }); });
  test::eventually([&] { return node.log().find("spawning stage") != std::string::npos; }, 30s);
  ASSERT_NE(node.log().find("spawning stage"), std::string::npos) << node.log();
  kill(node.pid(), SIGKILL);
  const std::string error = deploying.get();
  EXPECT_NE(error.find(node.endpoint()), std::string::npos) << error;
  EXPECT_NE(error.find("went down while loading"), std::string::npos) << error;
}

// -- caps -----------------------------------------------------------------------------------------

TEST(NodeCaps, MaxStagesRefusesOneStageTooMany) {
  NodeProcess node(test::models_dir(), test::kPipelineThreads, "capped", 0, {"--max-stages", "1"});
  node.wait_ready();
  dsl::PipelineDesc desc = dsl::tokenizer(kModel) >> dsl::stage(kModel, dsl::layers(0, 1)).on(node.endpoint()) >>
                           dsl::stage(kModel, dsl::layers(2, test::n_layer_of(kModel) - 1)).on(node.endpoint()) >>
                           dsl::sampler(dsl::greedy());
  const std::string error = failure_of([&] { deploy(test::actor_system(), desc, test::bounded_deploy_options()); });
  EXPECT_NE(error.find("--max-stages"), std::string::npos) << error;
  // One stage fits.
  dsl::PipelineDesc one = dsl::tokenizer(kModel) >>
                          dsl::stage(kModel, dsl::layers(0, test::n_layer_of(kModel) - 1)).on(node.endpoint()) >>
                          dsl::sampler(dsl::greedy());
  // The refused deploy's first stage is stopped by the client; the node counts it until its
  // exit arrives, which on a busy machine may come after the next request.
  std::string last_error;
  EXPECT_TRUE(test::eventually(
    [&] {
      last_error = failure_of([&] { deploy(test::actor_system(), one, test::bounded_deploy_options()).generate("Once", 2); });
      return last_error == "(no error)";
    },
    std::chrono::seconds(10)))
    << last_error;
}

TEST(NodeCaps, MaxSessionsRefusesASessionBeyondIt) {
  NodeProcess node(test::models_dir(), test::kPipelineThreads, "capped", 0, {"--max-sessions", "1"});
  node.wait_ready();
  dsl::PipelineDesc desc = dsl::tokenizer(kModel) >>
                           dsl::stage(kModel, dsl::layers(0, test::n_layer_of(kModel) - 1)).on(node.endpoint()) >>
                           dsl::sampler(dsl::greedy());
  Pipeline p = deploy(test::actor_system(), desc, test::bounded_deploy_options());
  // The first session holds its place on the stage until released.
  std::mutex m;
  std::condition_variable cv;
  bool first_running = false, release = false;
  GenerateOptions hold;
  hold.stop_at_eos = false;
  hold.keep_going = [&] {
    std::unique_lock<std::mutex> lock(m);
    first_running = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return false;
  };
  auto first = std::async(std::launch::async, [&] { return p.generate_tokens(p.encode("Once"), 8, SamplingOptions{}, hold); });
  {
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return first_running; }));
  }
  const std::string error = failure_of([&] { p.generate("Once upon", 2); });
  {
    std::lock_guard<std::mutex> lock(m);
    release = true;
  }
  cv.notify_all();
  first.get();
  EXPECT_NE(error.find("--max-sessions"), std::string::npos) << error;
  // Once the first session ended, another one fits.
  EXPECT_EQ(p.generate("Once upon", 2).tokens.size(), 2u);
}

}  // namespace
}  // namespace troupe
