// python/csrc/cuda_spec.cuh: the CUDA kernels of one spec (cuda_kernels.h) over gpu::Forward and
// gpu::Backward. A generated spec unit instantiates them for its spec (add_cuda_spec).
//
// Both classes own their device workspace (Thrust vectors that grow to the largest shape seen and
// never shrink). One of each is kept per device and stream for the life of the process, so that a
// call allocates nothing once its shapes have been seen, and two streams never share a workspace.
#pragma once

#include <gauge_attn/cuda/backward.cuh>
#include <gauge_attn/cuda/check.cuh>
#include <gauge_attn/cuda/forward.cuh>

#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "cuda_kernels.h"

namespace gauge_attn_torch {
inline namespace GAUGE_ATTN_LIBRARY_TAG {

/// One Pass (gpu::Forward<Spec> or gpu::Backward<Spec>) per device and stream.
template <class Pass>
class PerStream {
 public:
  /// The one instance, never destroyed: at exit the CUDA runtime may be unloaded before static
  /// destructors run, and freeing device memory then fails (Thrust throws from the destructor).
  static PerStream& instance() {
    static PerStream* cache = new PerStream;
    return *cache;
  }

  /// f(pass) with the pass of the current device and `stream`, one caller at a time (the autograd
  /// engine runs backward passes on threads of its own): a pass's host state is not thread-safe.
  template <class F>
  void with(cudaStream_t stream, F&& f) {
    int device = 0;
    GAUGE_ATTN_CUDA_CHECK(cudaGetDevice(&device));
    Slot* slot = nullptr;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      std::unique_ptr<Slot>& s = slots_[{device, stream}];
      if (!s) s = std::make_unique<Slot>();
      slot = s.get();
    }
    const std::lock_guard<std::mutex> lock(slot->mutex);
    f(slot->pass);
  }

 private:
  struct Slot {
    std::mutex mutex;
    Pass pass;
  };
  std::mutex mutex_;
  std::map<std::pair<int, cudaStream_t>, std::unique_ptr<Slot>> slots_;
};

template <class Spec>
void cuda_forward(const gauge_attn::gpu::DeviceBeliefs& q, const gauge_attn::AttentionOptions& opt,
                  const gauge_attn::gpu::DeviceOutputs& out, bool check_inputs, cudaStream_t stream) {
  PerStream<gauge_attn::gpu::Forward<Spec>>::instance().with(stream, [&](gauge_attn::gpu::Forward<Spec>& pass) {
    pass.run(q, opt, out, stream);
    if (check_inputs) pass.check_inputs(stream);
  });
}

template <class Spec>
void cuda_backward(const gauge_attn::gpu::DeviceBeliefs& q, const gauge_attn::AttentionOptions& opt,
                   const gauge_attn::gpu::DeviceSaved& saved, const gauge_attn::gpu::DeviceOutputGradients& incoming,
                   const gauge_attn::gpu::DeviceGradients& grads, bool check_inputs, cudaStream_t stream) {
  PerStream<gauge_attn::gpu::Backward<Spec>>::instance().with(stream, [&](gauge_attn::gpu::Backward<Spec>& pass) {
    pass.run(q, opt, saved, incoming, grads, stream);
    if (check_inputs) pass.check_inputs(stream);
  });
}

template <class Spec>
bool add_cuda_spec(const char* name) {
  return Specs<CudaKernels>::add(name, {Spec::num_heads, &cuda_forward<Spec>, &cuda_backward<Spec>});
}

}  // namespace GAUGE_ATTN_LIBRARY_TAG
}  // namespace gauge_attn_torch
