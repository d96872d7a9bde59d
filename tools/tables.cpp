// tables.cpp: one flat JSON object per row; the CSV files are the same rows.
#include "tables.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace gauge_attn_study {

using namespace gauge_attn;
using namespace gauge_attn::study;
using nlohmann::ordered_json;

namespace {

ordered_json to_json(const HeadRow& r) {
  return {{"spec", r.spec},  {"kappa_base", r.kappa_base},           {"kappa", r.kappa},
          {"mode", to_string(r.mode)}, {"head", r.head.head},         {"l", r.head.l},
          {"row_std", r.head.rows.row_std}, {"uniform_row_std", r.head.rows.uniform_row_std},
          {"entropy", r.head.rows.entropy}, {"class", to_string(r.head.attention_class)}};
}

ordered_json to_json(const SpinSummary& s) {
  return {{"spec", s.spec},       {"kappa_base", s.kappa_base},      {"kappa", s.kappa},
          {"mode", to_string(s.mode)}, {"l", s.l},                   {"heads", s.heads},
          {"row_std", s.row_std}, {"uniform_row_std", s.uniform_row_std}, {"entropy", s.entropy},
          {"uniform", s.uniform}, {"medium", s.medium},              {"sharp", s.sharp}};
}

ordered_json to_json(const DiversityRow& r) {
  const Diversity& d = r.diversity;
  return {{"spec", r.spec},         {"mode", to_string(r.mode)},  {"mu_dist", d.mu_dist},
          {"phi_std", d.phi_std},   {"sigma_min", d.sigma_min},   {"sigma_max", d.sigma_max},
          {"sigma_mean", d.sigma_mean}, {"kl_mean", d.kl.mean},   {"kl_std", d.kl.std},
          {"kl_min", d.kl.min},     {"kl_max", d.kl.max},         {"kl_pairs", d.kl.count}};
}

ordered_json to_json(const KlByDim& k) {
  return {{"spec", k.spec},       {"mode", to_string(k.mode)}, {"l", k.l},           {"K", k.dim()},
          {"heads", k.heads},     {"kl_mean", k.kl.mean},      {"kl_std", k.kl.std}, {"kl_min", k.kl.min},
          {"kl_max", k.kl.max},   {"kl_pairs", k.kl.count}};
}

ordered_json to_json(const BeliefStatistics& b) {
  return {{"mu_variance", b.mu_variance}, {"log_sigma_mean", b.log_sigma_mean}, {"log_sigma_std", b.log_sigma_std},
          {"phi_std", b.phi_std}};
}

ordered_json to_json(const SpinStatistics& s) {
  ordered_json row{{"spec", s.spec}, {"l", s.l}, {"K", s.dim()}, {"heads", s.heads}};
  row.update(to_json(s.beliefs));
  row["transport_mixing"] = s.transport_mixing;
  return row;
}

ordered_json to_json(const KlComparison& k) {
  return {{"spec", k.exact.spec},          {"l", k.exact.l},
          {"K", k.exact.dim()},            {"heads", k.exact.heads},
          {"kl_mean", k.exact.kl.mean},    {"kl_mean_predicted", k.predicted.mean},
          {"kl_mean_error", k.mean_error()}, {"kl_std", k.exact.kl.std},
          {"kl_std_predicted", k.predicted.std}, {"kl_std_error", k.std_error()},
          {"upstream_kl_mean", k.upstream.kl.mean}, {"upstream_kl_std", k.upstream.kl.std}};
}

ordered_json to_json(const KlConcentration& c) {
  return {{"K", c.dim},
          {"heads", c.heads},
          {"kl_pairs", c.measured.count},
          {"kl_mean", c.measured.mean},
          {"kl_std", c.measured.std},
          {"kl_relative_std", c.measured.std / c.measured.mean},
          {"kl_mean_predicted", c.predicted.mean},
          {"kl_std_predicted", c.predicted.std},
          {"kl_relative_std_predicted", c.predicted.std / c.predicted.mean}};
}

ordered_json to_json(const std::pair<int, KlPrediction>& point) {
  return {{"K", point.first}, {"kl_mean_predicted", point.second.mean}, {"kl_std_predicted", point.second.std}};
}

ordered_json to_json(const RowComparison& r) {
  return {{"spec", r.exact.spec},
          {"kappa_base", r.exact.kappa_base},
          {"kappa", r.exact.kappa},
          {"l", r.exact.l},
          {"K", 2 * r.exact.l + 1},
          {"heads", r.exact.heads},
          {"row_std", r.exact.row_std},
          {"row_std_predicted", r.predicted.row_std},
          {"row_std_error", r.row_std_error()},
          {"entropy", r.exact.entropy},
          {"entropy_predicted", r.predicted.entropy},
          {"uniform_row_std", r.exact.uniform_row_std},
          {"upstream_row_std", r.upstream.row_std},
          {"upstream_entropy", r.upstream.entropy}};
}

/// The answers of the sharp searches as printed: a number, "never" (nullopt) or "any" (+∞).
ordered_json to_json(const SharpDim& d) {
  return {{"kappa_base", d.kappa_base}, {"kappa", d.kappa},
          {"min_sharp_K", d.dim ? ordered_json(*d.dim) : ordered_json("never")}};
}

ordered_json to_json(const SharpKappa& k) {
  const ordered_json kappa = !k.kappa ? ordered_json("never") : std::isinf(*k.kappa) ? ordered_json("any")
                                                                                      : ordered_json(*k.kappa);
  return {{"K", k.dim}, {"max_sharp_kappa", kappa}};
}

template <class Row>
ordered_json to_json(const std::vector<Row>& rows) {
  ordered_json out = ordered_json::array();
  for (const Row& r : rows) out.push_back(to_json(r));
  return out;
}

/// A CSV of flat JSON objects with the same keys (strings here never hold commas or quotes).
void write_csv(const std::filesystem::path& path, const ordered_json& rows) {
  std::ofstream f(path);
  bool first = true;
  for (const ordered_json& row : rows) {
    if (first)
      for (auto it = row.begin(); it != row.end(); ++it) f << it.key() << (std::next(it) == row.end() ? "\n" : ",");
    first = false;
    for (auto it = row.begin(); it != row.end(); ++it)
      f << (it->is_string() ? it->get<std::string>() : it->dump()) << (std::next(it) == row.end() ? "\n" : ",");
  }
  detail::require(bool(f), "out", "cannot write ", path.string());
}

/// The run's statistics and the row_std bounds, as one row.
ordered_json run_row(const Analysis& a) {
  ordered_json row{{"spec", a.run.spec}, {"sequences", a.run.sequences}, {"tokens", a.run.tokens},
                   {"components", a.run.components}};
  row.update(to_json(a.run.beliefs));
  row.update({{"uniform_row_std", a.uniform_row_std}, {"one_hot_row_std", a.one_hot_row_std},
              {"sharp_row_std", sharp_row_std}});
  return row;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  detail::require(bool(f), "out", "cannot write ", path.string());
}

}  // namespace

