// gauge_attn_study: the attention-uniformity investigation of the upstream note (upstream.md) as
// a command-line tool. For every named spec (math.md §1) and temperature κ it prints the upstream
// per-head row_std lines with the uniform baseline and the normalised entropy beside them (§7),
// exact KL (M4) and the upstream diagonal approximation (§6) side by side, a summary per ℓ and
// the [DIVERSITY] block; --out writes every printed number as CSV and JSON.
//
//   gauge_attn_study                                  synthetic beliefs, every spec, default κ list
//   gauge_attn_study --mu mu.npy --sigma sigma.npy --phi phi.npy [--spec NAME]
#include <gauge_attn/study.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace gauge_attn;
using namespace gauge_attn::study;
using nlohmann::ordered_json;

namespace {

/// `text` padded with spaces to `columns` characters (UTF-8 aware: ℓ and × are one column each).
std::string pad(std::string text, std::size_t columns) {
  std::size_t shown = 0;
  for (unsigned char c : text) shown += (c & 0xC0) != 0x80;
  if (shown < columns) text.append(columns - shown, ' ');
  return text;
}

std::string format_summary(const SpinSummary& s) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s: %d heads row_std=%.4f uniform=%.4f entropy=%.3f  %dU %dM %dS",
                irrep_label(s.l).c_str(), s.heads, s.row_std, s.uniform_row_std, s.entropy, s.uniform, s.medium,
                s.sharp);
  return buf;
}

/// Prints one spec's rows: per κ the heads and the per-ℓ summary (exact | upstream), then the
/// diversity of both modes. `heads` and `summary` hold that spec's rows only.
void print_spec(const std::string& spec, const SweepResult& r, const std::vector<SpinSummary>& summary) {
  constexpr std::size_t width = 67;
  std::printf("\n== %s: %s ==\n", spec.c_str(), describe_spec(spec).c_str());
  const std::size_t half = r.heads.size() / 2;  // exact rows first, then upstream rows, same order
  const std::size_t half_summary = summary.size() / 2;
  for (std::size_t i = 0; i < half; ++i) {
    const HeadRow &e = r.heads[i], &u = r.heads[half + i];
    if (i == 0 || e.kappa_base != r.heads[i - 1].kappa_base) {
      std::printf("\n-- kappa = %g (base %g) --\n", e.kappa, e.kappa_base);
      std::printf("%s | %s\n", pad("exact KL (M4)", width).c_str(), "upstream diagonal approximation (math.md 6)");
    }
    std::printf("%s | %s\n", pad(format_calibrated(e.head), width).c_str(), format_calibrated(u.head).c_str());
    if (i + 1 == half || r.heads[i + 1].kappa_base != e.kappa_base)
      for (std::size_t s = 0; s < half_summary; ++s)
        if (summary[s].kappa_base == e.kappa_base)
          std::printf("%s | %s\n", pad(format_summary(summary[s]), width).c_str(),
                      format_summary(summary[half_summary + s]).c_str());
  }
  for (const DiversityRow& d : r.diversity)
    std::printf("\n%s:\n%s", d.mode == Mode::exact ? "exact" : "upstream", format_diversity(d.diversity).c_str());
}

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

