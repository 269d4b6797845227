#include "framework/serve/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <sstream>

#include "framework/serve/connection_guard.h"
#include "framework/serve/openai_api.h"
#include "framework/serve/stop_sequences.h"
#include "framework/serve/web_page.h"
#include "models/machine/process_memory.h"

namespace troupe {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// Compares without an early exit, so response time does not reveal how much of a key matched.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.size() ? b.size() : 1)]);
  return diff == 0 && !b.empty();
}

}  // namespace

struct HttpServer::Impl {
  TextGenerator& gen;
  ServeOptions opt;
  httplib::Server server;
  std::thread thread;
  int bound_port = 0;

  // Admission: generations running and waiting.
  std::mutex admission_mutex;
  std::condition_variable admission_cv;
  int running = 0, waiting = 0;

  // Metrics.
  std::atomic<uint64_t> requests{0}, rejected{0}, failed{0}, cancelled{0}, prompt_tokens{0}, completion_tokens{0};
  std::mutex rate_mutex;
  std::deque<std::pair<Clock::time_point, int64_t>> recent_tokens;  // for tokens/s over the last 10 s
  std::atomic<uint64_t> id_counter{0};
  std::mt19937_64 seed_rng{std::random_device{}()};
  std::mutex seed_mutex;

  const Clock::time_point started = Clock::now();
  const int64_t started_unix = unix_time();

  Impl(TextGenerator& g, ServeOptions o) : gen(g), opt(std::move(o)) {}

  // RAII hold on one generation slot.
  struct Slot {
    Impl* impl;
    explicit Slot(Impl* i) : impl(i) {}
    ~Slot() {
      std::lock_guard<std::mutex> lock(impl->admission_mutex);
      --impl->running;
      impl->admission_cv.notify_one();
    }
  };

  std::shared_ptr<Slot> acquire_slot() {
    std::unique_lock<std::mutex> lock(admission_mutex);
    if (running >= opt.max_in_flight) {
      if (waiting >= opt.max_queue) {
        ++rejected;
        throw ApiError(429, "rate_limit_error",
                       "server busy: " + std::to_string(running) + " generations running and " + std::to_string(waiting) +
                           " waiting (limit " + std::to_string(opt.max_queue) + "); retry later");
      }
      ++waiting;
      admission_cv.wait(lock, [this] { return running < opt.max_in_flight; });
      --waiting;
    }
    ++running;
    return std::make_shared<Slot>(this);
  }

  void count_tokens(int64_t n) {
    completion_tokens += static_cast<uint64_t>(n);
    std::lock_guard<std::mutex> lock(rate_mutex);
    recent_tokens.emplace_back(Clock::now(), n);
  }

  double tokens_per_second() {
    std::lock_guard<std::mutex> lock(rate_mutex);
    const auto cutoff = Clock::now() - std::chrono::seconds(10);
    while (!recent_tokens.empty() && recent_tokens.front().first < cutoff) recent_tokens.pop_front();
    int64_t n = 0;
    for (const auto& [t, c] : recent_tokens) n += c;
    return static_cast<double>(n) / 10.0;
  }

  uint64_t default_seed() {
    std::lock_guard<std::mutex> lock(seed_mutex);
    return seed_rng();
  }

  // A parsed request, its prompts' tokens and the limits that follow from the context.
  struct Prepared {
    CompletionRequest request;
    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::string> stops;
    std::string id;
    int64_t prompt_tokens = 0;
  };

  bool serves(const std::string& model) const {
    if (model.empty() || model == opt.model_name) return true;
    return std::find(opt.aliases.begin(), opt.aliases.end(), model) != opt.aliases.end();
  }

  // Parsing the JSON is cheap and bounded by max_body_bytes; tokenizing is not, so it waits
  // until the request holds a generation slot (tokenize()).
  Prepared parse(const std::string& body, bool chat) {
    Prepared p;
    p.request = parse_completion_request(body, chat, default_seed());
    if (!serves(p.request.model))
      throw ApiError(404, "invalid_request_error",
                     "model '" + p.request.model + "' is not served here; this server serves '" + opt.model_name + "'" +
                         (opt.aliases.empty() ? std::string() : " (also called " + join(opt.aliases) + ")"));
    p.request.model = opt.model_name;
    if (p.request.top_logprobs >= 0 && !gen.supports_logprobs())
      throw ApiError(400, "invalid_request_error",
                     "logprobs are not available from a cluster (its last stage samples and keeps the logits); "
                     "serve the model in one process (troupe serve without --nodes) for logprobs");
    return p;
  }

