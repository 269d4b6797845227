// Built into troupe_actors (see actors/CMakeLists.txt): deploying spawns the actors.
#include "framework/deploy/deploy.h"

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>

#include "actors/linked_stage_runtime.h"
#include "actors/node_actor.h"
#include "framework/cluster/cluster.h"
#include "framework/deploy/deploy_planning.h"
#include "framework/deploy/deploy_supervision.h"
#include "framework/deploy/stage_spawning.h"
#include "models/runtime/generation_loop.h"
#include "models/arch/open_checkpoint.h"
#include "models/format/checkpoint.h"
#include "models/runtime/draft_model.h"
#include "models/vocab/tokenizer.h"

namespace troupe {

namespace {

using Clock = std::chrono::steady_clock;

// The tokenizer of the model file at `model_path` (its vocabulary only: no weights are read).
std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& model_path) {
  return make_tokenizer(open_checkpoint(model_path)->vocab());
}

}  // namespace

struct Pipeline::Impl {
  caf::actor_system* sys = nullptr;
  DeployOptions options;
  SamplingOptions sampling;
  std::shared_ptr<const Tokenizer> tokenizer;  // immutable and thread-safe: called directly
  proto::node_actor local_node;
  std::vector<DeployedStage> stages;  // as deployed; the supervision actor holds them as repaired
  std::mutex stages_mu;               // Pipeline::stages() refreshes `stages` from the supervisor
  std::vector<proto::SpawnStage> spawns;  // what each stage was spawned with (to restart it)
  std::vector<ShardOutcome> shards;       // per stage: the shard sent to (or found on) its node
  std::shared_ptr<Supervisor> supervisor;
  int64_t n_vocab = 0;
  int64_t max_positions = 0;
  int32_t eos_id = -1;
  std::vector<int32_t> stop_ids;  // sorted, from the tokenizer
  std::shared_ptr<const DraftModel> draft;  // DeployOptions::draft_model, loaded here
  mutable std::atomic<uint64_t> next_session{1};
  mutable std::atomic<uint64_t> drafted_total{0};   // speculative decoding: tokens drafted
  mutable std::atomic<uint64_t> accepted_total{0};  // ... and kept

  ~Impl() { stop(); }

  // Stops every actor of the pipeline and waits (a bounded time) until they are gone, so that
  // nothing of it is still in flight when the caller goes on to destroy the actor system
  // (CAF 0.17 can then wait forever for a detached stage that a late message still holds).
  void stop() {
    if (supervisor) {
      auto now = supervisor->stages();  // with the replacements of any repair
      if (!now.empty()) stages = std::move(now);
      supervisor->stop();  // no recovery may run (or start) while stopping; the stages' owner goes
    }
    supervisor.reset();
    std::vector<caf::actor> all;
    for (const auto& s : stages) all.push_back(caf::actor_cast<caf::actor>(s.actor));
    if (local_node) all.push_back(caf::actor_cast<caf::actor>(local_node));
    stages.clear();
    local_node = proto::node_actor{};
    if (all.empty() || sys == nullptr) return;
    caf::scoped_actor self{*sys};
    for (const auto& a : all) {
      self->monitor(a);
      self->send_exit(a, caf::exit_reason::user_shutdown);
    }
    const auto deadline = Clock::now() + options.connect_timeout;
    size_t gone = 0;
    bool timed_out = false;
    while (gone < all.size() && !timed_out) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      self->receive([&](const caf::down_msg&) { ++gone; },
                    caf::after(std::max(left, std::chrono::milliseconds(0))) >> [&] { timed_out = true; });
    }
  }

  // Frees the session's KV caches on every stage. Not awaited: a stage handles it before
  // anything this process sends it later, and a dead stage must not hold up the caller.
  std::vector<DeployedStage> current_stages() const { return supervisor ? supervisor->stages() : stages; }

  void end_session(uint64_t session) const {
    // Sent from this process (not anonymously): a stage takes such orders only from its owner's process.
    caf::scoped_actor self{*sys};
    for (const auto& s : current_stages()) self->send(s.actor, proto::end_session_atom::value, session);
  }
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

void Pipeline::shutdown() {
  if (impl_) impl_->stop();
}

