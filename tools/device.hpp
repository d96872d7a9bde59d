// device.hpp: --device, where the study's attention runs: the CPU (attention_forward) or the GPU
// (gpu::Pairwise in float64, study_gpu.hpp), with the same numbers to rounding.
#pragma once

#include <gauge_attn/study/study.hpp>

#include <string>

namespace gauge_attn_study {

enum class Device { automatic, cpu, cuda };

const char* to_string(Device d);

/// The device that runs the sweep and the sweep's way to run the attention there.
struct DeviceChoice {
  Device device = Device::cpu;  // cpu or cuda
  std::string name;             // "2 threads" for the CPU, the GPU's name
  gauge_attn::study::AttentionRunner<double> attention;
};

/// automatic: cuda when this build has CUDA and a GPU is present, else cpu. Throws InvalidArgument
/// naming --device when cuda is requested and the build has no CUDA or no GPU is found.
DeviceChoice choose_device(Device requested);

}  // namespace gauge_attn_study