  void tokenize(Prepared& p, bool chat) {
    if (chat) {
      p.prompts.push_back(gen.encode(render_chat(gen.chat_template(), p.request.messages)));
    } else {
      const int64_t n_vocab = gen.n_vocab();
      for (size_t i = 0; i < p.request.prompts.size(); ++i) {
        const auto& in = p.request.prompts[i];
        if (!in.is_tokens) {
          p.prompts.push_back(gen.encode(in.text));
          continue;
        }
        for (int32_t t : in.tokens)
          if (t < 0 || t >= n_vocab)
            throw ApiError(400, "invalid_request_error",
                           "prompt token id " + std::to_string(t) + " is outside the vocabulary (0 to " +
                               std::to_string(n_vocab - 1) + ")");
        p.prompts.push_back(in.tokens);
      }
    }
    const int64_t context = gen.max_positions();
    for (const auto& prompt : p.prompts) {
      if (prompt.empty()) throw ApiError(400, "invalid_request_error", "the prompt encodes to no tokens");
      if (static_cast<int64_t>(prompt.size()) >= context)
        throw ApiError(400, "invalid_request_error",
                       "prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " +
                           std::to_string(context) + " tokens");
      p.prompt_tokens += static_cast<int64_t>(prompt.size());
    }
    p.stops = p.request.stop;
    if (chat) p.stops.push_back(end_of_turn(gen.chat_template().format));
    p.id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(unix_time()) + "-" + std::to_string(++id_counter);
    prompt_tokens += static_cast<uint64_t>(p.prompt_tokens);
  }

  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "'" : ", '") + x + "'";
    return s;
  }

  LogprobEntry entry_of(const TokenLogprob& lp, const std::string& bytes) const {
    LogprobEntry e{bytes, lp.logprob, {}};
    for (const auto& [id, v] : lp.top) e.top.emplace_back(gen.token_bytes(id), v);
    return e;
  }

  // Text (and logprobs) as they become ready; return false to stop (the client went away).
  using Emit = std::function<bool(const std::string& text, std::vector<LogprobEntry>&& entries)>;

  // Runs prompt `i`: the echoed prompt, then the completion through the stop strings.
  // Returns the finish reason; adds the tokens generated to `completion_tokens`.
  std::string run_prompt(const Prepared& p, size_t i, const Emit& emit, int64_t& completion_tokens, bool& gone) {
    const auto& r = p.request;
    const auto& prompt = p.prompts[i];
    if (r.echo) {
      std::string text;
      std::vector<LogprobEntry> entries;
      std::vector<TokenLogprob> scored;
      if (r.top_logprobs >= 0) scored = gen.score(prompt, r.top_logprobs);
      for (size_t k = 0; k < prompt.size(); ++k) {
        const std::string bytes = gen.token_bytes(prompt[k]);
        text += bytes;
        if (r.top_logprobs < 0) continue;
        if (k == 0) entries.push_back({bytes, std::nullopt, {}});
        else entries.push_back(entry_of(scored[k], bytes));
      }
      if (!emit(text, std::move(entries))) gone = true;
    }
    const int64_t max_tokens =
        std::min<int64_t>(r.max_tokens, gen.max_positions() - static_cast<int64_t>(prompt.size()));
    if (max_tokens <= 0 || gone) return "length";
    StopSequences stops(p.stops);
    std::string pending;  // released text not yet sent (an incomplete UTF-8 character)
    std::vector<LogprobEntry> pending_entries;
    const auto outcome =
        gen.generate_scored(prompt, max_tokens, r.sampling, r.top_logprobs, [&](const ScoredPiece& piece) {
          if (piece.logprob) pending_entries.push_back(entry_of(*piece.logprob, piece.bytes));
          pending += stops.push(piece.bytes);
          const size_t ready = utf8_complete_prefix(pending);
          if (ready > 0) {
            if (!emit(pending.substr(0, ready), std::move(pending_entries))) gone = true;
            pending_entries.clear();
            pending.erase(0, ready);
          }
          return !stops.stopped() && !gone;
        });
    completion_tokens += outcome.completion_tokens;
    count_tokens(outcome.completion_tokens);
    pending += stops.flush();
    if ((!pending.empty() || !pending_entries.empty()) && !gone && !emit(pending, std::move(pending_entries)))
      gone = true;
    return (outcome.hit_eos || stops.stopped()) ? "stop" : "length";
  }

  json logprobs_json(const CompletionRequest& r, const std::vector<LogprobEntry>& entries, int64_t offset) const {
    if (r.top_logprobs < 0) return nullptr;
    return r.chat ? chat_logprobs(entries) : completion_logprobs(entries, offset, r.top_logprobs);
  }

  void complete(const httplib::Request& req, httplib::Response& res, bool chat) {
    ++requests;
    try {
      auto p = std::make_shared<Prepared>(parse(req.body, chat));
      auto slot = acquire_slot();
      tokenize(*p, chat);
      if (p->request.stream) {
        stream(res, p, slot);
        return;
      }
      std::vector<ChoiceResult> choices;
      int64_t completion_tokens = 0;
      for (size_t i = 0; i < p->prompts.size(); ++i) {
        std::string text;
        std::vector<LogprobEntry> entries;
        bool gone = false;
        const std::string finish = run_prompt(
            *p, i,
            [&](const std::string& t, std::vector<LogprobEntry>&& e) {
              text += t;
              for (auto& x : e) entries.push_back(std::move(x));
              return true;
            },
            completion_tokens, gone);
        choices.push_back({text, finish, logprobs_json(p->request, entries, 0)});
      }
      send_json(res, 200,
                completion_response(p->request, p->id, unix_time(), choices, p->prompt_tokens, completion_tokens));
    } catch (const ApiError& e) {
      if (e.status() >= 500) ++failed;
      send_json(res, e.status(), e.body());
    } catch (const std::exception& e) {
      ++failed;
      spdlog::error("request failed: {}", e.what());
      send_json(res, 503, ApiError(503, "server_error", e.what()).body());
    }
  }

  void stream(httplib::Response& res, std::shared_ptr<Prepared> p, std::shared_ptr<Slot> slot) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [this, p, slot](size_t, httplib::DataSink& sink) {
      const auto& r = p->request;
      const int64_t created = unix_time();
      bool client_gone = false;
      auto send = [&](const std::string& event) {
        if (!client_gone && !sink.write(event.data(), event.size())) client_gone = true;
        return !client_gone;
      };
      int64_t completion_tokens = 0;
      try {
        for (size_t i = 0; i < p->prompts.size() && !client_gone; ++i) {
          if (r.chat) {
            json first = completion_chunk(r, p->id, created, "", std::nullopt, i);
            first["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
            send(sse_event(first));
          }
          int64_t offset = 0;
          const std::string finish = run_prompt(
              *p, i,
              [&](const std::string& text, std::vector<LogprobEntry>&& entries) {
                const json lp = logprobs_json(r, entries, offset);
                for (const auto& e : entries) offset += static_cast<int64_t>(e.token.size());
                return send(sse_event(completion_chunk(r, p->id, created, text, std::nullopt, i, lp)));
              },
              completion_tokens, client_gone);
          if (client_gone) break;
          json last = completion_chunk(r, p->id, created, "", finish, i);
          if (i + 1 == p->prompts.size()) last["usage"] = usage_json(p->prompt_tokens, completion_tokens);
          send(sse_event(last));
        }
      } catch (const std::exception& e) {
        ++failed;
        spdlog::error("streaming request {} failed: {}", p->id, e.what());
        send(sse_event(ApiError(503, "server_error", e.what()).body()));
        sink.done();
        return true;
      }
      if (client_gone) {
        ++cancelled;
        spdlog::info("{}: client went away after {} tokens; session cancelled", p->id, completion_tokens);
        return false;
      }
      if (r.include_usage) {
        json usage = completion_chunk(r, p->id, created, "", std::nullopt);
        usage["choices"] = json::array();
        usage["usage"] = usage_json(p->prompt_tokens, completion_tokens);
        send(sse_event(usage));
      }
      send("data: [DONE]\n\n");
      sink.done();
      return true;
    });
  }

  json status_json() {
    const ClusterStatus c = gen.status();
    json stages = json::array();
    for (const auto& s : c.stages)
      stages.push_back({{"node", s.node},
                        {"layers", s.layers},
                        {"sessions", s.sessions},
                        {"cache_bytes", s.cache_bytes},
                        {"steps", s.steps},
                        {"compute_ms", s.compute_ms},
                        {"tokens_per_second", s.tokens_per_s},
                        {"hop_rtt_ms", s.hop_rtt_ms < 0 ? json(nullptr) : json(s.hop_rtt_ms)}});
    int in_flight, queued;
    {
      std::lock_guard<std::mutex> lock(admission_mutex);
      in_flight = running;
      queued = waiting;
    }
    return {{"model", opt.model_name},
            {"context", gen.max_positions()},
            {"uptime_seconds", std::chrono::duration<double>(Clock::now() - started).count()},
            {"requests", requests.load()},
            {"prompt_tokens", prompt_tokens.load()},
            {"completion_tokens", completion_tokens.load()},
            {"tokens_per_second", tokens_per_second()},
            {"sessions_in_flight", in_flight},
            {"sessions_queued", queued},
            {"process_rss_bytes", process_memory().rss},
            {"stages", stages},
            {"recoveries", c.recoveries},
            {"standby_nodes", c.standby}};
  }

  // CORS: a request from a listed origin (or any, with "*") may read the response.
  void allow_origin(const httplib::Request& q, httplib::Response& s) const {
    if (opt.cors_origins.empty() || !q.has_header("Origin")) return;
    const std::string origin = q.get_header_value("Origin");
    const bool any = std::find(opt.cors_origins.begin(), opt.cors_origins.end(), "*") != opt.cors_origins.end();
    if (!any && std::find(opt.cors_origins.begin(), opt.cors_origins.end(), origin) == opt.cors_origins.end()) return;
    s.set_header("Access-Control-Allow-Origin", any ? "*" : origin);
    if (!any) s.set_header("Vary", "Origin");
  }

  std::string metrics() {
    std::ostringstream m;
    auto gauge = [&](const char* name, const char* help, double v, const char* type = "gauge") {
      m << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n" << name << " " << v << "\n";
    };
    int in_flight, queued;
    {
      std::lock_guard<std::mutex> lock(admission_mutex);
      in_flight = running;
      queued = waiting;
    }
    gauge("troupe_requests_total", "completion requests received", static_cast<double>(requests), "counter");
    gauge("troupe_requests_rejected_total", "requests refused because the queue was full", static_cast<double>(rejected), "counter");
    gauge("troupe_requests_failed_total", "requests that failed in the pipeline", static_cast<double>(failed), "counter");
    gauge("troupe_requests_cancelled_total", "streams whose client disconnected", static_cast<double>(cancelled), "counter");
    gauge("troupe_prompt_tokens_total", "prompt tokens processed", static_cast<double>(prompt_tokens), "counter");
    gauge("troupe_completion_tokens_total", "tokens generated", static_cast<double>(completion_tokens), "counter");
    gauge("troupe_tokens_per_second", "tokens generated per second over the last 10 s", tokens_per_second());
    gauge("troupe_sessions_in_flight", "generations running through the pipeline", in_flight);
    gauge("troupe_sessions_queued", "generations waiting for a slot", queued);
    {
      std::lock_guard<std::mutex> lock(guard_mutex);
      if (guard) {
        gauge("troupe_http_connections", "HTTP connections open", guard->open_connections());
        gauge("troupe_http_connections_refused_total", "connections refused past --max-connections",
              static_cast<double>(guard->refused()), "counter");
        gauge("troupe_http_connections_timed_out_total", "connections closed for slow headers or body",
              static_cast<double>(guard->timed_out()), "counter");
      }
    }
    m << gen.stage_metrics();
    return m.str();
  }

  ConnectionGuard* guard = nullptr;  // set while listening (httplib owns the task queue)
  std::mutex guard_mutex;

  // Runs before the body is read: an oversized body is refused without reading it. (The
  // connection stays open, so the client reads the 413 before the socket is closed; httplib
  // drops the connection when the unread body does not parse as a request.)
  httplib::Server::HandlerResponse admit(const httplib::Request& q, httplib::Response& s) {
    ConnectionGuard::headers_received();
    if (q.has_header("Transfer-Encoding")) {
      // httplib 0.11 reads a chunked body whole without applying the size limit.
      send_json(s, 411, ApiError(411, "invalid_request_error",
                                 "chunked request bodies are not accepted: send a Content-Length of at most " +
                                     std::to_string(opt.max_body_bytes) + " bytes")
                            .body());
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string length = q.get_header_value("Content-Length");
    const bool digits = !length.empty() && length.find_first_not_of("0123456789") == std::string::npos;
    if (!length.empty() && (!digits || length.size() > 18 || std::stoull(length) > opt.max_body_bytes)) {
      send_json(s, 413, too_large(length + " bytes"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  // With an API key, every route but /health, the page and CORS preflights wants
  // "Authorization: Bearer KEY"; a 401 in
  // OpenAI's shape otherwise.
  bool authorized(const httplib::Request& q, httplib::Response& s) const {
    if (opt.api_key.empty()) return true;
    const std::string auth = q.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) == 0 && same_secret(auth.substr(prefix.size()), opt.api_key)) return true;
    s.set_header("WWW-Authenticate", "Bearer");
    json body = ApiError(401, "invalid_request_error",
                         auth.empty() ? "missing API key: send the header 'Authorization: Bearer <key>'"
                                      : "incorrect API key provided")
                    .body();
    body["error"]["code"] = "invalid_api_key";
    body["error"]["param"] = nullptr;
    send_json(s, 401, body);
    return false;
  }

  json too_large(const std::string& size) const {
    return ApiError(413, "invalid_request_error",
                    "request body of " + size + " is too large: the limit is " + std::to_string(opt.max_body_bytes) +
                        " bytes (serve --max-body)")
        .body();
  }

  // Wraps a route: the connection guard learns the request is being handled, and the key is
  // checked unless the route is open (/health).
  template <typename F>
  httplib::Server::Handler route(F f, bool open = false) {
    return [this, f, open](const httplib::Request& q, httplib::Response& s) {
      ConnectionGuard::request_started();
      if (open || authorized(q, s)) f(q, s);
    };
  }

  void routes() {
    server.Post("/v1/completions", route([this](const httplib::Request& q, httplib::Response& s) { complete(q, s, false); }));
    server.Post("/v1/chat/completions", route([this](const httplib::Request& q, httplib::Response& s) { complete(q, s, true); }));
    server.Get("/v1/models", route([this](const httplib::Request&, httplib::Response& s) {
      json data = json::array();
      data.push_back({{"id", opt.model_name}, {"object", "model"}, {"created", started_unix}, {"owned_by", "troupe"}});
      for (const auto& a : opt.aliases)
        data.push_back({{"id", a}, {"object", "model"}, {"created", started_unix}, {"owned_by", "troupe"}});
      send_json(s, 200, {{"object", "list"}, {"data", data}});
    }));
    server.Get("/v1/models/(.+)", route([this](const httplib::Request& q, httplib::Response& s) {
      const std::string id = q.matches[1];
      if (!serves(id))
        return send_json(s, 404, ApiError(404, "invalid_request_error",
                                          "model '" + id + "' is not served here; this server serves '" +
                                              opt.model_name + "'").body());
      send_json(s, 200, {{"id", id}, {"object", "model"}, {"created", started_unix}, {"owned_by", "troupe"}});
    }));
    server.Get("/v1/status", route([this](const httplib::Request&, httplib::Response& s) { send_json(s, 200, status_json()); }));
    if (opt.web_page) {
      // The page itself holds no data (it asks for the API key when the server wants one).
      server.Get("/", route([](const httplib::Request&, httplib::Response& s) {
                   s.set_content(web_page_html(), "text/html; charset=utf-8");
                 },
                 /*open=*/true));
    }
    // A browser's CORS preflight carries no credentials: it is answered without the key.
    server.Options(".*", route(
                             [this](const httplib::Request& q, httplib::Response& s) {
                               s.status = 204;
                               if (opt.cors_origins.empty()) return;
                               s.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
                               s.set_header("Access-Control-Allow-Headers",
                                            q.has_header("Access-Control-Request-Headers")
                                                ? q.get_header_value("Access-Control-Request-Headers")
                                                : std::string("Content-Type, Authorization"));
                               s.set_header("Access-Control-Max-Age", "600");
                             },
                             /*open=*/true));
    server.set_post_routing_handler([this](const httplib::Request& q, httplib::Response& s) { allow_origin(q, s); });
    // No SO_REUSEPORT (httplib's default sets it): a second server on a taken port must fail.
    server.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const char*>(&yes), sizeof(yes));
    });
    server.Get("/health", route(
                              [this](const httplib::Request&, httplib::Response& s) {
                                const ServiceHealth h = gen.health();
                                json body{{"status", h.status}};
                                if (!h.detail.empty()) body["detail"] = h.detail;
                                send_json(s, h.status == "unavailable" ? 503 : 200, body);
                              },
                              /*open=*/true));
    server.Get("/metrics", route([this](const httplib::Request&, httplib::Response& s) {
      s.set_content(metrics(), "text/plain; version=0.0.4");
    }));
    server.set_pre_routing_handler([this](const httplib::Request& q, httplib::Response& s) { return admit(q, s); });
    server.set_logger([](const httplib::Request&, const httplib::Response&) { ConnectionGuard::response_sent(); });
    server.set_error_handler([this](const httplib::Request& q, httplib::Response& s) {
      if (!s.body.empty()) return;
      if (s.status == 413)
        send_json(s, 413, too_large("more than " + std::to_string(opt.max_body_bytes) + " bytes"));
      else
        send_json(s, s.status, ApiError(s.status, "invalid_request_error", "no route for " + q.method + " " + q.path).body());
    });
    server.new_task_queue = [this] {
      ConnectionLimits limits;
      limits.max_connections = opt.max_connections;
      limits.header_timeout = std::chrono::milliseconds(opt.header_timeout_ms);
      limits.body_timeout = std::chrono::milliseconds(opt.body_timeout_ms);
      auto* g = new ConnectionGuard(limits, bound_port);
      std::lock_guard<std::mutex> lock(guard_mutex);
      guard = g;
      return g;
    };
    server.set_payload_max_length(opt.max_body_bytes);
    // httplib's own per-read timeout is only a fallback: the guard's deadlines bound the whole
    // header and body. Were it shorter, a read timing out would answer 400 and keep the
    // connection alive, and a slow client's next line would start a new "request".
    const int read_ms = opt.header_timeout_ms + 1000;
    server.set_read_timeout(read_ms / 1000, (read_ms % 1000) * 1000);
  }
};

