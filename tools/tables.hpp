// tables.hpp: every number the tool prints, as CSV tables and one JSON document.
#pragma once

#include <gauge_attn/study/study.hpp>
#include <gauge_attn/study/study_analysis.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace gauge_attn_study {

/// Writes into the existing directory `dir` the tables of the sweep (heads, summary, diversity,
/// kl_by_dim .csv), of the analysis (prediction_{run, statistics, kl, kl_by_dim, kl_curve, row_std,
/// min_sharp_dim, max_sharp_kappa}.csv), verdict.txt, and study.json: {"settings", the four
/// tables, "prediction": {the eight tables}, "verdict": [lines]}, every table an array of flat
/// rows. Throws InvalidArgument when a file cannot be written.
void write_tables(const std::string& dir, const nlohmann::ordered_json& settings,
                  const gauge_attn::study::SweepResult& r, const std::vector<gauge_attn::study::SpinSummary>& summary,
                  const gauge_attn::study::Analysis& analysis, const std::vector<std::string>& verdict);

}  // namespace gauge_attn_study