const std::vector<DeployedStage>& Pipeline::stages() const {
  std::lock_guard<std::mutex> lock(impl_->stages_mu);
  if (impl_->supervisor) {
    auto now = impl_->supervisor->stages();
    if (!now.empty()) impl_->stages = std::move(now);
  }
  return impl_->stages;
}
const SamplingOptions& Pipeline::sampling() const { return impl_->sampling; }
int64_t Pipeline::n_vocab() const { return impl_->n_vocab; }
int64_t Pipeline::max_positions() const { return impl_->max_positions; }
int32_t Pipeline::eos_id() const { return impl_->eos_id; }
bool Pipeline::is_stop(int32_t token) const {
  return std::binary_search(impl_->stop_ids.begin(), impl_->stop_ids.end(), token);
}

std::vector<int32_t> Pipeline::encode(const std::string& text) const {
  if (!impl_->tokenizer) throw PipelineError("this pipeline has no tokenizer: give token ids");
  // Special tokens written in a prompt count, as in llama.cpp's CLI and server.
  return impl_->tokenizer->encode(text, impl_->tokenizer->adds_bos(), true);
}

std::string Pipeline::decode(const std::vector<int32_t>& tokens) const {
  return impl_->tokenizer ? impl_->tokenizer->decode(tokens) : std::string();
}

std::vector<proto::StageStats> Pipeline::stats() const {
  caf::scoped_actor self{*impl_->sys};
  std::vector<proto::StageStats> all;
  for (const auto& s : impl_->current_stages()) {
    std::string failure;
    self->request(s.actor, impl_->options.connect_timeout, proto::stats_atom::value)
      .receive([&](proto::StageStats& st) { all.push_back(std::move(st)); },
               [&](caf::error& e) { failure = proto::error_text(e); });
    if (!failure.empty()) throw PipelineError("stage " + s.describe + " @ " + s.endpoint + ": " + failure);
  }
  return all;
}

const std::vector<ShardOutcome>& Pipeline::shard_transfers() const { return impl_->shards; }
SpeculationStats Pipeline::speculation() const {
  return SpeculationStats{impl_->options.speculate, impl_->draft ? impl_->draft->path() : "prompt lookup",
                          impl_->drafted_total.load(), impl_->accepted_total.load()};
}

std::vector<Recovery> Pipeline::recoveries() const {
  return impl_->supervisor ? impl_->supervisor->recoveries() : std::vector<Recovery>{};
}

std::vector<std::string> Pipeline::standby_nodes() const {
  return impl_->supervisor ? impl_->supervisor->standby_nodes() : std::vector<std::string>{};
}

void Pipeline::add_standby_nodes(const std::vector<std::string>& endpoints) const {
  if (impl_->supervisor) impl_->supervisor->add_standby_nodes(endpoints);
}

PipelineHealth Pipeline::health() const {
  if (!impl_->supervisor) return {PipelineHealth::State::unavailable, "the pipeline was shut down"};
  return impl_->supervisor->health();
}

namespace {

// Sends a fault_atom (tests) to stage `index` of `stages` and waits for its answer.
template <typename... Args>
void send_fault(caf::actor_system& sys, const std::vector<DeployedStage>& stages, size_t index,
                std::chrono::milliseconds timeout, Args... args) {
  if (index >= stages.size()) throw std::out_of_range("no stage " + std::to_string(index));
  caf::scoped_actor self{sys};
  std::string failure;
  self->request(stages[index].actor, timeout, proto::fault_atom::value, args...)
    .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
  if (!failure.empty()) throw PipelineError("stage " + stages[index].describe + ": " + failure);
}

}  // namespace

void Pipeline::inject_fault(size_t index, uint64_t at_step) const {
  send_fault(*impl_->sys, impl_->current_stages(), index, impl_->options.connect_timeout, at_step);
}

void Pipeline::inject_stall(size_t index, uint64_t at_step, uint32_t stall_ms) const {
  send_fault(*impl_->sys, impl_->current_stages(), index, impl_->options.connect_timeout, at_step, stall_ms, false);
}

void Pipeline::inject_slow_pass(size_t index, uint64_t at_step, uint32_t pass_ms) const {
  send_fault(*impl_->sys, impl_->current_stages(), index, impl_->options.connect_timeout, at_step, pass_ms, true);
}

Generation Pipeline::generate(const std::string& prompt, int64_t n_tokens, const TokenHandler& on_token) const {
  return generate(prompt, n_tokens, impl_->sampling, on_token);
}

