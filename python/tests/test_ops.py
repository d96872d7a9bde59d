"""The operators gauge_attn::kl_attention and its backward: registration (opcheck), gradients
(gradcheck), the exact mode against a float64 re-implementation of (M1)-(M7) in torch, every named
spec, dtypes and strides, and bad input."""

import math

import pytest
import torch
from conftest import JIT_SPEC, OPTIONS, kappa_per_head, keywords, non_contiguous, random_beliefs

import gauge_attn
from gauge_attn import kl_attention

# ---------------------------------------------------------------------------------------------
# A float64 reference of (M1)-(M7) in torch, pair by pair: nothing shared with the C++ library.

def generators(l):
    """(M1): G_a = skew(Re(S (i J_a) S^dagger)) in the tesseral basis [m=0, c1, s1, ..., cl, sl]."""
    K = 2 * l + 1
    m = torch.arange(-l, l + 1, dtype=torch.float64)
    Jp = torch.zeros(K, K, dtype=torch.complex128)
    Jm = torch.zeros(K, K, dtype=torch.complex128)
    for i in range(K):
        mi = i - l
        if mi < l:
            Jp[i, i + 1] = math.sqrt((l - mi) * (l + mi + 1))
        if mi > -l:
            Jm[i, i - 1] = math.sqrt((l + mi) * (l - mi + 1))
    J = [(Jp + Jm) / 2, (Jp - Jm) / 2j, torch.diag(m).to(torch.complex128)]
    S = torch.zeros(K, K, dtype=torch.complex128)
    S[0, l] = 1
    for k in range(1, l + 1):
        p = (-1) ** k
        S[2 * k - 1, l + k], S[2 * k - 1, l - k] = 1 / math.sqrt(2), p / math.sqrt(2)
        S[2 * k, l + k], S[2 * k, l - k] = -1j / math.sqrt(2), 1j * p / math.sqrt(2)
    G = [(S @ (1j * Ja) @ S.conj().T).real for Ja in J]
    return torch.stack([(g - g.T) / 2 for g in G])


