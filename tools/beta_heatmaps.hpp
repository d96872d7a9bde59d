// beta_heatmaps.hpp: the attention maps of a sweep as PNG heatmaps.
#pragma once

#include <gauge_attn/study/study.hpp>

#include <string>

namespace gauge_attn_study {

/// Writes beta_<spec>_<mode>.png into `dir`: β of every head of sequence 0, one line of heatmaps
/// per irrep of the spec, cell (i, j) coloured by n_i·β_ij, the weight relative to uniform
/// attention over the n_i allowed keys of row i (1: uniform), from 0.1 to 10 on a log scale;
/// masked pairs grey.
void write_beta_heatmap(const std::string& dir, const gauge_attn::study::AttentionMaps& maps);

}  // namespace gauge_attn_study
