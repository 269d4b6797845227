#include "actors/stage_actor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <deque>
#include <memory>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "actors/sampler_actor.h"
#include "actors/protocol/messages.h"
#include "models/format/checkpoint.h"
#include "models/arch/kv_cache.h"
#include "models/arch/stage_model.h"
#include "models/arch/open_checkpoint.h"

namespace troupe {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string shape_str(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes() << " " << t.scalar_type();
  return out.str();
}

// One activation waiting for the next forward pass.
struct PendingStep {
  TensorMessage msg;
  at::Tensor input;
  caf::typed_response_promise<proto::TokenReply> rp;
};

constexpr auto kRecentWindow = std::chrono::seconds(10);  // for StageStats::recent_tokens_per_s

struct StageState {
  StageConfig cfg;
  caf::actor owner;
  std::unique_ptr<StageModel> model;
  int64_t max_positions = 0;
  std::unordered_map<uint64_t, std::unique_ptr<KvCache>> caches;  // one per session
  proto::stage_successor next;   // the next stage (not for the last stage) ...
  proto::sampler_actor sampler;  // ... or the sampler beside the last stage
  proto::StageStats stats;
  std::deque<std::pair<Clock::time_point, uint64_t>> recent;  // (end of a forward pass, activations in it)
  void forget_old_passes(Clock::time_point now) {  // keeps `recent` to kRecentWindow
    while (!recent.empty() && now - recent.front().first > kRecentWindow) recent.pop_front();
  }
  int64_t fault_at_step = -1;  // fault injection (tests): throw inside compute when stats.steps reaches it
  uint32_t fault_stall_ms = 0;  // ... or, when set, freeze the compute thread that long (a stuck stage)
  bool fault_progressing = false;  // ... while computing layers all along (a long pass, not a stuck one)

  // Activations received and not yet computed. They are run by flush_atom, which the stage
  // sends itself when the first one arrives: every activation that reaches the mailbox
  // before that message (those that came while the previous pass computed) joins the pass.
  std::deque<PendingStep> pending;
  bool flush_sent = false;

  // The hop ping in flight (StageStats::next_rtt_ms).
  uint64_t hop_ping_seq = 0;
  Clock::time_point hop_ping_sent;
  uint64_t hop_ping_passes = 0;  // stats.batches when it was sent

  static inline const char* name = "troupe.stage";

  // "stage layers 2-3 of stories260K/stories260K.gguf on node 127.0.0.1:4001"
  std::string label() const { return "stage " + cfg.spec.describe() + " of " + cfg.model + " on node " + cfg.node; }

  // The session's cache, ready to take inputs at `pos`.
  KvCache& cache_for(uint64_t session, int64_t pos) {
    auto it = caches.find(session);
    if (it == caches.end()) {
      if (pos != 0)
        throw std::runtime_error("unknown session " + std::to_string(session) + " at position " +
                                 std::to_string(pos) + " (ended, or this stage restarted)");
      it = caches.emplace(session, model->new_cache(max_positions)).first;
    }
    KvCache& cache = *it->second;
    if (pos < cache.n_positions()) cache.truncate(pos);  // a rewind or a new prompt in the same session
    if (pos > cache.n_positions())
      throw std::runtime_error("session " + std::to_string(session) + " continues at position " +
                               std::to_string(pos) + " but this stage holds " +
                               std::to_string(cache.n_positions()) + " positions (a step was lost)");
    return cache;
  }