Generation Pipeline::generate(const std::string& prompt, int64_t n_tokens, const SamplingOptions& sampling,
                              const TokenHandler& on_token) const {
  Generation g = generate_tokens(encode(prompt), n_tokens, sampling, GenerateOptions{}, on_token);
  return g;
}

namespace {

// Steps a pipeline: each step's parts go to stage 0 as TensorMessages of one session (all at
// once: a chunked prefill flows through the stages as a pipeline), through the supervisor,
// which replays the session into a repaired stage and tries again (deploy_supervision.h).
class PipelineStepper : public ModelStepper {
 public:
  PipelineStepper(Supervisor& supervisor, caf::actor_system& sys, uint64_t session)
      : supervisor_(supervisor), self_(sys), session_(session), record_(supervisor.open_session(session)) {}
  ~PipelineStepper() override { supervisor_.close_session(); }  // healing waits for a moment when none runs

  StepResult step(const StepRequest& request) override {
    TensorMessage m;
    m.session_id = session_;
    m.sampling.options = request.sampling;
    m.sampling.recent = request.recent;
    m.sampling.step = request.step;
    m.sampling.want_logits = request.want_logits;
    m.sampling.draft = request.draft;
    std::vector<std::string> parts;
    std::vector<int64_t> sizes;
    int64_t pos = request.pos;
    for (const auto& tokens : request.parts) {
      m.pos = pos;
      m.tensor = tokens_to_wire(tokens);
      parts.push_back(encode_tensor_message(m));
      sizes.push_back(static_cast<int64_t>(tokens.size()));
      pos += sizes.back();
    }
    proto::TokenReply reply = supervisor_.step(self_, record_, parts, sizes);
    if (reply.session_id != session_)
      throw PipelineError("reply for session " + std::to_string(reply.session_id) + " while waiting for session " +
                          std::to_string(session_));
    StepResult result;
    result.tokens = request.draft.empty() || reply.tokens.empty() ? std::vector<int32_t>{reply.token} : reply.tokens;
    result.logits = std::move(reply.logits);
    return result;
  }

  const Supervisor::Session& record() const { return record_; }

 private:
  Supervisor& supervisor_;
  caf::scoped_actor self_;
  uint64_t session_;
  Supervisor::Session record_;  // replayed after a stage failure
};

}  // namespace

Generation Pipeline::generate_tokens(const std::vector<int32_t>& prompt, int64_t n_tokens,
                                     const SamplingOptions& sampling, const GenerateOptions& options,
                                     const TokenHandler& on_token) const {
  const Impl& I = *impl_;
  if (!I.supervisor) throw PipelineError("the pipeline was shut down");
  if (prompt.empty()) throw std::invalid_argument("empty prompt");
  if (static_cast<int64_t>(prompt.size()) >= I.max_positions)
    throw std::length_error("prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " +
                            std::to_string(I.max_positions) + " positions");
  const uint64_t session = I.next_session.fetch_add(1);
  LoopOptions loop;
  loop.n_tokens = n_tokens;
  loop.max_positions = I.max_positions;
  loop.prefill_chunk = I.options.prefill_chunk;
  loop.speculate = options.speculate >= 0 ? options.speculate : I.options.speculate;
  loop.want_logits = options.want_logits;
  loop.sampling = sampling;
  if (options.stop_at_eos) loop.is_stop = [&I](int32_t t) { return std::binary_search(I.stop_ids.begin(), I.stop_ids.end(), t); };
  loop.on_token = [&](int32_t token, const std::vector<float>&) {
    if (on_token) on_token(token, I.tokenizer ? I.tokenizer->token_bytes(token) : std::string());
    return !options.keep_going || options.keep_going();
  };
  LoopResult run;
  std::string failure;
  // With a draft model (DeployOptions::draft_model), its own cache follows this generation and
  // is rolled back past every rejected draft (models/runtime/draft_model.h).
  const std::unique_ptr<DraftSequence> drafter =
    loop.speculate > 0 && !loop.want_logits && I.draft ? I.draft->start() : nullptr;
  if (drafter) loop.draft = [&drafter](const std::vector<int32_t>& history, int32_t k) { return drafter->propose(history, k); };
  Generation g;
  {
    PipelineStepper stepper(*I.supervisor, *I.sys, session);
    try {
      run_generation(stepper, prompt, loop, run);
    } catch (const PipelineError& e) {
      failure = e.what();
    }
    g.recoveries = stepper.record().recoveries;
    g.tokens_replayed = stepper.record().tokens_replayed;
  }
  I.end_session(session);
  I.drafted_total += static_cast<uint64_t>(run.drafted);
  I.accepted_total += static_cast<uint64_t>(run.accepted);
  if (!failure.empty())
    throw PipelineError("generation failed at token " + std::to_string(run.tokens.size()) + ": " + failure);
  g.prompt_tokens = prompt;
  g.tokens = std::move(run.tokens);
  g.logits = std::move(run.logits);
  g.prefill_ms = run.prefill_ms;
  g.step_ms = std::move(run.step_ms);
  g.drafted = run.drafted;
  g.accepted = run.accepted;
  if (I.tokenizer) g.text = decode(g.tokens);
  return g;
}

