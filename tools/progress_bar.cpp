// progress_bar.cpp: "\r" redraws the bar in place and ANSI "erase line" (ESC [ K) clears it.
#include "progress_bar.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace gauge_attn_study {

ProgressBar::ProgressBar(std::size_t total) : total_(total), terminal_(isatty(STDERR_FILENO) == 1) {}

void ProgressBar::step() {
  ++done_;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (!terminal_ || seconds < 1.0) return;
  constexpr std::size_t width = 40;
  const std::size_t filled = total_ ? width * std::min(done_, total_) / total_ : width;
  std::fprintf(stderr, "\r[%s%s] %zu/%zu runs, %.0f s", std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(), done_, total_, seconds);
  std::fflush(stderr);
  shown_ = true;
}

void ProgressBar::clear() {
  if (!shown_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  shown_ = false;
}

}  // namespace gauge_attn_study
