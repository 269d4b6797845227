#pragma once
// Stop strings over streamed text. Pieces arrive token by token and a stop string may
// straddle several of them, so text that could still become a stop string is held back
// until it is decided; text after a stop string is never released.
#include <string>
#include <vector>

namespace troupe {

class StopSequences {
 public:
  explicit StopSequences(std::vector<std::string> stops);

  // Adds a piece; returns the text now safe to show. After a stop string has been seen,
  // stopped() is true and nothing more is released.
  std::string push(const std::string& piece);
  // The held-back text, at the end of a generation that did not stop.
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace troupe
