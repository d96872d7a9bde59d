// gnuplot.hpp: runs gnuplot on a script the tool wrote.
#pragma once

#include <string>

namespace gauge_attn_study {

/// Runs `gnuplot SCRIPT` in the directory `dir` (fork and exec, no shell, so no path is ever
/// parsed as a command). Returns false when no gnuplot is on the PATH; throws std::runtime_error
/// when gnuplot fails or cannot be started.
bool run_gnuplot(const std::string& dir, const std::string& script);

}  // namespace gauge_attn_study
