// The cluster file (nodes, their limits, the model) and the sizes people write in it: what
// parses, and errors that name the file and the field when something is wrong.
#include <gtest/gtest.h>

#include <fstream>

#include "models/runtime/byte_size.h"
#include "framework/cluster/cluster_file.h"
#include "tests/test_support.h"

namespace troupe {
namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

// The message of the ClusterFileError that parsing `json` raises ("" if none).
std::string error_of(const std::string& json) {
  try {
    parse_cluster_file(json, "lab.json");
  } catch (const ClusterFileError& e) {
    return e.what();
  }
  return "";
}

TEST(ByteSize, BinaryUnitsAndPlainByteCounts) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("512M"), 512 * MiB);
  EXPECT_EQ(parse_size("6G"), 6 * GiB);
  EXPECT_EQ(parse_size("6g"), 6 * GiB);
  EXPECT_EQ(parse_size("6GB"), 6 * GiB);
  EXPECT_EQ(parse_size("6GiB"), 6 * GiB);
  EXPECT_EQ(parse_size("8 GB"), 8 * GiB);
  EXPECT_EQ(parse_size("1.5G"), 1536 * MiB);
  EXPECT_EQ(parse_size("64K"), 65536u);
  EXPECT_EQ(parse_size("1T"), 1024 * GiB);
  EXPECT_EQ(parse_size("100B"), 100u);
}

TEST(ByteSize, AnythingElseIsRejectedQuotingTheText) {
  for (const char* bad : {"", "G", "6X", "-1", "6 G B", "1.2.3", "6GG", "0x10", "1e9"}) {
    try {
      parse_size(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("'" + std::string(bad) + "' is not a size"), std::string::npos) << e.what();
    }
  }
}

TEST(ByteSize, PrintsThreeSignificantFiguresInBinaryUnits) {
  EXPECT_EQ(format_size(100), "100 B");
  EXPECT_EQ(format_size(300 * MiB), "300 MiB");
  EXPECT_EQ(format_size(1536 * MiB), "1.50 GiB");
  EXPECT_EQ(format_size(12 * GiB + 512 * MiB), "12.5 GiB");
}

TEST(ClusterFile, ReadsModelNodesAndTheirFigures) {
  test::TempDir dir;
  const std::string path = dir.file("cluster.json");
  std::ofstream(path) << R"({
    "model": "/models/llama-2-7b.Q4_0.gguf",
    "nodes": [
      {"address": "192.168.1.20:7000", "memory": "16G", "gflops": 80},
      {"address": "192.168.1.21:7000", "memory": "8G", "memory_limit": "3G", "gflops": 40.5, "mem_gbps": 12},
      {"address": "[::1]:7002", "memory_limit": 1073741824}
    ]
  })";
  const ClusterFile c = read_cluster_file(path);
  EXPECT_EQ(c.path, path);
  EXPECT_EQ(c.model, "/models/llama-2-7b.Q4_0.gguf");
  ASSERT_EQ(c.nodes.size(), 3u);
  EXPECT_EQ(c.nodes[0].address, "192.168.1.20:7000");
  EXPECT_EQ(c.nodes[0].memory, 16 * GiB);
  EXPECT_FALSE(c.nodes[0].memory_limit.has_value());
  EXPECT_EQ(c.nodes[0].gflops, 80.0);
  EXPECT_FALSE(c.nodes[0].mem_gbps.has_value());
  EXPECT_EQ(c.nodes[1].memory_limit, 3 * GiB);
  EXPECT_EQ(c.nodes[1].gflops, 40.5);
  EXPECT_EQ(c.nodes[1].mem_gbps, 12.0);
  EXPECT_EQ(c.nodes[2].address, "[::1]:7002");
  EXPECT_EQ(c.nodes[2].memory_limit, 1 * GiB);
  EXPECT_FALSE(c.nodes[2].gflops.has_value());
}

TEST(ClusterFile, ModelIsOptional) {
  const ClusterFile c = parse_cluster_file(R"({"nodes": [{"address": "a:1"}]})", "lab.json");
  EXPECT_EQ(c.model, "");
  ASSERT_EQ(c.nodes.size(), 1u);
}

TEST(ClusterFile, MissingFileIsNamed) {
  try {
    read_cluster_file("/nonexistent/cluster.json");
    FAIL() << "expected a ClusterFileError";
  } catch (const ClusterFileError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/cluster.json: cannot read the cluster file");
  }
}