namespace {

// Joins "a; b; c".
void add_failure(std::string& all, const std::string& one) { all += (all.empty() ? "" : "; ") + one; }

// The node actor for each endpoint named in the description (connecting once per node),
// and a node actor in this process for stages without .on().
std::map<std::string, proto::node_actor> reach_nodes(caf::actor_system& sys, const dsl::PipelineDesc& desc,
                                              const DeployOptions& options, Pipeline::Impl& I,
                                              std::map<std::string, proto::NodeInfo>& infos) {
  std::map<std::string, proto::node_actor> nodes;
  for (const auto& s : desc.stages) {
    if (nodes.count(s.endpoint)) continue;
    if (s.endpoint.empty()) {
      NodeConfig local{"local", options.local_models_dir, options.local_threads};
      local.runtime = linked_stage_runtime();
      I.local_node = spawn_node_actor(sys, std::move(local));
      nodes[""] = I.local_node;
      continue;
    }
    try {
      ConnectedNode node = connect_node(sys, parse_endpoint(s.endpoint), options.connect_timeout);
      nodes[s.endpoint] = node.actor;
      infos[s.endpoint] = std::move(node.info);
    } catch (const std::exception& e) {
      throw DeployError(e.what());
    }
  }
  return nodes;
}

// Sends each stage placed on a node with a shard cache its shard (when the model is here and
// the node does not hold it yet); fills I.shards, one per stage.
void send_weights(caf::actor_system& sys, const dsl::PipelineDesc& desc, const DeployOptions& options,
                  const std::map<std::string, proto::node_actor>& nodes,
                  const std::map<std::string, proto::NodeInfo>& infos, Pipeline::Impl& I) {
  I.shards.assign(desc.stages.size(), ShardOutcome{});
  if (!options.send_weights) return;
  std::vector<ShardRequest> requests;
  std::vector<size_t> which;
  for (size_t i = 0; i < desc.stages.size(); ++i) {
    const dsl::StageDesc& s = desc.stages[i];
    if (s.endpoint.empty()) continue;
    const StageSpec spec{s.range.first, s.range.last, i == 0, i + 1 == desc.stages.size()};
    if (auto request = shard_request_for(nodes.at(s.endpoint), s.endpoint, infos.at(s.endpoint).cache_cap,
                                         options.local_models_dir, s.model, spec)) {
      requests.push_back(std::move(*request));
      which.push_back(i);
    }
  }
  if (requests.empty()) return;
  try {
    const auto outcomes = ensure_stage_shards(sys, requests, options.transfer);
    for (size_t k = 0; k < which.size(); ++k) I.shards[which[k]] = outcomes[k];
  } catch (const std::exception& e) {
    throw DeployError(e.what());
  }
}

// Asks every node to load its stage, all at once; the first stage gets the embedding, the
// last the head and the sampler.
std::vector<proto::StageReady> spawn_stages(caf::scoped_actor& self, const dsl::PipelineDesc& desc,
                                            const DeployOptions& options,
                                            const std::map<std::string, proto::node_actor>& nodes, Pipeline::Impl& I) {
  // Relays the stages' LoadProgress to the caller's callback while they load.
  proto::load_listener progress;
  if (options.on_load_progress)
    progress = self->spawn([cb = options.on_load_progress]() -> proto::load_listener::behavior_type {
      return {[cb](const proto::LoadProgress& p) { cb(p.node, p.describe, p.bytes_done, p.bytes_total); }};
    });
  std::vector<proto::SpawnStage> requests;
  for (size_t i = 0; i < desc.stages.size(); ++i) {
    const dsl::StageDesc& s = desc.stages[i];
    proto::SpawnStage req;
    req.model = s.model;
    req.spec.layer_first = s.range.first;
    req.spec.layer_last = s.range.last;
    req.spec.has_embedding = i == 0;
    req.spec.has_head = i + 1 == desc.stages.size();
    req.wire_dtype = static_cast<uint8_t>(s.wire_dtype.value_or(options.wire_dtype));
    req.threads = s.threads;
    req.max_positions = options.max_positions;
    req.with_sampler = req.spec.has_head;
    req.owner = I.supervisor->actor();  // the stages quit when it goes down
    req.max_batch = options.max_batch;
    req.progress = progress;
    req.shard = I.shards.empty() ? "" : I.shards[i].sha256;
    I.spawns.push_back(req);
    requests.push_back(req);
  }
  std::vector<proto::node_actor> stage_nodes;
  for (const auto& s : desc.stages) stage_nodes.push_back(nodes.at(s.endpoint));
  std::vector<SpawnOutcome> outcome = spawn_on_nodes(self->system(), stage_nodes, requests, options.spawn_timeout);
  std::string failures;
  std::vector<proto::StageReady> ready(desc.stages.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const std::string& ep = desc.stages[i].endpoint;
    if (outcome[i].ready) {
      ready[i] = std::move(*outcome[i].ready);
      // Kept even if another stage fails, so that ~Impl stops it.
      I.stages.push_back(DeployedStage{ep, ready[i].describe, ready[i].stage, ready[i].weight_bytes, ready[i].load_ms,
                                       ready[i].threads});
    } else {
      add_failure(failures, "stage " + std::to_string(i) + (ep.empty() ? " in this process" : " on " + ep) + ": " +
                              outcome[i].error);
    }
  }
  if (progress) self->send_exit(progress, caf::exit_reason::user_shutdown);
  if (!failures.empty()) throw DeployError(failures);
  return ready;
}

// All stages must be of one model and cover all its layers.
void check_coverage(const dsl::PipelineDesc& desc, const std::vector<proto::StageReady>& ready) {
  const int64_t n_layer = ready.front().n_layer;
  for (size_t i = 0; i < ready.size(); ++i)
    if (ready[i].n_layer != n_layer || ready[i].n_vocab != ready.front().n_vocab)
      throw DeployError("stage " + std::to_string(i) + " (" + desc.stages[i].model +
                        ") is not the same model as stage 0");
  if (desc.stages.back().range.last != n_layer - 1)
    throw DeployError("the stages cover layers 0-" + std::to_string(desc.stages.back().range.last) +
                      " but the model has " + std::to_string(n_layer) + " layers (0-" + std::to_string(n_layer - 1) +
                      ")");
}

// Connects each stage's node directly to the next stage's node, before any activation
// flows (see "Direct connections" in docs/architecture.md).
void peer_nodes(caf::scoped_actor& self, const dsl::PipelineDesc& desc, const DeployOptions& options,
                const std::map<std::string, proto::node_actor>& nodes, const std::vector<proto::StageReady>& ready) {
  const auto timeout = options.connect_timeout + std::chrono::seconds(10);  // the node has its own timeout
  using Handle = decltype(self->request(proto::node_actor{}, timeout, proto::peer_atom::value, std::string{}, uint16_t{0},
                                        caf::node_id{}));
  std::vector<Handle> pending;
  for (size_t i = 0; i + 1 < desc.stages.size(); ++i) {
    const std::string& here = desc.stages[i].endpoint;
    const std::string& next = desc.stages[i + 1].endpoint;
    if (here.empty() || next.empty() || here == next) continue;  // the client is connected to all; one node
    const Endpoint ep = parse_endpoint(next);
    pending.push_back(
      self->request(nodes.at(here), timeout, proto::peer_atom::value, ep.host, ep.port, ready[i + 1].stage.node()));
  }
  std::string failures;
  for (auto& p : pending)
    p.receive([](caf::ok_atom) {},
              [&](caf::error& e) { add_failure(failures, timeout_or_text(e, "no peering", timeout)); });
  if (!failures.empty()) throw DeployError(failures);
}

// Tells each stage its successor (the last one already feeds its sampler).
void wire_stages(caf::scoped_actor& self, const DeployOptions& options, const Pipeline::Impl& I) {
  for (size_t i = 0; i + 1 < I.stages.size(); ++i) {
    std::string failure;
    self->request(I.stages[i].actor, options.connect_timeout, proto::next_atom::value,
                  proto::stage_successor{I.stages[i + 1].actor})
      .receive([](caf::ok_atom) {}, [&](caf::error& e) { failure = proto::error_text(e); });
    if (!failure.empty())
      throw DeployError("cannot wire stage " + std::to_string(i) + " to stage " + std::to_string(i + 1) + ": " + failure);
  }
}

}  // namespace

