"""gauge_attn.KLAttention: the functional result, learnable temperatures, torch.compile, bad arguments."""

import pytest
import torch
from conftest import random_beliefs

import gauge_attn
from gauge_attn import KLAttention, kl_attention


def test_module_gives_the_functional_result():
    mu, sigma, phi = random_beliefs(B=2, N=6, full=True, seed=20)
    kappa = torch.linspace(0.5, 1.5, 9, dtype=torch.float64)
    layer = KLAttention("5x0+3x1+1x2", kappa, causal=True, window=4, alibi_slope=0.1, covariance_message=True,
                        attention_energy=True)
    lengths = torch.tensor([6, 4])
    got = layer(mu, sigma, phi, lengths)
    want = kl_attention(mu, sigma, phi, kappa, "upstream", valid_lengths=lengths, causal=True, window=4,
                        alibi_slope=0.1, covariance_message=True, attention_energy=True)
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert "spec='upstream' (5x0+3x1+1x2)" in repr(layer)
    assert torch.equal(layer.kappa, kappa) and not list(layer.parameters())


def test_mean_only_by_default():
    mu, sigma, phi = random_beliefs(B=1, N=3, seed=21)
    out = KLAttention("upstream")(mu, sigma, phi)
    assert out.mu.shape == mu.shape and out.sigma is None and out.energy is None


def test_learnable_kappa_is_trained_through_log_kappa():
    mu, sigma, phi = random_beliefs("more-tensor", B=2, N=5, seed=22)
    layer = KLAttention("more-tensor", [0.5] * 8, learn_kappa=True, causal=True, attention_energy=True).double()
    assert [name for name, _ in layer.named_parameters()] == ["log_kappa"]
    torch.testing.assert_close(layer.kappa, torch.full((8,), 0.5, dtype=torch.float64))
    out = layer(mu, sigma, phi)
    (out.mu.square().sum() + out.energy.sum()).backward()
    grad = layer.log_kappa.grad
    assert grad.shape == (8,) and torch.all(grad != 0)
    # d/d(log kappa) = kappa d/d(kappa): the same number the operator gives for kappa itself.
    kappa = torch.full((8,), 0.5, dtype=torch.float64, requires_grad=True)
    ref = kl_attention(mu, sigma, phi, kappa, "more-tensor", causal=True, attention_energy=True)
    (ref.mu.square().sum() + ref.energy.sum()).backward()
    torch.testing.assert_close(grad, 0.5 * kappa.grad)
    before = layer.log_kappa.detach().clone()
    torch.optim.SGD(layer.parameters(), lr=0.1).step()
    assert not torch.equal(layer.log_kappa, before)


@pytest.mark.parametrize("spec, mode", [("upstream", "exact"), ("upstream", "upstream"), ("1x0+2x1", "exact")])
def test_torch_compile_fullgraph_gives_the_eager_result(spec, mode):
    mu, sigma, phi = random_beliefs(spec, B=2, N=5, seed=23)
    layer = KLAttention(spec, 0.7, learn_kappa=True, mode=mode, causal=True, mask_self=True,
                        covariance_message=True, attention_energy=True).double()
    compiled = torch.compile(layer, fullgraph=True)

    def run(module):
        inputs = [t.clone().requires_grad_() for t in (mu, sigma, phi)]
        out = module(*inputs)
        loss = out.mu.sum() + out.sigma.square().sum() + out.energy.sum()
        return (*out, *torch.autograd.grad(loss, (*inputs, layer.log_kappa)))

    for a, b in zip(run(compiled), run(layer)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("arguments, error, match", [
    (dict(spec="upstream", kappa=[1.0, 2.0]), ValueError, "'kappa'"),
    (dict(spec="upstream", kappa=0.0), ValueError, "'kappa'"),
    (dict(spec="upstream", mode="approximate"), ValueError, "'mode'"),
    (dict(spec="2x25"), ValueError, "'spec'"),
    (dict(spec="l0x5"), ValueError, "'spec'"),
])
def test_bad_arguments(arguments, error, match):
    with pytest.raises(error, match=match):
        KLAttention(**arguments)


def test_the_upstream_irrep_spec_is_accepted():
    layer = KLAttention([("ℓ0", 5, 1), ("ℓ1", 3, 3), ("ℓ2", 1, 5)])
    assert layer.spec == gauge_attn.parse_spec("upstream")
    with pytest.raises(ValueError, match="'spec'"):
        KLAttention([("ℓ0", 5, 2)])


def test_wrong_embedding_width_for_the_spec():
    mu, sigma, phi = random_beliefs("single-l9", B=1, N=3)
    with pytest.raises(ValueError, match="'mu' has E = 19 but spec 'higher-rank'"):
        KLAttention("higher-rank")(mu, sigma, phi)
    assert gauge_attn.parse_spec("1x9").embed_dim == 19
