// analysis_report.hpp: the analysis of a run (gauge_attn/study/study_analysis.hpp) on stdout, after the
// per-spec report: the belief statistics, the predicted KL and row statistics against the
// measured ones, the KL per K pooled over the specs and the sharp thresholds; then the verdict.
#pragma once

#include <gauge_attn/study/study_analysis.hpp>

#include <string>
#include <vector>

namespace gauge_attn_study {

void print_analysis(const gauge_attn::study::Analysis& a);

/// The verdict (verdict.hpp) under its heading, a line per point.
void print_verdict(const std::vector<std::string>& lines);

}  // namespace gauge_attn_study
