// study_gpu.hpp: the study's attention on the GPU, gpu::Pairwise in float64 (both modes, KL and β
// materialised), behind an interface without Eigen: study_gpu.cu is compiled by nvcc and sees no
// Eigen; device.cpp turns the plain vectors it returns into the AttentionResult the sweep reads.
#pragma once

#include <gauge_attn/options.hpp>
#include <gauge_attn/row_statistics.hpp>

#include <string>
#include <vector>

namespace gauge_attn_study {

/// The CUDA device the study would run on: its name, or why there is none.
struct GpuProbe {
  bool found = false;
  std::string description;
};

GpuProbe probe_gpu();

/// Host copies of one run: μ (B, N, E), the row statistics (B, H), and KL and β of the first
/// `matrix_sequences` sequences, (S, H, N, N).
struct GpuAttention {
  std::vector<double> mu, kl, beta;
  std::vector<gauge_attn::RowStatistics> row_statistics;
};

/// Runs gpu::Pairwise<named spec, double> on host beliefs (layouts of belief.hpp). Throws
/// InvalidArgument naming --device when its (B, H, N, N) matrices do not fit the free GPU memory,
/// InvalidArgument for bad beliefs, gpu::CudaError for CUDA failures.
GpuAttention gpu_attention(const std::string& spec, int batch, int tokens, gauge_attn::Covariance covariance,
                           const double* mu, const double* sigma, const double* phi,
                           const gauge_attn::AttentionOptions& options, int matrix_sequences);

}  // namespace gauge_attn_study
