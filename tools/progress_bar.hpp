// progress_bar.hpp: a progress bar on stderr for long sweeps.
#pragma once

#include <chrono>
#include <cstddef>

namespace gauge_attn_study {

/// Counts `total` steps and draws a bar on stderr, only when stderr is a terminal and only once the
/// work has run for a second: short runs, pipes, files and tests see nothing of it.
class ProgressBar {
 public:
  explicit ProgressBar(std::size_t total);
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar() { clear(); }

  /// One step done; redraws the bar when it is due.
  void step();
  /// Erases the bar, before other output to the terminal; the next step() draws it again.
  void clear();

 private:
  std::size_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  bool terminal_, shown_ = false;
};

}  // namespace gauge_attn_study
