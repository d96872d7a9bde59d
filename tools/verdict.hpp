// verdict.hpp: what a run's numbers say about the upstream note's explanation of uniform
// attention (upstream.md), in a few plain lines built from the run's analysis.
#pragma once

#include <gauge_attn/study/study_analysis.hpp>

#include <string>
#include <vector>

namespace gauge_attn_study {

/// One line each on: the law of large numbers (KL's relative and absolute spread against K), the
/// uniform baseline of row_std, lowering κ, the minimum K, exact against the upstream diagonal
/// approximation, the predictor's errors; and a conclusion. Every number comes from `a`.
std::vector<std::string> verdict(const gauge_attn::study::Analysis& a);

}  // namespace gauge_attn_study
