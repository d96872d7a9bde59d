"""mode="upstream" against the upstream layer's own outputs and autograd gradients
(shared/fixtures/upstream_parity_small and upstream_grad_small; their READMEs give the cases)."""

import pytest
import torch
from conftest import fixture

from gauge_attn import kl_attention

# case -> (full covariance, mask_self, exponential, covariance message); all causal, kappa = 0.43.
CASES = {
    "diag_exact": (False, True, "pade", True),
    "full_exact": (True, False, "pade", True),
    "diag_taylor": (False, True, "taylor4", False),
}
# The diagonal cases are upstream's float64 arithmetic step for step; the full case differs by the
# upstream CPU path's own tiny regularisation (docs/upstream-compatibility.md measures 1.8e-7 in mu).
FORWARD_TOLERANCE = {"diag_exact": 1e-10, "full_exact": 1e-5, "diag_taylor": 1e-10}


def relative_error(a, b):
    return float((a.detach() - b).norm() / b.norm())


def run(folder, case, kappa=0.43, requires_grad=False):
    full, mask_self, exponential, covariance = CASES[case]
    inputs = [fixture(folder, name).clone().requires_grad_(requires_grad)
              for name in ("mu", "sigma_full" if full else "sigma_diag", "phi")]
    kappa = torch.tensor([kappa], dtype=torch.float64, requires_grad=requires_grad)
    out = kl_attention(*inputs, kappa, "upstream", mode="upstream", exponential=exponential, causal=True,
                       mask_self=mask_self, covariance_message=covariance)
    return out, (*inputs, kappa)


@pytest.mark.parametrize("case", list(CASES))
def test_forward_matches_the_parity_fixture(case):
    out, _ = run("upstream_parity_small", case)
    torch.testing.assert_close(out.mu, fixture("upstream_parity_small", f"{case}_mu_out"), rtol=0,
                               atol=FORWARD_TOLERANCE[case])
    if CASES[case][3]:
        torch.testing.assert_close(out.sigma, fixture("upstream_parity_small", f"{case}_sigma_out"), rtol=0,
                                   atol=FORWARD_TOLERANCE[case])


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_the_gradient_fixture(case):
    folder = "upstream_grad_small"
    out, inputs = run(folder, case, requires_grad=True)
    assert relative_error(out.mu, fixture(folder, f"{case}_mu_out")) < FORWARD_TOLERANCE[case]
    full, _, _, covariance = CASES[case]
    if covariance:
        assert relative_error(out.sigma, fixture(folder, f"{case}_sigma_out")) < FORWARD_TOLERANCE[case]
    if full:
        pytest.skip("full_exact: upstream computes this case's KL outside autograd (its CPU path, in Numba), so "
                    "the fixture's gradients treat the attention weights as constants and are not the derivative "
                    "of its loss; the forward is checked above, the gradients by gradcheck in test_ops.py")
    loss = (fixture(folder, "w_mu") * out.mu).sum()
    if covariance:
        loss = loss + (fixture(folder, "w_sigma_diag") * out.sigma).sum()
    torch.testing.assert_close(loss, fixture(folder, f"{case}_loss"), rtol=1e-12, atol=0)
    grads = torch.autograd.grad(loss, inputs)
    # Float64 autograd through the same clamps and exponentials: 1e-8 relative (the fixture's README).
    for name, grad in zip(("mu", "sigma", "phi"), grads):
        assert relative_error(grad, fixture(folder, f"{case}_grad_{name}")) < 1e-8, name
    # The fixture's dL/dkappa is a central difference (h = 1e-6 kappa): good to ~1e-6 at best.
    assert relative_error(grads[3], fixture(folder, f"{case}_grad_kappa").reshape(1)) < 1e-5