def allowed(i, j, n, causal, mask_self, window):
    def base(k):
        in_window = window == 0 or (i - window < k if causal else abs(i - k) <= window // 2)
        return (not causal or k <= i) and in_window
    if not base(j):
        return False
    return not (mask_self and j == i and any(base(k) for k in range(n) if k != i))


def reference(mu, sigma, phi, kappa, spec, valid_lengths=None, causal=False, mask_self=False, window=0,
              alibi_slope=0.0):
    """(M2)-(M7) with Omega_ij = R_i R_j^T, R = matrix_exp(phi . G): mean and covariance messages
    (the layout of sigma) and the energy e_ih = sum_j beta_ij KL_ij."""
    B, N, _ = mu.shape
    full = sigma.dim() == 4
    layout = gauge_attn.parse_spec(spec)
    kappa = kappa.expand(layout.num_heads)
    mu_rows, sigma_rows, energy = [], [], []
    for b in range(B):
        n = N if valid_lengths is None else int(valid_lengths[b])
        mu_b, sigma_b, energy_b = [], [], []
        h, offset = 0, 0
        for heads, l in layout.irreps:
            K = 2 * l + 1
            G = generators(l)
            R = [torch.linalg.matrix_exp(torch.einsum("a,aij->ij", phi[b, i], G)) for i in range(N)]
            for _ in range(heads):
                sl = slice(offset, offset + K)
                m_ = [mu[b, i, sl] for i in range(N)]
                S_ = [sigma[b, i, sl, sl] if full else torch.diag(sigma[b, i, sl]) for i in range(N)]
                mh, sh, eh = [], [], []
                for i in range(N):
                    if i >= n:  # padding: zero outputs
                        mh.append(torch.zeros(K, dtype=mu.dtype))
                        sh.append(torch.zeros(K, K, dtype=mu.dtype))
                        eh.append(torch.zeros((), dtype=mu.dtype))
                        continue
                    kls, logits, means, covs = [], [], [], []
                    for j in range(n):
                        Om = R[i] @ R[j].T
                        mt, St = Om @ m_[j], Om @ S_[j] @ Om.T
                        d = mt - m_[i]
                        St_inv = torch.linalg.inv(St)
                        kl = 0.5 * (torch.trace(St_inv @ S_[i]) + d @ St_inv @ d - K + torch.logdet(St)
                                    - torch.logdet(S_[i]))  # (M4)
                        if allowed(i, j, n, causal, mask_self, window):
                            kls.append(kl)
                            logits.append(-kl / kappa[h] + alibi_slope * (i - j))  # (M5)
                            means.append(mt)
                            covs.append(St + torch.outer(mt, mt))
                    beta = torch.softmax(torch.stack(logits), 0)
                    m = (beta[:, None] * torch.stack(means)).sum(0)  # (M6)
                    mh.append(m)
                    sh.append((beta[:, None, None] * torch.stack(covs)).sum(0) - torch.outer(m, m))  # (M7)
                    eh.append((beta * torch.stack(kls)).sum())
                mu_b.append(torch.stack(mh))
                sigma_b.append(torch.stack(sh))
                energy_b.append(torch.stack(eh))
                h, offset = h + 1, offset + K
        mu_rows.append(torch.cat(mu_b, -1))
        blocks = sigma_b
        sigma_rows.append(torch.stack([torch.block_diag(*[s[i] for s in blocks]) for i in range(N)]) if full
                          else torch.cat([torch.diagonal(s, dim1=-2, dim2=-1) for s in blocks], -1))
        energy.append(torch.stack(energy_b))
    return torch.stack(mu_rows), torch.stack(sigma_rows), torch.stack(energy)


def test_reference_generators_are_those_of_math_md():
    assert torch.equal(generators(1)[0], torch.tensor([[0, 0, -1], [0, 0, 0], [1, 0, 0]], dtype=torch.float64))
    assert torch.allclose(generators(2)[2, 3, 4], torch.tensor(-2, dtype=torch.float64))


@pytest.mark.parametrize("spec", ["upstream", "higher-rank", JIT_SPEC])
@pytest.mark.parametrize("full", [False, True], ids=["diagonal", "full"])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_exact_mode_matches_the_pairwise_reference(spec, full, name):
    """Forward to 1e-10 and the gradients of L = <w, outputs> to 1e-8 against autograd through the
    reference: the exact backward (G1-G13) differentiates what the reference computes."""
    mu, sigma, phi = random_beliefs(spec, B=2, N=4, full=full, seed=1)
    kappa = kappa_per_head(spec)
    kw = keywords(OPTIONS[name])
    inputs = [t.clone().requires_grad_() for t in (mu, sigma, phi, kappa)]
    out = kl_attention(*inputs, spec, covariance_message=True, attention_energy=True, **kw)
    ref_inputs = [t.clone().requires_grad_() for t in (mu, sigma, phi, kappa)]
    ref = reference(*ref_inputs, spec, **kw)
    for got, want in zip(out, ref):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)

    g = torch.Generator().manual_seed(2)
    weights = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in ref]
    loss = sum((w * o).sum() for w, o in zip(weights, out))
    ref_loss = sum((w * o).sum() for w, o in zip(weights, ref))
    grads = torch.autograd.grad(loss, inputs)
    ref_grads = torch.autograd.grad(ref_loss, ref_inputs)
    if full:  # the library returns the symmetric gradient of each SPD block, zero outside the blocks
        ref_grads = list(ref_grads)
        ref_grads[1] = 0.5 * (ref_grads[1] + ref_grads[1].transpose(-1, -2))
    for name_, got, want in zip(("mu", "sigma", "phi", "kappa"), grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10, msg=lambda m: f"grad of {name_}: {m}")


# ---------------------------------------------------------------------------------------------
# gradcheck: central differences of the operator itself, in both modes.

@pytest.mark.parametrize("mode", ["exact", "upstream"])
@pytest.mark.parametrize("full", [False, True], ids=["diagonal", "full"])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_gradcheck(mode, full, name):
    mu, sigma, phi = random_beliefs(B=2, N=4, full=full, seed=3)
    kw = keywords(OPTIONS[name])

    def attention(mu, sigma, phi, kappa):
        if full:  # perturb symmetrically: the operator reads symmetric blocks
            sigma = 0.5 * (sigma + sigma.transpose(-1, -2))
        return tuple(kl_attention(mu, sigma, phi, kappa, mode=mode, covariance_message=True, attention_energy=True,
                                  **kw))

    inputs = tuple(t.clone().requires_grad_() for t in (mu, sigma, phi, kappa_per_head()))
    # Full covariances have B·N·E² entries: the fast mode checks random projections of the Jacobian.
    assert torch.autograd.gradcheck(attention, inputs, fast_mode=full)


def test_gradcheck_of_a_spec_built_just_in_time():
    mu, sigma, phi = random_beliefs(JIT_SPEC, B=2, N=4, seed=15)
    inputs = tuple(t.clone().requires_grad_() for t in (mu, sigma, phi, kappa_per_head(JIT_SPEC)))
    assert torch.autograd.gradcheck(
        lambda *x: tuple(kl_attention(*x, JIT_SPEC, mode="upstream", causal=True, covariance_message=True,
                                      attention_energy=True)), inputs)


