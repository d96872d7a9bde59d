// python/csrc/registry.h: the specs compiled into one operator library, by name, for each device.
//
// An operator library is the package's extension gauge_attn._C (namespace torch.ops.gauge_attn) or
// one built just in time for one more spec (torch.ops.gauge_attn_<spec>). Its translation units:
// ops.cpp (the schemas, the argument checks, the CPU kernels), ops_cuda.cu (the CUDA kernels), and
// one generated unit per spec and device (gauge_attn/_sources.py writes them), which instantiates
// the library's templates for its spec and adds them to the table below while the library loads.
// One unit per spec lets a parallel build use every core.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

// The operator namespace: gauge_attn, or the one a just-in-time build defines on the command line.
#ifndef GAUGE_ATTN_NAMESPACE
#define GAUGE_ATTN_NAMESPACE gauge_attn
#endif

#define GAUGE_ATTN_PASTE_(a, b) a##b
#define GAUGE_ATTN_PASTE(a, b) GAUGE_ATTN_PASTE_(a, b)
// Everything of an operator library lives in an inline namespace named after its operator
// namespace, so that the libraries loaded into one process share no symbol.
#define GAUGE_ATTN_LIBRARY_TAG GAUGE_ATTN_PASTE(library_, GAUGE_ATTN_NAMESPACE)
// TORCH_LIBRARY pastes and stringifies its namespace argument as written: one more macro level
// expands GAUGE_ATTN_NAMESPACE first.
#define GAUGE_ATTN_TORCH_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
#define GAUGE_ATTN_TORCH_LIBRARY_IMPL(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)

namespace gauge_attn_torch {
inline namespace GAUGE_ATTN_LIBRARY_TAG {

/// The kernels of every compiled spec for one device (Kernels: CpuKernels, CudaKernels). Filled by
/// the static initialisers of the spec units, before any operator can run; read-only afterwards.
template <class Kernels>
class Specs {
 public:
  static bool add(const char* name, const Kernels& kernels) { return table().emplace(name, kernels).second; }

  /// The kernels of `name`, or null when this library does not hold that spec.
  static const Kernels* find(std::string_view name) {
    const auto it = table().find(name);
    return it == table().end() ? nullptr : &it->second;
  }

  /// "a, b, c": the names held, for error messages.
  static std::string names() {
    std::string out;
    for (const auto& entry : table()) out += (out.empty() ? "" : ", ") + entry.first;
    return out;
  }

 private:
  static std::map<std::string, Kernels, std::less<>>& table() {
    static std::map<std::string, Kernels, std::less<>> specs;  // built on first use: no order-of-initialisation issue
    return specs;
  }
};

}  // namespace GAUGE_ATTN_LIBRARY_TAG
}  // namespace gauge_attn_torch
