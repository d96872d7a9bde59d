// gauge_attn/detail/parallel.hpp: an OpenMP loop that carries exceptions out of the parallel
// region (an exception must not escape an OpenMP thread). Runs serially without OpenMP.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

namespace gauge_attn::detail {

/// Calls f(i) for i in [0, n), dynamically scheduled over the OpenMP threads. The first
/// exception thrown by any f stops the remaining iterations and is rethrown here.
template <class F>
void parallel_for(std::int64_t n, F&& f) {
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic)
#endif
  for (std::int64_t i = 0; i < n; ++i) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      f(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace gauge_attn::detail