Pipeline deploy(caf::actor_system& sys, const dsl::PipelineDesc& desc, const DeployOptions& options) {
  if (desc.planned) {  // the planner splits it first
    const dsl::PipelineDesc planned = plan_pipeline(sys, desc, options).desc;
    // A node the plan leaves out (too slow to help, or not needed) answered: it stands by to
    // take a lost stage over.
    DeployOptions with_spares = options;
    for (const auto& node : desc.planned->nodes) {
      const bool used = std::any_of(planned.stages.begin(), planned.stages.end(),
                                    [&](const dsl::StageDesc& s) { return s.endpoint == node; });
      auto& standby = with_spares.standby_nodes;
      if (!used && std::find(standby.begin(), standby.end(), node) == standby.end()) standby.push_back(node);
    }
    return deploy(sys, planned, with_spares);
  }
  try {
    desc.validate();
  } catch (const std::invalid_argument& e) {
    throw DeployError(std::string("invalid pipeline: ") + e.what());
  }
  for (size_t i = 1; i < desc.stages.size(); ++i)
    if (desc.stages[i].endpoint.empty() && !desc.stages[i - 1].endpoint.empty())
      throw DeployError("stage " + std::to_string(i) + " runs in this process but follows stage " +
                        std::to_string(i - 1) + " on node " + desc.stages[i - 1].endpoint +
                        ": put the stages without .on() first (with CAF 0.17, a client whose own stage "
                        "receives from a node may hang when it shuts down)");
  auto impl = std::make_unique<Pipeline::Impl>();  // on any error below, ~Impl stops what started
  Pipeline::Impl& I = *impl;
  I.sys = &sys;
  I.options = options;
  I.sampling = desc.sampler ? desc.sampler->options : SamplingOptions{};

  if (desc.tokenizer) {
    std::shared_ptr<const Tokenizer> tok;
    try {
      tok = load_tokenizer(resolve_model_path(options.local_models_dir, desc.tokenizer->model));
    } catch (const std::exception& e) {
      throw DeployError(std::string("tokenizer: ") + e.what());
    }
    I.eos_id = tok->eos_id();
    I.stop_ids = tok->stop_ids();
    I.tokenizer = std::move(tok);
  }

  std::map<std::string, proto::NodeInfo> infos;
  const auto nodes = reach_nodes(sys, desc, options, I, infos);
  I.supervisor = std::make_shared<Supervisor>(sys, options, I.local_node);  // the stages' owner
  send_weights(sys, desc, options, nodes, infos, I);
  caf::scoped_actor self{sys};
  const auto ready = spawn_stages(self, desc, options, nodes, I);
  check_coverage(desc, ready);
  I.n_vocab = ready.front().n_vocab;
  I.max_positions = ready.front().max_positions;
  if (!options.draft_model.empty()) {
    const std::string path = resolve_model_path(options.local_models_dir, options.draft_model);
    try {
      auto draft = std::make_shared<DraftModel>(open_checkpoint(path), path);
      draft->check_vocabulary(I.n_vocab, "the pipeline's model " + desc.stages.front().model);
      I.draft = std::move(draft);
    } catch (const std::exception& e) {
      throw DeployError(std::string("--draft: ") + e.what());
    }
  }
  for (const auto& r : ready) I.max_positions = std::min(I.max_positions, r.max_positions);
  peer_nodes(self, desc, options, nodes, ready);
  wire_stages(self, options, I);
  try {
    I.supervisor->start(I.stages, I.spawns);
  } catch (const std::exception& e) {
    throw DeployError(std::string("supervision: ") + e.what());
  }
  return Pipeline(std::move(impl));
}

}  // namespace troupe
