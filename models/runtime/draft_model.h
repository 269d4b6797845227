#pragma once
// Drafting for speculative decoding with a small model of the same vocabulary, run in this
// process (the client's laptop): it proposes the next k tokens greedily, and the pipeline
// verifies them all in one pass, as it does prompt-lookup drafts (models/runtime/prompt_lookup.h).
// Each generation drafts through a DraftSequence with its own KV cache, which keeps the
// positions that agree with the tokens actually generated and recomputes the rest: a rejected
// draft is rolled back before the next proposal.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "models/format/checkpoint.h"

namespace troupe {

class StageModel;
class KvCache;
class DraftSequence;

class DraftModel {
 public:
  // Loads the whole of `ckpt` (opened from `path`, which errors name).
  DraftModel(std::shared_ptr<const Checkpoint> ckpt, std::string path);
  ~DraftModel();

  // Throws std::invalid_argument naming both files and sizes unless the draft's vocabulary
  // has `target_vocab` tokens (the draft's token ids must mean the target's).
  void check_vocabulary(int64_t target_vocab, const std::string& target_name) const;

  // A new sequence (one generation); sequences may be used from different threads.
  std::unique_ptr<DraftSequence> start() const;

  int64_t n_vocab() const;
  const std::string& path() const { return path_; }

 private:
  friend class DraftSequence;
  std::shared_ptr<StageModel> model_;
  std::string path_;
  // One forward pass at a time: generations on several threads share the weights and LibTorch's
  // thread pool (the draft is small, so its passes are short).
  std::shared_ptr<std::mutex> busy_ = std::make_shared<std::mutex>();
};

class DraftSequence {
 public:
  ~DraftSequence();
  // Up to `k` tokens the draft model would generate greedily after `history` (every token of
  // the sequence so far: prompt and generated). Fewer at the end of the draft's context.
  std::vector<int32_t> propose(const std::vector<int32_t>& history, int32_t k);
  // Positions whose keys and values the draft's cache holds (tests: the rollback).
  int64_t cached_positions() const;

 private:
  friend class DraftModel;
  DraftSequence(std::shared_ptr<StageModel> model, std::shared_ptr<std::mutex> busy);
  std::shared_ptr<StageModel> model_;
  std::shared_ptr<std::mutex> busy_;
  std::unique_ptr<KvCache> cache_;
  std::vector<int32_t> cached_;  // the tokens at the cache's positions
};

}  // namespace troupe
