// gauge_attn_study: the attention-uniformity investigation of the upstream note (upstream.md) as
// a command-line tool. For every named spec (math.md §1) and temperature κ it prints the upstream
// per-head row_std lines with the uniform baseline and the normalised entropy beside them (§7),
// exact KL (M4) and the upstream diagonal approximation (§6) side by side, a summary per ℓ, the
// [DIVERSITY] block and the KL per head dimension K; then the analysis (the analytic predictor of
// docs/study.md against the measured values, the smallest K and largest κ of SHARP attention) and
// the verdict on the note's explanation. --out writes every printed number as CSV and JSON,
// heatmaps of β and charts (the files: --help).
//
//   gauge_attn_study                                  synthetic beliefs, every spec, default κ list
//   gauge_attn_study --mu mu.npy --sigma sigma.npy --phi phi.npy [--spec NAME]
#include <gauge_attn/study/study.hpp>
#include <gauge_attn/study/study_analysis.hpp>

#include "analysis_report.hpp"
#include "beta_heatmaps.hpp"
#include "charts.hpp"
#include "console_report.hpp"
#include "device.hpp"
#include "gnuplot.hpp"
#include "progress_bar.hpp"
#include "tables.hpp"
#include "verdict.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

using namespace gauge_attn;
using namespace gauge_attn::study;
using namespace gauge_attn_study;
using nlohmann::ordered_json;