  // Checks the input against what this stage takes: token ids [T] or hidden states [T, n_embd].
  void check_input(const at::Tensor& input, int64_t pos) const {
    const int64_t n_embd = model->config().n_embd;
    if (cfg.spec.has_embedding) {
      if (input.dim() != 1 || input.scalar_type() != at::kLong)
        throw std::runtime_error("expected token ids [T], got a tensor of shape " + shape_str(input) +
                                 " (is this really the first stage?)");
    } else if (input.dim() != 2 || input.size(1) != n_embd || input.scalar_type() != at::kFloat) {
      throw std::runtime_error("expected hidden states [T, " + std::to_string(n_embd) + "], got shape " +
                               shape_str(input));
    }
    if (input.size(0) < 1) throw std::runtime_error("empty input");
    if (pos + input.size(0) > max_positions)
      throw std::runtime_error("context full: positions " + std::to_string(pos) + ".." +
                               std::to_string(pos + input.size(0) - 1) + " do not fit " +
                               std::to_string(max_positions) + " positions");
  }
};

using StageActor = proto::stage_actor::stateful_base<StageState>;

proto::StageReady load(StageActor* self) {
  auto& st = self->state;
  const auto t0 = Clock::now();
  if (st.cfg.threads > 0) {
    at::get_num_threads();  // runs LibTorch's per-thread lazy init first, so it cannot undo the next line
    at::set_num_threads(st.cfg.threads);
  }
  std::shared_ptr<const Checkpoint> ckpt = open_checkpoint(st.cfg.model_path);
  st.model = StageModel::load(ckpt, st.cfg.spec);
  if (st.cfg.work) st.model->count_layers_in(&st.cfg.work->layers);
  // Read the weights from disk now, not at the first token, and show it to whoever waits.
  st.model->prefetch_weights([&](uint64_t done, uint64_t total) {
    if (st.cfg.progress)
      self->send(st.cfg.progress, proto::LoadProgress{st.cfg.node, st.cfg.spec.describe(), done, total});
  });
  const ModelConfig& c = st.model->config();
  st.max_positions = st.cfg.max_positions > 0 ? std::min(st.cfg.max_positions, c.n_ctx) : c.n_ctx;
  if (st.cfg.with_sampler) st.sampler = self->spawn<caf::linked>(sampler_behavior);

  proto::StageReady ready;
  ready.stage = caf::actor_cast<proto::stage_actor>(self);
  ready.sampler = st.sampler;
  ready.node = st.cfg.node;
  ready.describe = st.cfg.spec.describe();
  ready.n_layer = c.n_layer;
  ready.n_vocab = c.n_vocab;
  ready.n_embd = c.n_embd;
  ready.n_ctx = c.n_ctx;
  ready.max_positions = st.max_positions;
  ready.weight_bytes = st.model->weight_bytes();
  ready.load_ms = ms_since(t0);
  ready.threads = at::get_num_threads();
  st.stats.node = st.cfg.node;
  st.stats.describe = ready.describe;
  spdlog::info("{}: loaded in {:.1f} ms ({:.2f} MiB of weights, {} threads)", st.label(), ready.load_ms,
               ready.weight_bytes / 1048576.0, ready.threads);
  return ready;
}

// A failure of this stage: named in the text, and carried as data (proto::StageFailure).
caf::error stage_error(const StageState& st, const std::string& what) {
  return proto::stage_failure_error(st.label() + ": " + what, proto::StageFailure{st.cfg.node, st.cfg.spec, what});
}

// A request refused as a whole (not a failure of the stage): its text goes back unchanged.
struct SessionRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Checks one hop's activation and queues it for the next forward pass.
void enqueue(StageActor* self, const proto::Activation& in, caf::typed_response_promise<proto::TokenReply> rp) {
  auto& st = self->state;
  if (!st.model) throw std::runtime_error("not loaded");
  if (st.cfg.spec.has_head ? !st.sampler : !st.next)
    throw std::runtime_error("has no successor (the pipeline was not wired)");
  TensorMessage m = decode_tensor_message(in.bytes);
  st.stats.bytes_in += in.bytes.size();
  at::Tensor input = from_wire(m.tensor);
  st.check_input(input, m.pos);
  if (st.cfg.max_sessions > 0 && !st.caches.count(m.session_id)) {
    // A new session: refused for this request only (worded so that the client does not take
    // it for a failed stage to restart) when those held and those about to start fill the cap.
    std::unordered_set<uint64_t> starting;
    for (const auto& p : st.pending)
      if (!st.caches.count(p.msg.session_id)) starting.insert(p.msg.session_id);
    const size_t held = st.caches.size() + starting.size() - starting.count(m.session_id);
    if (static_cast<int32_t>(held) >= st.cfg.max_sessions)
      throw SessionRefused("node " + st.cfg.node + ": refusing session " + std::to_string(m.session_id) + ": " +
                           std::to_string(held) + " sessions already held by its stage " + st.cfg.spec.describe() +
                           ", the node's --max-sessions");
  }
  st.pending.push_back(PendingStep{std::move(m), std::move(input), std::move(rp)});
  if (!st.flush_sent) {
    st.flush_sent = true;
    self->send(caf::actor_cast<proto::stage_actor>(self), proto::flush_atom::value);
  }
}

// The steps of the next pass: the oldest pending step of each session, in arrival order, at
// most max_batch of them (a session's later step waits: it needs this one's cache).
std::vector<PendingStep> take_batch(StageState& st) {
  std::vector<PendingStep> batch;
  std::unordered_set<uint64_t> sessions;
  for (auto it = st.pending.begin(); it != st.pending.end() && static_cast<int32_t>(batch.size()) < st.cfg.max_batch;) {
    if (sessions.insert(it->msg.session_id).second) {
      batch.push_back(std::move(*it));
      it = st.pending.erase(it);
    } else {
      ++it;
    }
  }
  return batch;
}

// Hands one session's result on; the reply to the requester comes from the end of the chain.
void pass_on(StageState& st, PendingStep& p, const at::Tensor& out) {
  if (st.cfg.spec.has_head) {
    // The newest row, or every row of a speculative step (its drafts are checked against them).
    const int64_t rows = static_cast<int64_t>(p.msg.sampling.draft.size()) + 1;
    const at::Tensor row = out.narrow(0, out.size(0) - rows, rows).to(at::kFloat).contiguous();
    proto::LogitsRow logits;
    logits.session_id = p.msg.session_id;
    logits.logits.assign(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
    logits.sampling = std::move(p.msg.sampling);
    p.rp.delegate(st.sampler, std::move(logits));
  } else {
    p.msg.tensor = to_wire(out, st.cfg.wire_dtype);
    proto::Activation next{encode_tensor_message(p.msg)};
    st.stats.bytes_out += next.bytes.size();
    p.rp.delegate(st.next, std::move(next));
  }
}

// Marks a forward pass as running for the node's progress probe, for the scope's duration.
class BusyFlag {
 public:
  explicit BusyFlag(StageWork* work) : work_(work) {
    if (work_) work_->busy = true;
  }
  ~BusyFlag() {
    if (work_) work_->busy = false;
  }
  BusyFlag(const BusyFlag&) = delete;
  BusyFlag& operator=(const BusyFlag&) = delete;

 private:
  StageWork* work_;
};

// The injected stall or slow pass (tests): the compute thread sleeps `ms`; a slow pass counts
// a layer every 100 ms meanwhile, as a long prefill does.
void sleep_in_pass(StageState& st, uint32_t ms) {
  if (!st.fault_progressing) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return;
  }
  for (uint32_t slept = 0; slept < ms; slept += 100) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<uint32_t>(100, ms - slept)));
    if (st.cfg.work) ++st.cfg.work->layers;
  }
}

