// Same-call A/B of two trees' forward: median of 300 calls per workload, and a hash of the messages.
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/specs.hpp>
#include <benchmark/benchmark.h>
#include "gpu_workloads.cuh"
#include <algorithm>
#include <cstdio>
#include <cstring>
using namespace gauge_attn;
using WideHeads = IrrepSpec<Irrep<8, 1>, Irrep<4, 2>>;
template <class Spec>
void time_one(const char* name, int B, int N, int calls) {
  bench::Workload<Spec> w(B, N, false);
  cudaEvent_t a, z;
  cudaEventCreate(&a); cudaEventCreate(&z);
  std::vector<float> t;
  for (int c = 0; c < calls; ++c) {
    cudaEventRecord(a);
    w.forward.run(w.q, w.options, w.out);
    cudaEventRecord(z);
    cudaEventSynchronize(z);
    float ms; cudaEventElapsedTime(&ms, a, z); t.push_back(ms * 1000);
  }
  w.forward.check_inputs();
  std::vector<float> m(w.out.mu.size());
  thrust::copy(w.out.mu.begin(), w.out.mu.end(), m.begin());
  unsigned long long h = 1469598103934665603ull;
  for (float x : m) { unsigned u; std::memcpy(&u, &x, 4); h = (h ^ u) * 1099511628211ull; }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  std::printf("%-16s median %9.2f us  messages %016llx\n", name, t[t.size() / 2], h);
}
int main() {
  time_one<specs::Upstream>("W1", 24, 64, 400);
  time_one<specs::HigherRank>("W3_shape_N64", 24, 64, 400);
  time_one<WideHeads>("W6_shape_N64", 24, 64, 400);
  time_one<specs::Upstream>("W2", 8, 4096, 200);
  time_one<specs::HigherRank>("W3", 8, 4096, 200);
  time_one<WideHeads>("W6", 8, 4096, 100);
}
