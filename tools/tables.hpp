// tables.hpp: every number the tool prints, as CSV tables and one JSON document.
#pragma once

#include <gauge_attn/study.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace gauge_attn_study {

/// Writes heads.csv, summary.csv, diversity.csv, kl_by_dim.csv and study.json ({"settings", and
/// the four tables as arrays of rows}) into the existing directory `dir`. Throws InvalidArgument
/// when a file cannot be written.
void write_tables(const std::string& dir, const nlohmann::ordered_json& settings,
                  const gauge_attn::study::SweepResult& r, const std::vector<gauge_attn::study::SpinSummary>& summary);

}  // namespace gauge_attn_study