// The stage's outputs for the steps of one pass: one batch (the last row's logits at the
// head), except that at the head a speculative step needs the logits of all its rows and
// runs on its own.
std::vector<at::Tensor> forward(StageState& st, const std::vector<PendingStep>& runnable,
                                const std::vector<SequenceStep>& steps) {
  std::vector<size_t> verify;
  if (st.cfg.spec.has_head)
    for (size_t i = 0; i < runnable.size(); ++i)
      if (!runnable[i].msg.sampling.draft.empty()) verify.push_back(i);
  if (verify.empty()) return st.model->forward_batch(steps);
  std::vector<at::Tensor> outs(steps.size());
  std::vector<SequenceStep> plain;
  std::vector<size_t> plain_index;
  for (size_t i = 0; i < steps.size(); ++i)
    if (runnable[i].msg.sampling.draft.empty()) {
      plain.push_back(steps[i]);
      plain_index.push_back(i);
    }
  if (!plain.empty()) {
    auto plain_outs = st.model->forward_batch(plain);
    for (size_t k = 0; k < plain.size(); ++k) outs[plain_index[k]] = std::move(plain_outs[k]);
  }
  for (size_t i : verify) outs[i] = st.model->forward(steps[i].input, steps[i].pos, *steps[i].cache, true);
  return outs;
}