void write_tables(const std::string& dir, const ordered_json& settings, const SweepResult& r,
                  const std::vector<SpinSummary>& summary, const Analysis& analysis,
                  const std::vector<std::string>& verdict) {
  const std::filesystem::path out(dir);
  const ordered_json tables{{"heads", to_json(r.heads)},
                            {"summary", to_json(summary)},
                            {"diversity", to_json(r.diversity)},
                            {"kl_by_dim", to_json(r.kl_by_dim)}};
  const ordered_json prediction{{"run", ordered_json::array({run_row(analysis)})},
                                {"statistics", to_json(analysis.statistics)},
                                {"kl", to_json(analysis.kl)},
                                {"kl_by_dim", to_json(analysis.concentration)},
                                {"kl_curve", to_json(analysis.kl_curve)},
                                {"row_std", to_json(analysis.rows)},
                                {"min_sharp_dim", to_json(analysis.min_sharp_dim)},
                                {"max_sharp_kappa", to_json(analysis.max_sharp_kappa)}};
  for (const auto& [name, rows] : tables.items()) write_csv(out / (name + ".csv"), rows);
  for (const auto& [name, rows] : prediction.items()) write_csv(out / ("prediction_" + name + ".csv"), rows);
  std::string text;
  for (const std::string& line : verdict) text += line + "\n";
  write_text(out / "verdict.txt", text);
  ordered_json study{{"settings", settings}};
  study.update(tables);
  study["prediction"] = prediction;
  study["verdict"] = verdict;
  write_text(out / "study.json", study.dump(1) + "\n");
}

}  // namespace gauge_attn_study