HttpServer::HttpServer(TextGenerator& generator, ServeOptions options)
    : impl_(std::make_unique<Impl>(generator, std::move(options))) {
  impl_->routes();
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  auto& s = impl_->server;
  const int port = impl_->opt.port;
  impl_->bound_port = port == 0 ? s.bind_to_any_port(impl_->opt.listen) : (s.bind_to_port(impl_->opt.listen, port) ? port : -1);
  if (impl_->bound_port <= 0)
    throw std::runtime_error("cannot listen on " + impl_->opt.listen + ":" + std::to_string(port) +
                             ": the port is taken by another program (another troupe serve?) or the address is not "
                             "this machine's; choose another with --port (0: any free port)");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  spdlog::info("serving the OpenAI-compatible API on http://{}:{}/v1{}", impl_->opt.listen, impl_->bound_port,
               impl_->opt.web_page ? fmt::format(" and the chat page on http://{}:{}/", impl_->opt.listen, impl_->bound_port)
                                   : std::string());
}

void HttpServer::stop() {
  if (!impl_) return;
  impl_->server.stop();
  {
    std::lock_guard<std::mutex> lock(impl_->guard_mutex);
    impl_->guard = nullptr;  // httplib deletes its task queue when listening ends
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HttpServer::port() const { return impl_->bound_port; }

}  // namespace troupe