// Runs the pending steps of several sessions as one forward pass (StageModel::forward_batch:
// each session gets exactly the bits it would get alone) and passes each result on.
void run_batch(StageActor* self) {
  auto& st = self->state;
  st.flush_sent = false;
  std::vector<PendingStep> batch = take_batch(st);
  std::vector<PendingStep> runnable;
  std::vector<SequenceStep> steps;
  for (auto& p : batch) {
    try {
      steps.push_back(SequenceStep{p.input, p.msg.pos, &st.cache_for(p.msg.session_id, p.msg.pos)});
      runnable.push_back(std::move(p));
    } catch (const std::exception& e) {  // this session's error only
      spdlog::error("{}: {}", st.label(), e.what());
      p.rp.deliver(stage_error(st, e.what()));
    }
  }
  if (!runnable.empty()) {
    try {
      const auto t0 = Clock::now();
      BusyFlag busy(st.cfg.work.get());
      if (st.fault_at_step >= 0 && static_cast<uint64_t>(st.fault_at_step) < st.stats.steps + runnable.size()) {
        st.fault_at_step = -1;
        if (st.fault_stall_ms > 0) {
          spdlog::warn("{}: injected {} of {} ms at step {}", st.label(),
                       st.fault_progressing ? "slow pass" : "stall", st.fault_stall_ms, st.stats.steps);
          sleep_in_pass(st, st.fault_stall_ms);
          st.fault_stall_ms = 0;
        } else {
          throw std::runtime_error("injected fault at step " + std::to_string(st.stats.steps));
        }
      }
      const std::vector<at::Tensor> outs = forward(st, runnable, steps);
      const auto t1 = Clock::now();
      st.stats.compute_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
      st.stats.steps += runnable.size();
      ++st.stats.batches;
      for (const auto& step : steps) st.stats.positions += static_cast<uint64_t>(step.input.size(0));
      st.recent.emplace_back(t1, runnable.size());
      st.forget_old_passes(t1);
      for (size_t i = 0; i < runnable.size(); ++i) pass_on(st, runnable[i], outs[i]);
    } catch (const std::exception& e) {  // the pass failed: every session in it
      spdlog::error("{}: {}", st.label(), e.what());
      for (auto& p : runnable) p.rp.deliver(stage_error(st, e.what()));
    }
  }
  if (!st.pending.empty() && !st.flush_sent) {
    st.flush_sent = true;
    self->send(caf::actor_cast<proto::stage_actor>(self), proto::flush_atom::value);
  }
}

// Measures the round trip to the next stage, only when idle: a pass that starts before the
// answer is handled would count in it, so such a measurement is dropped. Plain messages, no
// request: a request's timeout would keep this detached actor alive in CAF's clock, and a
// daemon shutting down waits for its detached actors to be destroyed.
void ping_next(StageActor* self) {
  auto& st = self->state;
  if (!st.next || st.cfg.spec.has_head || !st.pending.empty()) return;
  st.hop_ping_sent = Clock::now();
  st.hop_ping_passes = st.stats.batches;
  self->send(st.next, proto::hop_ping_atom::value, ++st.hop_ping_seq);
}

void on_hop_pong(StageState& st, uint64_t seq) {
  if (seq == st.hop_ping_seq && st.stats.batches == st.hop_ping_passes) st.stats.next_rtt_ms = ms_since(st.hop_ping_sent);
}

// The stage's statistics now, with the rate of the last kRecentWindow.
proto::StageStats current_stats(StageState& st) {
  st.forget_old_passes(Clock::now());
  proto::StageStats stats = st.stats;
  uint64_t recent = 0;
  for (const auto& r : st.recent) recent += r.second;
  stats.recent_tokens_per_s = static_cast<double>(recent) / std::chrono::duration<double>(kRecentWindow).count();
  stats.sessions = static_cast<int32_t>(st.caches.size());
  for (const auto& [id, cache] : st.caches) stats.cache_bytes += cache->bytes();
  return stats;
}

// Whether the message being handled comes from the process of the client that owns this
// stage (or from this node itself): orders that change a stage (its successor, its sessions,
// fault injection) are taken from nobody else, so one client cannot disturb another's stages.
bool from_owner(StageActor* self) {
  const auto& owner = self->state.owner;
  if (!owner) return true;  // an in-process stage, not reachable from the network
  const auto& sender = self->current_sender();
  return sender != nullptr && (sender->node() == owner.node() || sender->node() == self->node());
}

