"""The upstream layer's dense masks (gauge_attn/_masks.py) and the beta / KL matrices (return_matrices).

A dense mask is only a way of writing the kernels' options, so each test compares the masked call
with the call given the options directly (bit-identical: the same kernel runs), and the matrices with
an independent float64 softmax over the returned KL, masked by the same dense mask.
"""

import pytest
import torch
from conftest import random_beliefs

from gauge_attn import MAX_MATRIX_ENTRIES, KLAttention, kl_attention


def upstream_mask(N, causal=False, window=0, B=None):
    """The dense mask the upstream way: ones, times torch.tril for causal (create_attention_mask)."""
    i, j = torch.arange(N).unsqueeze(1), torch.arange(N).unsqueeze(0)
    mask = torch.ones(N, N)
    if causal:
        mask = mask * torch.tril(torch.ones(N, N))
        if window:
            mask = mask * (j > i - window)
    elif window:
        mask = mask * ((i - j).abs() <= window // 2)
    return mask if B is None else mask.expand(B, N, N).clone()


PATTERNS = {"all-keys": dict(), "causal": dict(causal=True), "causal-window": dict(causal=True, window=3),
            "centred-window": dict(window=4)}


@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize("form", ["float-BNN", "bool-NN", "additive"])
def test_a_dense_mask_gives_the_options_result(name, form):
    B, N = 2, 9
    mu, sigma, phi = random_beliefs(B=B, N=N, seed=50)
    options = PATTERNS[name]
    dense = upstream_mask(N, B=B, **options)
    if form == "bool-NN":
        kw = dict(mask=dense[0] != 0)
    elif form == "additive":
        kw = dict(additive_mask=torch.zeros(B, N, N, dtype=torch.float64).masked_fill(dense == 0, float("-inf")))
    else:
        kw = dict(mask=dense)
    want = kl_attention(mu, sigma, phi, 0.8, attention_energy=True, **options)
    got = kl_attention(mu, sigma, phi, 0.8, attention_energy=True, **kw)
    assert torch.equal(got.mu, want.mu) and torch.equal(got.energy, want.energy)


def test_an_alibi_bias_in_the_additive_mask_is_the_alibi_option():
    N = 8
    mu, sigma, phi = random_beliefs(B=1, N=N, seed=51)
    i, j = torch.arange(N).unsqueeze(1), torch.arange(N).unsqueeze(0)
    bias = (-0.25 * (i - j)).double().masked_fill(j > i, float("-inf"))  # causal, logit += slope (i - j)
    want = kl_attention(mu, sigma, phi, 1.1, causal=True, alibi_slope=-0.25)
    got = kl_attention(mu, sigma, phi, 1.1, additive_mask=bias)
    torch.testing.assert_close(got.mu, want.mu, rtol=1e-14, atol=1e-14)  # the slope is fitted: one rounding


def test_the_module_takes_the_mask_in_forward():
    mu, sigma, phi = random_beliefs("more-tensor", B=2, N=7, seed=52)
    layer = KLAttention("more-tensor", 0.7)
    want = kl_attention(mu, sigma, phi, 0.7, "more-tensor", causal=True).mu
    assert torch.equal(layer(mu, sigma, phi, mask=upstream_mask(7, causal=True, B=2)).mu, want)


@pytest.mark.parametrize("mask, match", [
    (torch.ones(3, 3), r"'mask' must be \(B, N, N\) = \(2, 6, 6\) or \(N, N\) = \(6, 6\), got \(3, 3\)"),
    (torch.triu(torch.ones(6, 6)), r"'mask' is not a pattern the kernels compute.*\(i, j\) = \(0, 1\)"),
    (torch.stack([torch.ones(6, 6), torch.tril(torch.ones(6, 6))]), "'mask' differs between sequences.*sequence 1"),
    (torch.triu(torch.ones(6, 6), 1), "leave row 5 no key"),
])
def test_a_mask_the_kernels_cannot_compute_raises_naming_it(mask, match):
    mu, sigma, phi = random_beliefs(B=2, N=6, seed=53)
    with pytest.raises(ValueError, match=match):
        kl_attention(mu, sigma, phi, 1.0, mask=mask)


def test_bad_additive_masks_and_mixed_options_raise():
    mu, sigma, phi = random_beliefs(B=1, N=5, seed=54)
    bias = torch.zeros(5, 5, dtype=torch.float64)
    bias[2, 3] = 0.5  # no slope * (i - j)
    with pytest.raises(ValueError, match=r"'additive_mask' adds 0.5 at \(i, j\) = \(2, 3\).*no ALiBi bias"):
        kl_attention(mu, sigma, phi, 1.0, additive_mask=bias)
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        kl_attention(mu, sigma, phi, 1.0, additive_mask=torch.full((5, 5), float("nan")))
    with pytest.raises(TypeError, match="'additive_mask' must be a floating tensor"):
        kl_attention(mu, sigma, phi, 1.0, additive_mask=torch.zeros(5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="not both"):
        kl_attention(mu, sigma, phi, 1.0, mask=torch.ones(5, 5), causal=True)


@pytest.mark.parametrize("mode", ["exact", "upstream"])
def test_the_matrices_are_the_softmax_of_the_kl(mode):
    B, N, kappa = 2, 8, 0.9
    mu, sigma, phi = random_beliefs(B=B, N=N, seed=55)
    out = kl_attention(mu, sigma, phi, kappa, mode=mode, causal=True, return_matrices=True)
    assert out.beta.shape == out.kl.shape == (B, 9, N, N) and out.beta.dtype == torch.float64
    allowed = torch.tril(torch.ones(N, N, dtype=torch.bool))
    logits = (-out.kl / kappa).masked_fill(~allowed, float("-inf"))
    beta = torch.softmax(logits, dim=-1)
    if mode == "upstream":  # math.md section 6: clamped to >= 1e-8, masked entries too, no renormalisation
        beta = beta.clamp_min(1e-8)
    torch.testing.assert_close(out.beta, beta, rtol=1e-12, atol=1e-15)
    assert bool((out.kl[..., allowed] >= -1e-12).all())  # a KL divergence
    no_matrices = kl_attention(mu, sigma, phi, kappa, mode=mode, causal=True)
    assert len(no_matrices) == 3 and torch.equal(no_matrices.mu, out.mu)


def test_matrices_of_a_large_sequence_are_refused():
    N = int((MAX_MATRIX_ENTRIES / 9) ** 0.5) + 1
    mu, sigma, phi = (t.expand(1, N, -1).clone() for t in random_beliefs(B=1, N=1, seed=56))
    with pytest.raises(ValueError, match="'return_matrices' would hold"):
        kl_attention(mu.float(), sigma.float(), phi.float(), 1.0, return_matrices=True)


def test_opcheck_of_the_matrices_operator():
    mu, sigma, phi = random_beliefs(B=2, N=6, seed=57)
    args = (mu, sigma, phi, torch.full((9,), 0.8, dtype=torch.float64), torch.tensor([6, 4]), "upstream", "exact",
            "pade", True, False, 0, 0.0, False, False, False, True)
    torch.library.opcheck(torch.ops.gauge_attn.attention_matrices.default, args)
