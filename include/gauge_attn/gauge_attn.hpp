// gauge_attn/gauge_attn.hpp: the umbrella header of the CPU library (no CUDA needed).
#pragma once

#include "attention.hpp"
#include "backward.hpp"
#include "belief.hpp"
#include "config.hpp"
#include "diagnostics.hpp"
#include "error.hpp"
#include "gradients.hpp"
#include "irreps.hpp"
#include "kl.hpp"
#include "lifted.hpp"
#include "mask.hpp"
#include "row_statistics.hpp"
#include "so3.hpp"
#include "specs.hpp"
#include "wigner.hpp"