def test_gradcheck_one_kappa_for_all_heads():
    mu, sigma, phi = random_beliefs(B=1, N=4, seed=4)
    kappa = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: kl_attention(mu, sigma, phi, k, causal=True).mu, (kappa,))


# ---------------------------------------------------------------------------------------------
# Registration: schema, fake kernels, autograd, torch.compile's view of both operators.

def op_arguments(spec="upstream", full=False, mode="exact", covariance_message=True, attention_energy=True):
    mu, sigma, phi = random_beliefs(spec, B=2, N=4, full=full, seed=5)
    args = [t.requires_grad_() for t in (mu, sigma, phi, kappa_per_head(spec))]
    return (*args, torch.tensor([4, 3]), gauge_attn.parse_spec(spec).name, mode, "pade", True, True, 0, 0.1, False,
            covariance_message, attention_energy, True)


@pytest.mark.parametrize("case", [dict(), dict(full=True), dict(mode="upstream"), dict(full=True, mode="upstream"),
                                  dict(covariance_message=False, attention_energy=False), dict(spec=JIT_SPEC)],
                         ids=["exact-diagonal", "exact-full", "upstream-diagonal", "upstream-full", "mean-only",
                              "built-just-in-time"])
def test_opcheck(case):
    args = op_arguments(**case)
    ops = gauge_attn._operators(gauge_attn.parse_spec(case.get("spec", "upstream")))
    torch.library.opcheck(ops.kl_attention.default, args)
    outputs = ops.kl_attention(*args)
    grads = tuple(torch.randn_like(o) for o in outputs[:3])
    torch.library.opcheck(ops.kl_attention_backward.default,
                          (*grads, *(o.detach() for o in outputs), *(a.detach() if isinstance(a, torch.Tensor) else a
                                                                     for a in args)))


def test_a_build_just_in_time_holds_its_spec_alone():
    spec = gauge_attn.parse_spec(JIT_SPEC)
    assert (spec.name, spec.namespace, spec.embed_dim) == ("1x0+2x1", "gauge_attn_1x0_2x1", 7)
    args = list(op_arguments(JIT_SPEC))
    args[5] = "upstream"
    with pytest.raises(ValueError, match="'spec' is 'upstream', which this operator library does not hold "
                                         "\\(its CPU kernels: 1x0\\+2x1;"):
        gauge_attn._operators(spec).kl_attention(*args)


def test_a_named_spec_left_out_of_the_build_is_built_just_in_time(monkeypatch):
    """GAUGE_ATTN_SPECS=upstream at build time: 'scaled' then has operators of its own, like any spec."""
    monkeypatch.setattr(gauge_attn._build_config, "SPECS", ("upstream",))
    assert gauge_attn.parse_spec("upstream").namespace == "gauge_attn"
    scaled = gauge_attn.parse_spec("10x0+10x1+8x2+4x3")
    assert (scaled.name, scaled.namespace) == ("scaled", "gauge_attn_10x0_10x1_8x2_4x3")


def test_every_compiled_spec_has_the_layout_of_NAMED_SPECS():
    for name in gauge_attn._build_config.SPECS:
        text = gauge_attn.NAMED_SPECS[name]
        layout = gauge_attn.parse_spec(text)
        assert layout.name == name
        mu, sigma, phi = random_beliefs(name, B=1, N=3, dtype=torch.float32)
        out = kl_attention(mu, sigma, phi, 1.0, text, attention_energy=True)
        assert out.energy.shape == (1, layout.num_heads, 3)
        # The C++ kernel itself (no Python check in between) knows E.
        wrong = (torch.zeros(1, 3, layout.embed_dim + 1), torch.ones(1, 3, layout.embed_dim + 1), phi,
                 torch.ones(1), None, name, "exact", "pade", False, False, 0, 0.0, False, False, False, True)
        with pytest.raises(ValueError, match="embed_dim"):
            torch.ops.gauge_attn.kl_attention(*wrong)


# ---------------------------------------------------------------------------------------------
# dtypes, strides, padding.

def test_float32_agrees_with_float64():
    mu, sigma, phi = random_beliefs(B=2, N=6, seed=6)
    kw = dict(causal=True, covariance_message=True, attention_energy=True)
    out64 = kl_attention(mu, sigma, phi, 0.9, **kw)
    out32 = kl_attention(mu.float(), sigma.float(), phi.float(), 0.9, **kw)
    for a, b in zip(out32, out64):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5)
    mu32 = mu.float().requires_grad_()
    kl_attention(mu32, sigma.float(), phi.float(), 0.9, causal=True).mu.sum().backward()
    assert mu32.grad.dtype == torch.float32


