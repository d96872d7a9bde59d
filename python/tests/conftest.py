"""Shared helpers of the gauge_attn Python tests: random beliefs and the upstream fixtures."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import gauge_attn

# One thread: the tests call the operator thousands of times on tiny inputs (gradcheck), where the
# library's OpenMP regions cost more than the work, 30 ms instead of 0.2 ms per call on a loaded
# 2-core machine. test_ops.py::test_threads_agree runs the parallel path.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
# The design's shared folder lies beside the checkout, as in CI (the C++ tests read the same files);
# GAUGE_ATTN_FIXTURE_DIR points elsewhere, like the CMake option of that name.
FIXTURES = Path(os.environ.get("GAUGE_ATTN_FIXTURE_DIR", REPO.parent / "shared" / "fixtures" / "upstream_parity_small")).parent


def fixture(case: str, name: str) -> torch.Tensor:
    """shared/fixtures/<case>/<name>.npy as a float64 tensor; a missing file fails the test."""
    path = FIXTURES / case / f"{name}.npy"
    if not path.exists():
        pytest.fail(f"upstream fixture {path} not found: the tests expect ../shared/fixtures beside the checkout "
                    "(or GAUGE_ATTN_FIXTURE_DIR)")
    return torch.from_numpy(np.load(path))


def random_beliefs(spec="upstream", B=2, N=5, full=False, dtype=torch.float64, seed=0):
    """mu ~ N(0, 1), variances ~ U[0.5, 2] or SPD blocks A Aᵀ/K + I/2, phi ~ N(0, 0.5²): away from
    every clamp of the upstream mode, so that the attention is smooth in all its inputs."""
    g = torch.Generator().manual_seed(seed)
    layout = gauge_attn.parse_spec(spec)
    E = layout.embed_dim
    mu = torch.randn(B, N, E, generator=g, dtype=dtype)
    phi = 0.5 * torch.randn(B, N, 3, generator=g, dtype=dtype)
    if not full:
        return mu, 0.5 + 1.5 * torch.rand(B, N, E, generator=g, dtype=dtype), phi
    sigma = torch.zeros(B, N, E, E, dtype=dtype)
    offset = 0
    for heads, l in layout.irreps:
        K = 2 * l + 1
        for _ in range(heads):
            A = torch.randn(B, N, K, K, generator=g, dtype=dtype)
            sigma[..., offset:offset + K, offset:offset + K] = A @ A.transpose(-1, -2) / K + 0.5 * torch.eye(K, dtype=dtype)
            offset += K
    return mu, sigma, phi


def non_contiguous(mu, sigma, phi):
    """The same values behind other strides: (N, B, ...) storage for μ and φ, a transposed block per
    token for Σ (asserted not contiguous)."""
    mu_t = mu.transpose(0, 1).contiguous().transpose(0, 1)
    sigma_t = sigma.transpose(-1, -2).contiguous().transpose(-1, -2)
    phi_t = phi.transpose(0, 1).contiguous().transpose(0, 1)
    assert not (mu_t.is_contiguous() or sigma_t.is_contiguous() or phi_t.is_contiguous())
    return mu_t, sigma_t, phi_t


# Mask options as kl_attention keywords; valid_lengths is a list here (a tensor is made per test).
OPTIONS = {
    "all-keys": dict(),
    "causal-self": dict(causal=True, mask_self=True),
    "window-alibi": dict(window=3, alibi_slope=0.3),
    "causal-window-lengths": dict(causal=True, window=2, valid_lengths=[4, 3]),
}


# Not one of the five compiled specs: its operators are compiled on first use (gauge_attn._build_spec).
JIT_SPEC = "1x0+2x1"


def keywords(options):
    kw = dict(options)
    if "valid_lengths" in kw:
        kw["valid_lengths"] = torch.tensor(kw["valid_lengths"])
    return kw


def kappa_per_head(spec="upstream"):
    H = gauge_attn.parse_spec(spec).num_heads
    return torch.linspace(0.8, 2.4, H, dtype=torch.float64)
