// console_report.hpp: the study's results on stdout, in the upstream formats where it has them.
#pragma once

#include <gauge_attn/study/study.hpp>

#include <string>
#include <vector>

namespace gauge_attn_study {

/// Prints one spec's results: per κ the heads and the per-ℓ summary (exact | upstream side by
/// side), the diversity of both modes and the KL per head dimension K. `r` and `summary` hold that
/// spec's rows only.
void print_spec(const std::string& spec, const gauge_attn::study::SweepResult& r,
                const std::vector<gauge_attn::study::SpinSummary>& summary);

}  // namespace gauge_attn_study