def test_non_contiguous_inputs_give_the_contiguous_result():
    mu, sigma, phi = random_beliefs(B=2, N=5, full=True, seed=7)
    mu_t, sigma_t, phi_t = non_contiguous(mu, sigma, phi)
    kw = dict(causal=True, covariance_message=True)
    for a, b in zip(kl_attention(mu_t, sigma_t, phi_t, 1.2, **kw), kl_attention(mu, sigma, phi, 1.2, **kw)):
        assert (a is None and b is None) or torch.equal(a, b)
    mu_t.requires_grad_()
    kl_attention(mu_t, sigma_t, phi_t, 1.2, **kw).mu.sum().backward()
    assert mu_t.grad.shape == mu.shape


def test_threads_agree():
    """The library's OpenMP loops give the single-threaded result (conftest runs on one thread)."""
    mu, sigma, phi = random_beliefs(B=3, N=70, seed=12)  # several 64-row blocks per head
    kw = dict(causal=True, covariance_message=True, attention_energy=True)
    inputs = [t.clone().requires_grad_() for t in (mu, sigma, phi)]
    serial = kl_attention(*inputs, 0.8, **kw)
    serial_grads = torch.autograd.grad(sum(o.sum() for o in serial), inputs)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        parallel = kl_attention(*inputs, 0.8, **kw)
        parallel_grads = torch.autograd.grad(sum(o.sum() for o in parallel), inputs)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip((*parallel, *parallel_grads), (*serial, *serial_grads)):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_double_backward_raises():
    mu, sigma, phi = random_beliefs(B=1, N=3, seed=13)
    mu.requires_grad_()
    grad, = torch.autograd.grad(kl_attention(mu, sigma, phi, 1.0).mu.square().sum(), mu, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        grad.sum().backward()


def test_padded_tokens_have_zero_outputs_and_gradients():
    mu, sigma, phi = random_beliefs(B=2, N=5, seed=8)
    mu.requires_grad_()
    out = kl_attention(mu, sigma, phi, 1.0, valid_lengths=torch.tensor([5, 2]), attention_energy=True)
    assert torch.all(out.mu[1, 2:] == 0) and torch.all(out.energy[1, :, 2:] == 0)
    (out.mu.sum() + out.energy.sum()).backward()
    assert torch.all(mu.grad[1, 2:] == 0) and torch.any(mu.grad[1, :2] != 0)


# ---------------------------------------------------------------------------------------------
# Bad input: a Python error that names the argument.

@pytest.mark.parametrize("change, error, argument", [
    (dict(mu=torch.zeros(2, 4, dtype=torch.float64)), ValueError, "'mu'"),
    (dict(mu=torch.zeros(2, 4, 20, dtype=torch.float64)), ValueError, "'mu' has E = 20"),
    (dict(mu=torch.zeros(2, 4, 19, dtype=torch.int64)), TypeError, "'mu'"),
    (dict(sigma=torch.ones(2, 4, 19)), TypeError, "'sigma'"),
    (dict(sigma=torch.ones(2, 4, 18, dtype=torch.float64)), ValueError, "'sigma'"),
    (dict(phi=torch.zeros(2, 4, 4, dtype=torch.float64)), ValueError, "'phi'"),
    (dict(kappa=torch.ones(3, dtype=torch.float64)), ValueError, "'kappa'"),
    (dict(kappa=-1.0), ValueError, "'kappa'"),
    (dict(valid_lengths=torch.tensor([1])), ValueError, "'valid_lengths'"),
    (dict(valid_lengths=torch.tensor([5, 1])), ValueError, "'valid_lengths'"),
    (dict(mode="fast"), ValueError, "'mode'"),
    (dict(exponential="taylor2"), ValueError, "'exponential'"),
    (dict(sigma=-torch.ones(2, 4, 19, dtype=torch.float64)), ValueError, "'sigma'"),
    (dict(spec="upstreem"), ValueError, "'spec'"),
    (dict(spec="1x0+1x25"), ValueError, "'spec'"),
])
def test_bad_input_names_the_argument(change, error, argument):
    mu, sigma, phi = random_beliefs(B=2, N=4, seed=9)
    kw = dict(mu=mu, sigma=sigma, phi=phi, kappa=1.0)
    kw.update(change)
    with pytest.raises(error, match=argument):
        kl_attention(**kw)


def test_direct_operator_calls_are_checked_in_cpp():
    mu, sigma, phi = random_beliefs(B=1, N=3, seed=10)
    args = [mu, sigma, phi[:, :2], torch.ones(1), None, "upstream", "exact", "pade", False, False, 0, 0.0, False,
            False, False, True]
    with pytest.raises(ValueError, match="'phi'"):
        torch.ops.gauge_attn.kl_attention(*args)
    args[2], args[6] = phi, "fast"
    with pytest.raises(ValueError, match="'mode'"):
        torch.ops.gauge_attn.kl_attention(*args)
