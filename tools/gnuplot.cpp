// gnuplot.cpp: fork, chdir, exec and wait; exit code 127 from the child means exec found no
// gnuplot (the shell's convention).
#include "gnuplot.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace gauge_attn_study {

bool run_gnuplot(const std::string& dir, const std::string& script) {
  constexpr int not_found = 127, no_directory = 126;
  std::fflush(nullptr);  // the child must not inherit unwritten output
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("cannot start gnuplot: ") + std::strerror(errno));
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(no_directory);
    const char* argv[] = {"gnuplot", script.c_str(), nullptr};
    execvp(argv[0], const_cast<char* const*>(argv));
    _exit(not_found);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error(std::string("waiting for gnuplot: ") + std::strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  if (WIFEXITED(status) && WEXITSTATUS(status) == not_found) return false;
  throw std::runtime_error("gnuplot failed on " + dir + "/" + script +
                           (WIFEXITED(status) ? " (exit code " + std::to_string(WEXITSTATUS(status)) + ")"
                                              : std::string(" (killed by a signal)")));
}

}  // namespace gauge_attn_study
