// tables.cpp: one flat JSON object per row; the CSV files are the same rows.
#include "tables.hpp"

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

}  // namespace

void write_tables(const std::string& dir, const ordered_json& settings, const SweepResult& r,
                  const std::vector<SpinSummary>& summary) {
  const ordered_json tables{{"heads", to_json(r.heads)},
                            {"summary", to_json(summary)},
                            {"diversity", to_json(r.diversity)},
                            {"kl_by_dim", to_json(r.kl_by_dim)}};
  for (const auto& [name, rows] : tables.items()) write_csv(std::filesystem::path(dir) / (name + ".csv"), rows);
  ordered_json study{{"settings", settings}};
  study.update(tables);
  const std::filesystem::path path = std::filesystem::path(dir) / "study.json";
  std::ofstream f(path);
  f << study.dump(1) << "\n";
  detail::require(bool(f), "out", "cannot write ", path.string());
}

}  // namespace gauge_attn_study