caf::error not_owner(StageActor* self, const char* what) {
  const auto& sender = self->current_sender();
  spdlog::warn("{}: refused {} from {}, not its owner's process", self->state.label(), what,
               sender ? caf::to_string(sender->node()) : std::string("an anonymous sender"));
  // A refusal, not a failure of the stage: no StageFailure, nobody restarts it.
  return caf::make_error(caf::sec::runtime_error, self->state.label() + ": refused " + what +
                                                    ": only the client that deployed this stage may send it");
}

proto::stage_actor::behavior_type stage_behavior(StageActor* self, StageConfig cfg, caf::actor owner) {
  self->state.cfg = std::move(cfg);
  self->state.owner = owner;
  if (owner) {
    self->monitor(owner);
    self->set_down_handler([self](caf::down_msg& dm) {
      if (dm.source == self->state.owner.address()) {
        spdlog::info("{}: its pipeline is gone ({}), quitting", self->state.label(), proto::error_text(dm.reason));
        self->quit(caf::exit_reason::user_shutdown);
      }
    });
  }
  return {
    [self](proto::load_atom) -> caf::result<proto::StageReady> {
      try {
        return load(self);
      } catch (const std::exception& e) {
        spdlog::error("{}: cannot load: {}", self->state.label(), e.what());
        return caf::make_error(caf::sec::runtime_error, self->state.label() + ": cannot load " +
                                                            self->state.cfg.model_path + ": " + e.what());
      }
    },
    [self](proto::next_atom, proto::stage_successor next) -> caf::result<caf::ok_atom> {
      if (!from_owner(self)) return not_owner(self, "setnext");
      const bool first = !self->state.next;
      self->state.next = std::move(next);
      if (first) ping_next(self);  // measure the hop once now; the node's ticks do it again
      return caf::ok_atom::value;
    },
    [self](proto::hop_ping_atom, uint64_t seq) {
      // The sender is the stage before this one (it set this one as its successor).
      self->send(caf::actor_cast<proto::stage_actor>(self->current_sender()), proto::hop_pong_atom::value, seq);
    },
    [self](proto::hop_pong_atom, uint64_t seq) { on_hop_pong(self->state, seq); },
    [self](proto::tick_atom) { ping_next(self); },
    [self](const proto::Activation& in) {
      auto rp = self->make_response_promise<proto::TokenReply>();
      try {
        enqueue(self, in, rp);
      } catch (const SessionRefused& e) {
        spdlog::warn("{}: {}", self->state.label(), e.what());
        rp.deliver(caf::make_error(caf::sec::runtime_error, e.what()));
      } catch (const std::exception& e) {
        spdlog::error("{}: {}", self->state.label(), e.what());
        rp.deliver(stage_error(self->state, e.what()));
      }
      return rp;
    },
    [self](proto::flush_atom) { run_batch(self); },
    [self](proto::end_session_atom, uint64_t session) -> caf::result<caf::ok_atom> {
      if (!from_owner(self)) return not_owner(self, "endsession");
      self->state.caches.erase(session);
      return caf::ok_atom::value;
    },
    [self](proto::fault_atom, uint64_t at_step) -> caf::result<caf::ok_atom> {
      if (!from_owner(self)) return not_owner(self, "fault");
      self->state.fault_at_step = static_cast<int64_t>(at_step);
      self->state.fault_stall_ms = 0;
      return caf::ok_atom::value;
    },
    // (fault_atom, at_step, stall_ms, progressing): instead of throwing, the compute thread
    // freezes, or (progressing) takes that long while computing layers, as a long prefill does.
    [self](proto::fault_atom, uint64_t at_step, uint32_t stall_ms, bool progressing) -> caf::result<caf::ok_atom> {
      if (!from_owner(self)) return not_owner(self, "fault");
      self->state.fault_at_step = static_cast<int64_t>(at_step);
      self->state.fault_stall_ms = stall_ms;
      self->state.fault_progressing = progressing;
      return caf::ok_atom::value;
    },
    [self](proto::stats_atom) { return current_stats(self->state); },
  };
}

}  // namespace

proto::stage_actor spawn_stage_actor(caf::actor_system& sys, const StageConfig& cfg, const caf::actor& owner) {
  return sys.spawn<caf::detached>(stage_behavior, cfg, owner);
}

}  // namespace troupe
