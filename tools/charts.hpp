// charts.hpp: the study's charts as gnuplot data (.dat) and scripts (.gp), drawn to PNG by running
// gnuplot on them in the output directory (any gnuplot 5 redraws them there by hand).
#pragma once

#include <gauge_attn/study/study.hpp>
#include <gauge_attn/study/study_analysis.hpp>

#include <string>
#include <utility>
#include <vector>

namespace gauge_attn_study {

/// row_std_vs_kappa.{dat,gp}: a panel per spec of the mean row_std of the heads of each ℓ against κ
/// (log axis), exact and upstream, with the uniform baseline and the SHARP threshold 0.10 as lines;
/// the exact mode's predicted row_std of `predicted` (include/gauge_attn/study/study_analysis.hpp)
/// as crosses when given. Returns the script's file name.
std::string write_row_std_chart(const std::string& dir, const std::vector<gauge_attn::study::SpinSummary>& summary,
                                const std::vector<gauge_attn::study::RowComparison>& predicted = {});

/// kl_std_vs_dim.{dat,gp}: the pooled KL std of the heads of each dimension K against K (log K axis),
/// a series per spec and mode. `predicted`, (K, KL std) points of an analytic prediction (the
/// predictor of include/gauge_attn/study/predictor.hpp), is drawn as a line when given. Returns the
/// script's file name.
std::string write_kl_std_chart(const std::string& dir, const std::vector<gauge_attn::study::KlByDim>& rows,
                               const std::vector<std::pair<int, double>>& predicted = {});

}  // namespace gauge_attn_study