TEST(ClusterFile, BadJsonNamesTheFileAndWhere) {
  const std::string msg = error_of("{\"nodes\": [\n  {\"address\": \"a:1\",}\n]}");
  EXPECT_EQ(msg.rfind("lab.json: not valid JSON: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("json.exception"), std::string::npos) << msg;
}

TEST(ClusterFile, BadSizeNamesTheFileAndField) {
  const std::string msg = error_of(R"({"nodes": [{"address": "a:1"}, {"address": "b:2", "memory_limit": "6X"}]})");
  EXPECT_EQ(msg, "lab.json: nodes[1].memory_limit: '6X' is not a size (examples: 4096, 512M, 6G, 1.5GiB)");
  EXPECT_EQ(error_of(R"({"nodes": [{"address": "a:1", "memory": true}]})"),
            "lab.json: nodes[0].memory: expected a size such as \"6G\", \"512M\" or a byte count");
}

TEST(ClusterFile, MissingNodesIsNamed) {
  EXPECT_EQ(error_of(R"({"model": "m.gguf"})"),
            "lab.json: nodes: missing: list the nodes, e.g. [{\"address\": \"192.168.1.20:7000\"}]");
  EXPECT_EQ(error_of(R"({"nodes": []})"), "lab.json: nodes: expected a non-empty list of nodes");
  EXPECT_EQ(error_of(R"([1, 2])"), "lab.json: expected a JSON object with \"nodes\" (and optionally \"model\")");
}

TEST(ClusterFile, MissingAddressNamesTheNode) {
  EXPECT_EQ(error_of(R"({"nodes": [{"address": "a:1"}, {"memory": "8G"}]})"),
            "lab.json: nodes[1].address: missing: the node's host:port");
}

TEST(ClusterFile, BadAddressIsNamed) {
  EXPECT_EQ(error_of(R"({"nodes": [{"address": "laptop"}]})"),
            "lab.json: nodes[0].address: bad node address 'laptop' (expected host:port)");
  EXPECT_EQ(error_of(R"({"nodes": [{"address": "a:1"}, {"address": "a:1"}]})"),
            "lab.json: nodes[1].address: a:1 is listed twice");
}

TEST(ClusterFile, MisspeltFieldIsAnErrorNotADefault) {
  EXPECT_EQ(error_of(R"({"nodes": [{"address": "a:1", "memory_limt": "6G"}]})"),
            "lab.json: nodes[0].memory_limt: unknown field (known: address, gflops, mem_gbps, memory, memory_limit)");
  EXPECT_EQ(error_of(R"({"modle": "x", "nodes": [{"address": "a:1"}]})"),
            "lab.json: modle: unknown field (known: model, nodes)");
}

TEST(ClusterFile, SpeedMustBeAPositiveNumber) {
  EXPECT_EQ(error_of(R"({"nodes": [{"address": "a:1", "gflops": "fast"}]})"),
            "lab.json: nodes[0].gflops: expected a positive number, got \"fast\"");
  EXPECT_EQ(error_of(R"({"nodes": [{"address": "a:1", "mem_gbps": 0}]})"),
            "lab.json: nodes[0].mem_gbps: expected a positive number, got 0");
}

TEST(ClusterFile, CapacityIsTheLowerOfMemoryAndLimit) {
  const ClusterFile c = parse_cluster_file(R"({"nodes": [
      {"address": "a:1", "memory": "8G", "memory_limit": "6G", "gflops": 50},
      {"address": "b:2", "memory": "4G", "memory_limit": "6G", "gflops": 30, "mem_gbps": 10},
      {"address": "c:3", "memory_limit": "2G", "mem_gbps": 20}]})",
                                           "lab.json");
  const auto caps = capacities_from_file(c);
  ASSERT_EQ(caps.size(), 3u);
  EXPECT_EQ(caps[0].name, "a:1");
  EXPECT_EQ(caps[0].memory_bytes, 6 * GiB);
  EXPECT_EQ(caps[0].gflops, 50.0);
  EXPECT_EQ(caps[1].memory_bytes, 4 * GiB);
  EXPECT_EQ(caps[1].mem_gbps, 10.0);
  EXPECT_EQ(caps[2].memory_bytes, 2 * GiB);
  EXPECT_EQ(caps[2].gflops, 0.0);
}

TEST(ClusterFile, CapacitiesWithoutFiguresNameEachNodeAndWhatIsMissing) {
  const ClusterFile c = parse_cluster_file(
    R"({"nodes": [{"address": "a:1", "memory": "8G", "gflops": 50}, {"address": "b:2"}, {"address": "c:3", "memory": "4G"}]})",
    "lab.json");
  try {
    capacities_from_file(c);
    FAIL() << "expected a ClusterFileError";
  } catch (const ClusterFileError& e) {
    EXPECT_STREQ(e.what(),
                 "lab.json: to plan without asking the nodes, give each node its figures:"
                 "\n  nodes[1] (b:2): no memory (or memory_limit) and gflops (or mem_gbps)"
                 "\n  nodes[2] (c:3): no gflops (or mem_gbps)");
  }
}

}  // namespace
}  // namespace troupe