namespace {

/// Creates the --out directory before any work, so that a bad path fails at once.
void make_out_dir(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  detail::require(!error && std::filesystem::is_directory(dir), "--out", "cannot create the directory '", dir,
                  "': ", error ? error.message() : "a file of that name exists");
}

/// The files of --out beyond the tables: heatmaps of β, then the charts, drawn by gnuplot if it is
/// installed (else their scripts and data stay for later, with a note on stderr). Returns whether
/// the charts were drawn.
bool write_figures(const std::string& dir, const SweepResult& r, const std::vector<SpinSummary>& summary,
                   const Analysis& analysis) {
  for (const AttentionMaps& m : r.maps) write_beta_heatmap(dir, m);
  std::vector<std::pair<int, double>> predicted_kl_std;
  for (const auto& [K, kl] : analysis.kl_curve) predicted_kl_std.emplace_back(K, kl.std);
  const std::string scripts[] = {write_row_std_chart(dir, summary, analysis.rows),
                                 write_kl_std_chart(dir, r.kl_by_dim, predicted_kl_std)};
  for (const std::string& script : scripts)
    if (!run_gnuplot(dir, script)) {
      std::fprintf(stderr, "gauge_attn_study: gnuplot not found, the charts are not drawn: run 'gnuplot %s' and "
                           "'gnuplot %s' in %s to draw them\n", scripts[0].c_str(), scripts[1].c_str(), dir.c_str());
      return false;
    }
  return true;
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
  app.add_option("--tokens", synthetic.tokens, "synthetic data: tokens N (>= 2: KL needs pairs)")
      ->check(CLI::Range(2, std::numeric_limits<int>::max()))
      ->capture_default_str();
  app.add_option("--seed", synthetic.seed, "synthetic data: random seed")->capture_default_str();
  auto* mu = app.add_option("--mu", mu_path, "means (B, N, E), .npy float32/float64")->check(CLI::ExistingFile);
  auto* sigma = app.add_option("--sigma", sigma_path, "variances (B, N, E) or covariances (B, N, E, E), .npy")
                    ->check(CLI::ExistingFile);
  auto* phi = app.add_option("--phi", phi_path, "gauge frames (B, N, 3), .npy")->check(CLI::ExistingFile);
  mu->needs(sigma, phi);
  sigma->needs(mu, phi);
  phi->needs(mu, sigma);
  app.add_option("--out", out_dir, "directory for the tables (heads, summary, diversity, kl_by_dim and the "
                                   "analysis's prediction_*: .csv, all in study.json), verdict.txt, heatmaps of beta "
                                   "(beta_SPEC_MODE.png) and charts (row_std_vs_kappa, kl_std_vs_dim: .png, with "
                                   "their gnuplot .gp and .dat)");
  Device requested_device = Device::automatic;
  app.add_option("--device", requested_device, "where the attention runs: cpu, cuda (the GPU's float64 "
                                               "pair-by-pair path, the same numbers to rounding) or auto (cuda when "
                                               "built with CUDA and a GPU is present, else cpu)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, Device>{{"auto", Device::automatic}, {"cpu", Device::cpu}, {"cuda", Device::cuda}}))
      ->capture_default_str();
  double map_kappa = upstream_kappas[1];
  app.add_option("--heatmap-kappa", map_kappa, "kappa of the beta heatmaps (kappa base with --kappa-scaling "
                                               "embed-dim)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.footer("Synthetic beliefs (no --mu/--sigma/--phi): mu ~ N(0, s^2) with s set for mu_dist = 0.50 at E = 19, "
             "phi ~ N(0, 0.48^2), sigma log-normal with mean 1 clamped to the upstream range; causal, self-masked, "
             "row statistics of sequence 0 as upstream.\n"
             "A progress bar shows on stderr when it is a terminal and the sweep runs longer than a second.\n"
             "After the sweep: the analysis (the predictor of docs/study.md from the statistics of the same beliefs, "
             "against the measured values; the smallest K and the largest kappa of SHARP attention) and the verdict.\n");
  CLI11_PARSE(app, argc, argv);
  const DeviceChoice device = choose_device(requested_device);

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
                        {"row_statistics", "sequence 0"},
                        {"heatmap_kappa", map_kappa},
                        {"device", to_string(device.device)},
                        {"device_name", device.name}};
  if (real) {
    settings["files"] = {mu_path, sigma_path, phi_path};
    settings["shape"] = {input.batch, input.tokens, input.embed_dim};
  } else {
    settings["shape"] = {synthetic.batch, synthetic.tokens};
    settings["synthetic"] = {{"mu_scale", synthetic.mu_scale}, {"phi_std", synthetic.phi_std},
                             {"sigma_log_std", synthetic.sigma_log_std}, {"seed", synthetic.seed}};
  }
  std::printf("gauge_attn_study: %s beliefs, B = %d, N = %d, causal, self-masked, kappa %s, device %s (%s)\n",
              real ? "npy" : "synthetic", real ? input.batch : synthetic.batch,
              real ? input.tokens : synthetic.tokens, to_string(scaling), to_string(device.device),
              device.name.c_str());
  std::printf("row_std of sequence 0 as upstream; uniform = the same statistic of uniform attention under the same "
              "mask; entropy = H / ln(allowed keys); nU nM nS = heads UNIFORM / MEDIUM / SHARP\n");
  if (!real)
    std::printf("synthetic targets (upstream note): mu_dist %.2f, phi_std %.2f, sigma mean %.1f; measured in "
                "[DIVERSITY]\n",
                UpstreamDiversity::mu_dist, UpstreamDiversity::phi_std, UpstreamDiversity::sigma_mean);

  if (!out_dir.empty()) make_out_dir(out_dir);

  SweepResult all;
  std::vector<SpinSummary> all_summary;
  ObservedStatistics observed;
  ProgressBar progress(names.size() * sweep_runs(kappas.size()));
  for (const std::string& name : names) {
    SweepResult r;
    const int E = specs::visit(name, [](auto spec) { return decltype(spec)::embed_dim; });
    const Beliefs<double> q = real ? input : synthetic_beliefs(E, synthetic);
    observed.add(name, q.view());  // before the sweep: beliefs it cannot model (N < 2) fail at once
    sweep_spec(name, q.view(), kappas, scaling, r, map_kappa, [&] { progress.step(); }, device.attention);
    const std::vector<SpinSummary> summary = summarise_by_spin(r.heads);
    progress.clear();
    print_spec(name, r, summary);
    std::fflush(stdout);
    all.heads.insert(all.heads.end(), r.heads.begin(), r.heads.end());
    all.diversity.insert(all.diversity.end(), r.diversity.begin(), r.diversity.end());
    all.kl_by_dim.insert(all.kl_by_dim.end(), r.kl_by_dim.begin(), r.kl_by_dim.end());
    all.maps.insert(all.maps.end(), std::make_move_iterator(r.maps.begin()), std::make_move_iterator(r.maps.end()));
    all_summary.insert(all_summary.end(), summary.begin(), summary.end());
  }
  const Analysis analysis = analyse(observed, all, all_summary);
  print_analysis(analysis);
  const std::vector<std::string> lines = verdict(analysis);
  print_verdict(lines);
  if (!out_dir.empty()) {
    write_tables(out_dir, settings, all, all_summary, analysis, lines);
    const bool charts = write_figures(out_dir, all, all_summary, analysis);
    std::printf("\nwrote %s: {heads,summary,diversity,kl_by_dim}.csv, prediction_{run,statistics,kl,kl_by_dim,kl_curve,"
                "row_std,min_sharp_dim,max_sharp_kappa}.csv, study.json, verdict.txt, beta_{spec}_{exact,upstream}.png, "
                "{row_std_vs_kappa,kl_std_vs_dim}.{dat,gp%s}\n", out_dir.c_str(), charts ? ",png" : "");
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gauge_attn_study: error: %s\n", e.what());
  return 1;
}
