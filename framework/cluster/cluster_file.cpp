#include "framework/cluster/cluster_file.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "models/runtime/byte_size.h"
#include "framework/cluster/cluster.h"

namespace troupe {

namespace {

using nlohmann::json;

// nlohmann's messages start with "[json.exception.parse_error.101] "; the rest is for people.
std::string without_exception_id(const std::string& what) {
  const auto close = what.find("] ");
  return what.rfind("[json.exception.", 0) == 0 && close != std::string::npos ? what.substr(close + 2) : what;
}

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw ClusterFileError(path_ + ": " + (field.empty() ? "" : field + ": ") + problem);
  }

  void only_keys(const json& object, const std::string& where, const std::set<std::string>& known) const {
    for (const auto& item : object.items()) {
      if (known.count(item.key())) continue;
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(where.empty() ? item.key() : where + "." + item.key(), "unknown field (known: " + list + ")");
    }
  }

  std::optional<uint64_t> size(const json& object, const std::string& key, const std::string& field) const {
    if (!object.contains(key)) return std::nullopt;
    const json& v = object.at(key);
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (!v.is_string()) fail(field, "expected a size such as \"6G\", \"512M\" or a byte count");
    try {
      return parse_size(v.get<std::string>());
    } catch (const std::invalid_argument& e) {
      fail(field, e.what());
    }
  }

  std::optional<double> positive_number(const json& object, const std::string& key, const std::string& field) const {
    if (!object.contains(key)) return std::nullopt;
    const json& v = object.at(key);
    if (!v.is_number() || !(v.get<double>() > 0)) fail(field, "expected a positive number, got " + v.dump());
    return v.get<double>();
  }

 private:
  std::string path_;
};

}  // namespace

ClusterFile parse_cluster_file(const std::string& json_text, const std::string& path) {
  const Reader r(path);
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::parse_error& e) {
    r.fail("", "not valid JSON: " + without_exception_id(e.what()));
  }
  if (!doc.is_object()) r.fail("", "expected a JSON object with \"nodes\" (and optionally \"model\")");
  r.only_keys(doc, "", {"model", "nodes"});

  ClusterFile cluster;
  cluster.path = path;
  if (doc.contains("model")) {
    if (!doc["model"].is_string() || doc["model"].get<std::string>().empty())
      r.fail("model", "expected the model's path as a non-empty string");
    cluster.model = doc["model"].get<std::string>();
  }
  if (!doc.contains("nodes")) r.fail("nodes", "missing: list the nodes, e.g. [{\"address\": \"192.168.1.20:7000\"}]");
  if (!doc["nodes"].is_array() || doc["nodes"].empty()) r.fail("nodes", "expected a non-empty list of nodes");

  std::set<std::string> seen;
  for (size_t i = 0; i < doc["nodes"].size(); ++i) {
    const json& n = doc["nodes"][i];
    const std::string where = "nodes[" + std::to_string(i) + "]";
    if (!n.is_object()) r.fail(where, "expected an object such as {\"address\": \"192.168.1.20:7000\"}");
    r.only_keys(n, where, {"address", "memory", "memory_limit", "gflops", "mem_gbps"});
    ClusterNodeEntry e;
    if (!n.contains("address")) r.fail(where + ".address", "missing: the node's host:port");
    if (!n["address"].is_string()) r.fail(where + ".address", "expected \"host:port\"");
    e.address = n["address"].get<std::string>();
    try {
      parse_endpoint(e.address);
    } catch (const std::invalid_argument& err) {
      r.fail(where + ".address", err.what());
    }
    if (!seen.insert(e.address).second) r.fail(where + ".address", e.address + " is listed twice");
    e.memory = r.size(n, "memory", where + ".memory");
    e.memory_limit = r.size(n, "memory_limit", where + ".memory_limit");
    e.gflops = r.positive_number(n, "gflops", where + ".gflops");
    e.mem_gbps = r.positive_number(n, "mem_gbps", where + ".mem_gbps");
    cluster.nodes.push_back(std::move(e));
  }
  return cluster;
}

ClusterFile read_cluster_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ClusterFileError(path + ": cannot read the cluster file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_cluster_file(text.str(), path);
}

std::vector<NodeCapacity> capacities_from_file(const ClusterFile& cluster) {
  std::vector<NodeCapacity> out;
  std::string missing;
  for (size_t i = 0; i < cluster.nodes.size(); ++i) {
    const ClusterNodeEntry& e = cluster.nodes[i];
    NodeCapacity c;
    c.name = e.address;
    std::string lacks;
    if (e.memory && e.memory_limit)
      c.memory_bytes = std::min(*e.memory, *e.memory_limit);
    else if (e.memory || e.memory_limit)
      c.memory_bytes = e.memory ? *e.memory : *e.memory_limit;
    else
      lacks = "memory (or memory_limit)";
    c.gflops = e.gflops.value_or(0);
    c.mem_gbps = e.mem_gbps.value_or(0);
    if (!e.gflops && !e.mem_gbps) lacks += std::string(lacks.empty() ? "" : " and ") + "gflops (or mem_gbps)";
    if (!lacks.empty()) missing += "\n  nodes[" + std::to_string(i) + "] (" + e.address + "): no " + lacks;
    out.push_back(c);
  }
  if (!missing.empty())
    throw ClusterFileError(cluster.path + ": to plan without asking the nodes, give each node its figures:" + missing);
  return out;
}

}  // namespace troupe