void write_outputs(const std::string& dir, const ordered_json& settings, const SweepResult& r,
                   const std::vector<SpinSummary>& summary) {
  std::filesystem::create_directories(dir);
  ordered_json heads = ordered_json::array(), spins = ordered_json::array(), div = ordered_json::array();
  for (const HeadRow& h : r.heads) heads.push_back(to_json(h));
  for (const SpinSummary& s : summary) spins.push_back(to_json(s));
  for (const DiversityRow& d : r.diversity) div.push_back(to_json(d));
  write_csv(std::filesystem::path(dir) / "heads.csv", heads);
  write_csv(std::filesystem::path(dir) / "summary.csv", spins);
  write_csv(std::filesystem::path(dir) / "diversity.csv", div);
  std::ofstream f(std::filesystem::path(dir) / "study.json");
  f << ordered_json{{"settings", settings}, {"heads", heads}, {"summary", spins}, {"diversity", div}}.dump(1) << "\n";
  detail::require(bool(f), "out", "cannot write ", dir, "/study.json");
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"gauge_attn_study: why do low-spin heads attend uniformly? The upstream attention diagnostics "
               "(row_std, its uniform baseline, normalised entropy, diversity) for the named irrep specs over a "
               "range of temperatures, exact KL and the upstream diagonal approximation side by side."};
  std::vector<std::string> spec_names{"all"};
  std::vector<double> kappas = default_kappas();
  KappaScaling scaling = KappaScaling::fixed;
  SyntheticOptions synthetic;
  std::string mu_path, sigma_path, phi_path, out_dir;
  app.add_option("--spec", spec_names, "spec names, comma-separated, or 'all' (upstream, more-tensor, higher-rank, "
                                       "scaled, single-l9)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--kappa", kappas, "temperatures (kappa base with --kappa-scaling embed-dim), comma-separated; "
                                    "default: 0.43, 0.0086, 0.00043 and 1e-4 ... 10")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--kappa-scaling", scaling, "fixed: kappa as given; embed-dim: kappa_base*E/11 (upstream training)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, KappaScaling>{{"fixed", KappaScaling::fixed}, {"embed-dim", KappaScaling::embed_dim}}))
      ->capture_default_str();
  app.add_option("--batch", synthetic.batch, "synthetic data: sequences B")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--tokens", synthetic.tokens, "synthetic data: tokens N")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--seed", synthetic.seed, "synthetic data: random seed")->capture_default_str();
  auto* mu = app.add_option("--mu", mu_path, "means (B, N, E), .npy float32/float64")->check(CLI::ExistingFile);
  auto* sigma = app.add_option("--sigma", sigma_path, "variances (B, N, E) or covariances (B, N, E, E), .npy")
                    ->check(CLI::ExistingFile);
  auto* phi = app.add_option("--phi", phi_path, "gauge frames (B, N, 3), .npy")->check(CLI::ExistingFile);
  mu->needs(sigma, phi);
  sigma->needs(mu, phi);
  phi->needs(mu, sigma);
  app.add_option("--out", out_dir, "directory for heads.csv, summary.csv, diversity.csv and study.json");
  app.footer("Synthetic beliefs (no --mu/--sigma/--phi): mu ~ N(0, s^2) with s set for mu_dist = 0.50 at E = 19, "
             "phi ~ N(0, 0.48^2), sigma log-normal with mean 1 clamped to the upstream range; causal, self-masked, "
             "row statistics of sequence 0 as upstream.\n"
             "Planned, not in this version: the analytic predictor, the verdict, PNG charts, a progress bar, "
             "--device cuda.\n");
  CLI11_PARSE(app, argc, argv);

  const bool real = !mu_path.empty();
  Beliefs<double> input;
  std::vector<std::string> names;
  if (real) {
    input = load_beliefs(mu_path, sigma_path, phi_path);
    names = specs_for_embed_dim(spec_names, input.embed_dim);
  } else if (spec_names.size() == 1 && spec_names[0] == "all") {
    names.assign(specs::names.begin(), specs::names.end());
  } else {
    names = spec_names;
    for (const std::string& n : names) describe_spec(n);  // an unknown name fails before any work
  }

  ordered_json settings{{"data", real ? "npy" : "synthetic"},
                        {"kappa", kappas},
                        {"kappa_scaling", to_string(scaling)},
                        {"mask", "causal, self-masked"},
                        {"row_statistics", "sequence 0"}};
  if (real) {
    settings["files"] = {mu_path, sigma_path, phi_path};
    settings["shape"] = {input.batch, input.tokens, input.embed_dim};
  } else {
    settings["shape"] = {synthetic.batch, synthetic.tokens};
    settings["synthetic"] = {{"mu_scale", synthetic.mu_scale}, {"phi_std", synthetic.phi_std},
                             {"sigma_log_std", synthetic.sigma_log_std}, {"seed", synthetic.seed}};
  }
  std::printf("gauge_attn_study: %s beliefs, B = %d, N = %d, causal, self-masked, kappa %s\n",
              real ? "npy" : "synthetic", real ? input.batch : synthetic.batch,
              real ? input.tokens : synthetic.tokens, to_string(scaling));
  std::printf("row_std of sequence 0 as upstream; uniform = the same statistic of uniform attention under the same "
              "mask; entropy = H / ln(allowed keys); nU nM nS = heads UNIFORM / MEDIUM / SHARP\n");
  if (!real)
    std::printf("synthetic targets (upstream note): mu_dist %.2f, phi_std %.2f, sigma mean %.1f; measured in "
                "[DIVERSITY]\n",
                UpstreamDiversity::mu_dist, UpstreamDiversity::phi_std, UpstreamDiversity::sigma_mean);

  SweepResult all;
  std::vector<SpinSummary> all_summary;
  for (const std::string& name : names) {
    SweepResult r;
    const int E = specs::visit(name, [](auto spec) { return decltype(spec)::embed_dim; });
    const Beliefs<double> q = real ? input : synthetic_beliefs(E, synthetic);
    sweep_spec(name, q.view(), kappas, scaling, r);
    const std::vector<SpinSummary> summary = summarise_by_spin(r.heads);
    print_spec(name, r, summary);
    all.heads.insert(all.heads.end(), r.heads.begin(), r.heads.end());
    all.diversity.insert(all.diversity.end(), r.diversity.begin(), r.diversity.end());
    all_summary.insert(all_summary.end(), summary.begin(), summary.end());
  }
  if (!out_dir.empty()) {
    write_outputs(out_dir, settings, all, all_summary);
    std::printf("\nwrote %s/{heads,summary,diversity}.csv and study.json\n", out_dir.c_str());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gauge_attn_study: error: %s\n", e.what());
  return 1;
}
