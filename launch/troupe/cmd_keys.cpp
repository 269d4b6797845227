// `troupe keys init`: makes the cluster key, the one file that every caf-node and client of a
// cluster holds (see actors/protocol/cluster_key.h for what it is and why it is enough).
#include <iostream>

#include "actors/protocol/cluster_key.h"
#include "launch/troupe/cli_errors.h"
#include "launch/troupe/commands.h"

namespace troupe::cli {

void add_keys_command(CLI::App& app) {
  auto* keys = app.add_subcommand("keys", "manage the cluster key that authenticates and encrypts every link");
  keys->require_subcommand(1);
  auto out = std::make_shared<std::string>(default_cluster_key_path());
  auto* init = keys->add_subcommand("init", "make a new cluster key (mode 0600; copy it to every laptop of the cluster)");
  init->add_option("--out,-o", *out, "where to write it (never overwritten)")->capture_default_str();
  init->callback([out] {
    run_reporting_errors([&] {
      create_cluster_key(*out);
      const ClusterKeyInfo info = check_cluster_key(*out);
      std::cout << "wrote cluster key " << *out << " (" << info.subject << ")\n"
                << "SHA-256 " << info.fingerprint << "\n"
                << "Copy it to every laptop (mode 0600, e.g. scp -p) and start each node with\n"
                << "  caf-node --cluster-key " << *out << " ...\n"
                << "and the client with --cluster-key " << *out << " or TROUPE_CLUSTER_KEY=" << *out << "\n";
    });
  });
  auto* show = keys->add_subcommand("show", "check a cluster key file and print its fingerprint (the same on every member)");
  auto path = std::make_shared<std::string>();
  show->add_option("file", *path, "the key file (default: as the other commands find it)");
  show->callback([path] {
    run_reporting_errors([&] {
      const std::string file = find_cluster_key(*path);
      if (file.empty()) throw std::runtime_error("no cluster key: give a file, set $" + std::string(kClusterKeyEnv) +
                                                 " or run `troupe keys init`");
      const ClusterKeyInfo info = check_cluster_key(file);
      std::cout << file << ": " << info.subject << "\nSHA-256 " << info.fingerprint << "\n";
    });
  });
}

}  // namespace troupe::cli
