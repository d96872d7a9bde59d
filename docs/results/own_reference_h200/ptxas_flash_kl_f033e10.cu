// The attention kernel's instantiations of the named specs and W6, float scores, for the ptxas report.
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/specs.hpp>
#include <gauge_attn/cuda/flash_kl.cuh>
using namespace gauge_attn;
using W6 = IrrepSpec<Irrep<8, 1>, Irrep<4, 2>>;
#define INST(S) \
  template __global__ void gpu::flash_kl_kernel<S, float, false, false, false>(gpu::AttentionParams<S>); \
  template __global__ void gpu::flash_kl_kernel<S, float, false, false, true>(gpu::AttentionParams<S>); \
  template __global__ void gpu::flash_kl_kernel<S, float, false, true, false>(gpu::AttentionParams<S>); \
  template __global__ void gpu::flash_kl_kernel<S, float, true, false, false>(gpu::AttentionParams<S>);
INST(specs::Upstream)
INST(specs::MoreTensor)
INST(specs::HigherRank)
INST(specs::Scaled)
INST(specs::SingleL9)
INST(W6)
