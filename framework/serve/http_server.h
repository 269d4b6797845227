#pragma once
// `troupe serve`: an OpenAI-compatible HTTP API over a TextGenerator.
//   POST /v1/completions, POST /v1/chat/completions (JSON or server-sent events)
//   GET  /v1/models, /v1/status (JSON: stages, tokens/s, hop latency, recoveries),
//        /health, /metrics (Prometheus text), / (the chat and cluster page, framework/serve/web)
// CORS: origins listed in cors_origins may call the API from a browser ("*": any).
// Admission is bounded: at most `max_in_flight` generations run at once (they share the
// pipeline, which keeps its stages busy with several sessions) and at most `max_queue`
// wait; past that a request gets 429 with a JSON error, decided before the prompt is
// tokenized. A client that disconnects
// cancels its generation, which frees its KV cache on every stage.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "framework/serve/text_generator.h"

namespace troupe {

struct ServeOptions {
  std::string listen = "127.0.0.1";
  int port = 8080;            // 0: pick a free port
  int max_in_flight = 4;
  int max_queue = 16;
  std::string model_name = "troupe";
  // Hardening (see connection_guard.h). An empty key leaves the API open, which `serve`
  // allows only on loopback; with a key every route but /health wants "Authorization: Bearer KEY".
  std::string api_key;
  size_t max_body_bytes = 4 << 20;  // larger bodies get 413 before they are read
  int max_connections = 64;
  int header_timeout_ms = 10000;
  int body_timeout_ms = 30000;
  std::vector<std::string> aliases;       // other names a request may use for the model
  std::vector<std::string> cors_origins;  // empty: no CORS headers
  bool web_page = true;                   // GET / serves the chat and cluster page
};

class HttpServer {
 public:
  HttpServer(TextGenerator& generator, ServeOptions options);
  ~HttpServer();

  // Binds and serves on a background thread; throws std::runtime_error if it cannot bind.
  void start();
  void stop();
  int port() const;  // the bound port (after start)

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
