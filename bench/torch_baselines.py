#!/usr/bin/env python3
"""PyTorch baselines for gauge-equivariant KL attention: what users do today, timed on one GPU.

Equation numbers (M1)...(M9) and section numbers refer to shared/design/math.md; docs/maths.md
explains them. Every workload is causal with kappa = 1 for every head and random beliefs
(mu ~ N(0, 1), diagonal variances ~ U[0.5, 2], frames phi ~ N(0, 0.5^2), fixed seed).

Methods, each producing the mean message m (B, N, E), heads concatenated in spec order:

  upstream          the upstream way (math.md section 6, diagonal mode), one head at a time:
                    Omega_ij = exp(phi_i.G) exp(-phi_j.G) materialised as (B, N, N, K, K),
                    transported means, the diagonal-approximation KL, softmax, beta >= 1e-8, message.
                    fp32. Times the whole forward.
  factorised_torch  the exact factorisation (M8)/(M9) with fp32 PyTorch ops (TF32 off): lift to
                    a = [sym(S + nu nu^T), nu, 1], b = -(1/2 kappa)[sym2(Lambda), -2 Lambda nu, ...],
                    scores = a @ b^T as (B, N, N) per head, causal softmax, w = beta @ nu,
                    m = R (w + nu_mean). Times the whole forward, lift included. On W2c it also
                    returns the covariance message (M9), the diagonal of Sigma^agg (B, N, E).
  sdpa_bf16         torch.nn.functional.scaled_dot_product_attention in bf16 on the lifted features
                    (q = a, k = b, v = nu, zero-padded to a multiple of 8, is_causal, scale = 1),
                    one call per l group. Times only the attention calls (lift and rotation excluded).

Backward: each method is also timed through autograd, forward and backward in one iteration, for
L = sum(w_mu * m) (+ sum(w_sigma * Sigma^agg) on W2c) with fixed random weights, the weights given
to autograd as the output gradients. upstream and factorised_torch: gradients with respect to mu,
sigma, phi and kappa (one value per head); sdpa_bf16: with respect to its q, k and v only.

Usage:
  python3 bench/torch_baselines.py --out results.json                 # all workloads, on cuda
  python3 bench/torch_baselines.py --workloads W1,W2 --out r.json
  python3 bench/torch_baselines.py --no-backward --out r.json         # forward timings only
  python3 bench/torch_baselines.py --self-test [--device cpu]         # correctness checks only
  python3 bench/torch_baselines.py --device cpu --small --out r.json  # N = 64, B = 2 everywhere
"""

import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------
# Specs and workloads (math.md section 1)
# --------------------------------------------------------------------------------------------

SPECS = {  # name -> [(l, heads)], in spec order; dim = 2l + 1
    "upstream": [(0, 5), (1, 3), (2, 1)],
    "more-tensor": [(0, 2), (1, 2), (2, 4)],
    "higher-rank": [(1, 4), (2, 3), (3, 2)],
    "scaled": [(0, 10), (1, 10), (2, 8), (3, 4)],
    "single-l9": [(9, 1)],
    "l8-2xl4": [(8, 1), (4, 2)],  # wide heads (bench/gpu_forward.cu's W6)
}

class Workload(NamedTuple):
    spec: str
    B: int
    N: int
    seed_offset: int  # the beliefs are drawn with --seed + seed_offset
    covariance: bool = False  # the covariance message too (factorised_torch only)
    halve_n_on_oom: bool = False  # on OOM the upstream way is tried again at N / 2, down to 256


WORKLOADS = {
    "W1": Workload("upstream", 24, 64, 1),
    "W2": Workload("upstream", 8, 4096, 2),
    "W3": Workload("higher-rank", 8, 4096, 3),
    "W4": Workload("scaled", 4, 8192, 4),
    "W5": Workload("upstream", 1, 65536, 5),
    "W2c": Workload("upstream", 8, 4096, 2, covariance=True),  # W2's beliefs
    "U1": Workload("upstream", 1, 4096, 6, halve_n_on_oom=True),  # a size the upstream backward fits
    "W6": Workload("l8-2xl4", 8, 4096, 7),
}

METHODS = ("upstream", "factorised_torch", "sdpa_bf16")

TIMED_REGION = {
    "upstream": "whole forward, heads one after another: matrix_exp of +phi.G and -phi.G, "
                "Omega (B,N,N,K,K) by einsum, transported means, diagonal KL (math.md section 6), "
                "mask, softmax, clamp, message. Causal mask prebuilt (untimed).",
    "factorised_torch": "whole forward: Wigner-D by matrix_exp (fp64, cast to fp32), pull-back, "
                        "centring, packing of a and b (M8), per head scores (B,N,N) = a @ b^T, mask, "
                        "softmax, beta @ nu (on W2c beta @ [nu, sym(S + nu nu^T)]), final rotation (M9) "
                        "(on W2c also the diagonal of R C R^T). Causal mask prebuilt (untimed).",
    "sdpa_bf16": "only the scaled_dot_product_attention calls (one per l group, bf16, is_causal, "
                 "scale=1); the lift, padding, bf16 cast and final rotation are excluded.",
}

TIMED_REGION_BACKWARD = {
    "upstream": "one iteration = the forward above recorded by autograd (mu, sigma, phi and the per-head "
                "kappa as fp32 leaves requiring grad), then torch.autograd.grad of m with grad_outputs "
                "w_mu (the gradient of L = sum(w_mu * m)) into mu, sigma, phi, kappa: through the "
                "message, clamp, softmax, diagonal KL, Omega einsums and both fp32 matrix_exp. The "
                "backward median times the autograd.grad call alone; forward_backward the whole iteration.",
    "factorised_torch": "one iteration = the forward above recorded by autograd (mu, sigma, phi and the "
                        "per-head kappa as fp32 leaves requiring grad), then torch.autograd.grad into mu, "
                        "sigma, phi, kappa with grad_outputs w_mu (and w_sigma for the covariance message "
                        "on W2c): through the rotation, beta @ values, softmax, scores, the lift and the "
                        "fp64 matrix_exp of the Wigner-D. The backward median times the autograd.grad "
                        "call alone; forward_backward the whole iteration.",
    "sdpa_bf16": "one iteration = the scaled_dot_product_attention calls on bf16 q, k, v leaves requiring "
                 "grad (prepared untimed, as for the forward), then torch.autograd.grad of the outputs with "
                 "random bf16 grad_outputs into q, k, v; the lift and its backward are excluded.",
}


def spec_string(spec):
    return ",".join(f"l{l}x{h}" for l, h in SPECS[spec])


def heads_of(spec):
    """[(l, offset, K)] per head, in spec order (math.md section 1)."""
    out, off = [], 0
    for l, h in SPECS[spec]:
        K = 2 * l + 1
        for _ in range(h):
            out.append((l, off, K))
            off += K
    return out


def groups_of(spec):
    """[(l, heads, offset, K)] per l group; each group is a contiguous slice of the embedding."""
    out, off = [], 0
    for l, h in SPECS[spec]:
        K = 2 * l + 1
        out.append((l, h, off, K))
        off += h * K
    return out


def embed_dim(spec):
    return sum(h * (2 * l + 1) for l, h in SPECS[spec])


# --------------------------------------------------------------------------------------------
# Generators (M1), built exactly as math.md section 2 describes
# --------------------------------------------------------------------------------------------

def generators_np(l):
    """(3, K, K) float64: G_a = skew(Re(S (i J_a) S^dagger)), a = x, y, z (M1)."""
    K = 2 * l + 1
    Jz = np.zeros((K, K), complex)
    Jp = np.zeros((K, K), complex)
    Jm = np.zeros((K, K), complex)
    for r in range(K):
        m = r - l
        Jz[r, r] = m
        if m < l:
            Jp[r, r + 1] = math.sqrt((l - m) * (l + m + 1))
        if m > -l:
            Jm[r, r - 1] = math.sqrt((l + m) * (l - m + 1))
    Jx = (Jp + Jm) / 2
    Jy = (Jp - Jm) / 2j
    S = np.zeros((K, K), complex)
    S[0, l] = 1
    r2 = 1 / math.sqrt(2)
    for m in range(1, l + 1):
        p = (-1) ** m
        c, s = 2 * m - 1, 2 * m
        S[c, l + m] = r2
        S[c, l - m] = p * r2
        S[s, l + m] = -1j * r2
        S[s, l - m] = 1j * p * r2
    G = []
    for J in (Jx, Jy, Jz):
        X = (S @ (1j * J) @ S.conj().T).real
        G.append((X - X.T) / 2)
    return np.stack(G)


_GEN_CACHE = {}


def generators_t(l, dtype, device):
    key = (l, dtype, str(device))
    if key not in _GEN_CACHE:
        _GEN_CACHE[key] = torch.tensor(generators_np(l), dtype=dtype, device=device)
    return _GEN_CACHE[key]


def wigner_d(phi, l):
    """R = exp(phi.G) (M2) by matrix_exp in float64: phi (..., 3) -> (..., K, K) float64."""
    G = generators_t(l, torch.float64, phi.device)
    A = torch.einsum("...a,akl->...kl", phi.to(torch.float64), G)
    return torch.linalg.matrix_exp(A)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def random_beliefs(spec, B, N, seed, device, dtype=torch.float32):
    rng = np.random.default_rng(seed)
    E = embed_dim(spec)
    mu = rng.standard_normal((B, N, E))
    sigma = rng.uniform(0.5, 2.0, (B, N, E))
    phi = 0.5 * rng.standard_normal((B, N, 3))
    cv = lambda x: torch.tensor(x, dtype=dtype, device=device)
    return cv(mu), cv(sigma), cv(phi)


def kappa_per_head(spec, value, device, dtype=torch.float32):
    """(H,) one temperature per head, all equal to value (the upstream uses one kappa for all)."""
    return torch.full((len(heads_of(spec)),), value, dtype=dtype, device=device)


def random_weights(shapes, seed, device, dtype=torch.float32):
    """Fixed N(0, 1) weights of the given shapes: the output gradients of the backward timings."""
    rng = np.random.default_rng(seed)
    return [torch.tensor(rng.standard_normal(s), dtype=dtype, device=device) for s in shapes]


def causal_mask(N, device):
    """(N, N) bool, True where j > i (masked)."""
    return torch.ones(N, N, dtype=torch.bool, device=device).triu_(1)


# --------------------------------------------------------------------------------------------
# (a) upstream: per head, Omega as (B, N, N, K, K) (math.md section 6, diagonal mode)
# --------------------------------------------------------------------------------------------

def upstream_head(mu, sigma, phi, G, kappa, mask, return_kl=False):
    """mu, sigma (B, N, K); phi (B, N, 3); G (3, K, K) in the working dtype; kappa a scalar (tensor).

    Returns m (B, N, K)."""
    K = mu.shape[-1]
    A = torch.einsum("bna,akl->bnkl", phi, G)  # (B, N, K, K)
    exp_pos = torch.linalg.matrix_exp(A)
    exp_neg = torch.linalg.matrix_exp(-A)
    del A
    omega = torch.einsum("bikl,bjlm->bijkm", exp_pos, exp_neg)  # (B, N, N, K, K)  (M3)
    del exp_pos, exp_neg
    mu_t = torch.einsum("bijkl,bjl->bijk", omega, mu)  # (B, N, N, K) transported means
    sig = sigma.clamp_min(1e-6)
    sig_t = torch.einsum("bijkl,bjl->bijk", omega * omega, sig).clamp_min(1e-6)  # diag of Omega Sigma_j Omega^T
    del omega
    sig_i = sig[:, :, None, :]
    d = mu_t - mu[:, :, None, :]
    kl = 0.5 * (sig_i / sig_t + d * d / sig_t - 1.0 + torch.log(sig_t) - torch.log(sig_i)).sum(-1)  # (B, N, N)
    del d, sig_t
    kl = kl.clamp_min(0.0)
    logits = (-kl / kappa).masked_fill(mask, float("-inf"))
    beta = torch.softmax(logits, dim=-1).clamp_min(1e-8)  # no renormalisation (math.md section 6)
    del logits
    m = torch.einsum("bij,bijk->bik", beta, mu_t)  # (M6)
    if return_kl:
        return m, kl
    return m


def upstream_forward(spec, mu, sigma, phi, kappa, mask, progress=None):
    """(a): (B, N, E), one head at a time; kappa (H,). progress (a dict), if given, names the head in hand."""
    outs = []
    for h, (l, off, K) in enumerate(heads_of(spec)):
        if progress is not None:
            progress["at"] = f"head {h} (l{l})"
        G = generators_t(l, mu.dtype, mu.device)
        outs.append(upstream_head(mu[..., off:off + K], sigma[..., off:off + K], phi, G, kappa[h], mask))
    return torch.cat(outs, dim=-1)


# --------------------------------------------------------------------------------------------
# (b) the factorisation (M8)/(M9) with PyTorch ops
# --------------------------------------------------------------------------------------------

def lift_group(mu_g, sig_g, R, kappa):
    """One l group lifted (M8). mu_g, sig_g (B, N, H, K) diagonal; R (B, N, K, K) in the same dtype;
    kappa (H,) the group's temperatures.

    Returns a, b (B, H, N, P), nu_c (B, H, N, K) centred, nu_mean (B, H, 1, K)."""
    K = mu_g.shape[-1]
    Rh = R[:, :, None]  # (B, N, 1, K, K)
    Rt = Rh.transpose(-1, -2)  # (B, N, 1, K, K): [p, r] = R_rp
    nu = (Rt @ mu_g[..., None])[..., 0]  # R^T mu                  (B, N, H, K)
    S = (Rt * sig_g[..., None, :]) @ Rh  # R^T Sigma R        (B, N, H, K, K)
    Lam = (Rt * (1.0 / sig_g)[..., None, :]) @ Rh  # R^T Sigma^-1 R
    logdet = torch.log(sig_g).sum(-1)  # (B, N, H)
    nu_mean = nu.mean(dim=1, keepdim=True)  # per sequence and head (docs/maths.md section 7)
    nu_c = nu - nu_mean
    iu0, iu1 = torch.triu_indices(K, K, device=mu_g.device)  # row-major upper triangle (lifted.hpp)
    M = S + nu_c[..., :, None] * nu_c[..., None, :]
    ones = torch.ones_like(nu_c[..., :1])
    a = torch.cat([M[..., iu0, iu1], nu_c, ones], dim=-1)
    twice = torch.where(iu0 == iu1, 1.0, 2.0).to(mu_g.dtype)  # sym2: off-diagonals doubled
    lam_nu = (Lam @ nu_c[..., None])[..., 0]
    quad = (nu_c * lam_nu).sum(-1, keepdim=True)
    key = torch.cat([Lam[..., iu0, iu1] * twice, -2.0 * lam_nu, quad + logdet[..., None] - K], dim=-1)
    b = (-0.5 / kappa[:, None]) * key  # (B, N, H, P)
    perm = lambda x: x.permute(0, 2, 1, 3).contiguous()
    return perm(a), perm(b), perm(nu_c), nu_mean.permute(0, 2, 1, 3)


def lift_all(spec, mu, sigma, phi, kappa):
    """[(l, H, K, R, a, b, nu_c, nu_mean)] per l group, in the dtype of mu; kappa (H,) for all heads."""
    out, h0 = [], 0
    for l, H, off, K in groups_of(spec):
        B, N = mu.shape[:2]
        R = wigner_d(phi, l).to(mu.dtype)  # (B, N, K, K)
        mu_g = mu[..., off:off + H * K].reshape(B, N, H, K)
        sig_g = sigma[..., off:off + H * K].reshape(B, N, H, K)
        a, b, nu_c, nu_mean = lift_group(mu_g, sig_g, R, kappa[h0:h0 + H])
        out.append((l, H, K, R, a, b, nu_c, nu_mean))
        h0 += H
    return out


def rotate_out(R, w, nu_mean):
    """m = R (w + nu_mean) (M9): R (B, N, K, K), w (B, H, N, K) -> (B, N, H*K)."""
    m = torch.einsum("bnkl,bhnl->bnhk", R, w + nu_mean)
    return m.reshape(m.shape[0], m.shape[1], -1)


def covariance_out(R, w, msum):
    """The diagonal of Sigma^agg = R (M - w w^T) R^T (M9), with the centred nu (the mean drops out).

    R (B, N, K, K); w (B, H, N, K); msum (B, H, N, K(K+1)/2) = sum_j beta_ij sym(S_j + nu_j nu_j^T)
    packed like a. Returns (B, N, H*K)."""
    K = w.shape[-1]
    iu0, iu1 = torch.triu_indices(K, K, device=w.device)
    slot = torch.empty(K, K, dtype=torch.long, device=w.device)  # packed position of entry (p, q)
    slot[iu0, iu1] = torch.arange(iu0.numel(), device=w.device)
    slot[iu1, iu0] = slot[iu0, iu1]
    C = msum[..., slot] - w[..., :, None] * w[..., None, :]  # (B, H, N, K, K)
    s = torch.einsum("bnkp,bhnpq,bnkq->bnhk", R, C, R)
    return s.reshape(s.shape[0], s.shape[1], -1)


def factorised_forward(spec, mu, sigma, phi, kappa, mask, covariance=False):
    """(b): m (B, N, E); with covariance, (m, the diagonal of Sigma^agg (B, N, E)). kappa (H,)."""
    ms, ss = [], []
    for l, H, K, R, a, b, nu_c, nu_mean in lift_all(spec, mu, sigma, phi, kappa):
        # values: nu, and for the covariance message also sym(S + nu nu^T), the first entries of a (M9)
        values = torch.cat([nu_c, a[..., :K * (K + 1) // 2]], dim=-1) if covariance else nu_c
        xs = []
        for h in range(H):
            scores = a[:, h] @ b[:, h].transpose(-1, -2)  # (B, N, N) = -(KL + row const)/kappa
            scores.masked_fill_(mask, float("-inf"))
            beta = torch.softmax(scores, dim=-1)
            del scores
            xs.append(beta @ values[:, h])  # (B, N, K) or (B, N, K + K(K+1)/2)
            del beta
        x = torch.stack(xs, dim=1)
        ms.append(rotate_out(R, x[..., :K], nu_mean))
        if covariance:
            ss.append(covariance_out(R, x[..., :K], x[..., K:]))
    if covariance:
        return torch.cat(ms, dim=-1), torch.cat(ss, dim=-1)
    return torch.cat(ms, dim=-1)


# --------------------------------------------------------------------------------------------
# (c) scaled_dot_product_attention on the lifted features
# --------------------------------------------------------------------------------------------

def pad_last(x, width):
    return F.pad(x, (0, width - x.shape[-1])) if x.shape[-1] < width else x


def sdpa_inputs(lifted, dtype, v_pad):
    """Per l group: q, k (B, H, N, P8), v (B, H, N, V) in dtype; P8 = P rounded up to 8."""
    out = []
    for l, H, K, R, a, b, nu_c, nu_mean in lifted:
        P8 = -(-a.shape[-1] // 8) * 8
        V = P8 if v_pad == "qk" else -(-K // 8) * 8
        out.append(tuple(pad_last(x, w).to(dtype).contiguous() for x, w in ((a, P8), (b, P8), (nu_c, V))))
    return out


def sdpa_call(groups):
    return [F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0) for q, k, v in groups]


def sdpa_message(lifted, outs):
    """The messages from SDPA outputs (for the checks): m = R (w + nu_mean)."""
    ms = []
    for (l, H, K, R, a, b, nu_c, nu_mean), o in zip(lifted, outs):
        ms.append(rotate_out(R, o[..., :K].to(R.dtype), nu_mean))
    return torch.cat(ms, dim=-1)


def sdpa_backends(groups):
    """Which SDPA backends accept these inputs (CUDA only; the math backend is not probed)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return None
    names = ["FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"]
    ok = []
    for name in names:
        be = getattr(SDPBackend, name, None)
        if be is None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with sdpa_kernel([be]):
                    sdpa_call(groups)
            torch.cuda.synchronize()
            ok.append(name)
        except RuntimeError:
            pass
    return ok


# --------------------------------------------------------------------------------------------
# Float64 references for the self-test (numpy, pair by pair)
# --------------------------------------------------------------------------------------------

def expm_antisym(A):
    """exp(A) for a real antisymmetric A through the eigendecomposition of the Hermitian iA."""
    w, V = np.linalg.eigh(1j * A)
    return (V @ np.diag(np.exp(-1j * w)) @ V.conj().T).real


def reference_exact(spec, mu, sigma, phi, kappa):
    """(M4)-(M7) directly, float64, causal: Omega_ij = exp(phi_i.G) exp(-phi_j.G).

    Returns m and the diagonal of the covariance message Sigma^agg, both (B, N, E)."""
    B, N, E = mu.shape
    m = np.zeros((B, N, E))
    s = np.zeros((B, N, E))
    for l, off, K in heads_of(spec):
        G = generators_np(l)
        for bb in range(B):
            Ep = [expm_antisym(np.einsum("a,akl->kl", phi[bb, i], G)) for i in range(N)]
            En = [expm_antisym(-np.einsum("a,akl->kl", phi[bb, i], G)) for i in range(N)]
            for i in range(N):
                mu_i, Si = mu[bb, i, off:off + K], np.diag(sigma[bb, i, off:off + K])
                kl, mt, second = [], [], []
                for j in range(i + 1):
                    Om = Ep[i] @ En[j]
                    mu_t = Om @ mu[bb, j, off:off + K]
                    St = Om @ np.diag(sigma[bb, j, off:off + K]) @ Om.T
                    Sinv = np.linalg.inv(St)
                    d = mu_t - mu_i
                    kl.append(0.5 * (np.trace(Sinv @ Si) + d @ Sinv @ d - K
                                     + np.linalg.slogdet(St)[1] - np.linalg.slogdet(Si)[1]))
                    mt.append(mu_t)
                    second.append(St + np.outer(mu_t, mu_t))
                x = -np.array(kl) / kappa
                beta = np.exp(x - x.max())
                beta /= beta.sum()
                m_i = beta @ np.array(mt)
                m[bb, i, off:off + K] = m_i
                s[bb, i, off:off + K] = np.diag(np.einsum("j,jkl->kl", beta, np.array(second)) - np.outer(m_i, m_i))
    return m, s


def reference_upstream(spec, mu, sigma, phi, kappa, G_round=None):
    """math.md section 6 (diagonal mode) pair by pair, float64, causal. Returns m and KL (B, H, N, N)."""
    B, N, E = mu.shape
    hs = heads_of(spec)
    m = np.zeros((B, N, E))
    KL = np.zeros((B, len(hs), N, N))
    for h, (l, off, K) in enumerate(hs):
        G = generators_np(l) if G_round is None else G_round(generators_np(l))
        for bb in range(B):
            Ep = [expm_antisym(np.einsum("a,akl->kl", phi[bb, i], G)) for i in range(N)]
            En = [expm_antisym(-np.einsum("a,akl->kl", phi[bb, i], G)) for i in range(N)]
            for i in range(N):
                mu_i = mu[bb, i, off:off + K]
                s_i = np.maximum(sigma[bb, i, off:off + K], 1e-6)
                mts = []
                for j in range(N):
                    Om = Ep[i] @ En[j]
                    mu_t = Om @ mu[bb, j, off:off + K]
                    s_t = np.maximum((Om * Om) @ np.maximum(sigma[bb, j, off:off + K], 1e-6), 1e-6)
                    d = mu_t - mu_i
                    KL[bb, h, i, j] = max(0.0, 0.5 * np.sum(s_i / s_t + d * d / s_t - 1 + np.log(s_t) - np.log(s_i)))
                    mts.append(mu_t)
                x = np.full(N, -np.inf)
                x[:i + 1] = -KL[bb, h, i, :i + 1] / kappa
                beta = np.exp(x - x.max())
                beta = np.maximum(beta / beta.sum(), 1e-8)
                m[bb, i, off:off + K] = beta @ np.array(mts)
    return m, KL


# --------------------------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------------------------

def _fixture_dir(arg):
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [arg] if arg else [os.path.join(here, "..", "shared", "fixtures", "upstream_parity_small"),
                               os.path.join(here, "..", "..", "shared", "fixtures", "upstream_parity_small")]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "diag_exact_kl.npy")):
            return os.path.normpath(c)
    return None


GRAD_INPUTS = ("mu", "sigma", "phi", "kappa")


def loss_gradients(fn, inputs, weights):
    """dL/d(inputs) through autograd for L = sum_k sum(weights[k] * outputs[k]), outputs = fn(*inputs).

    The weights enter as the output gradients (a vector-Jacobian product)."""
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    outs = fn(*leaves)
    return torch.autograd.grad(outs if isinstance(outs, tuple) else (outs,), leaves, grad_outputs=weights)


def spread_kappa(spec, device):
    """(H,) float64 temperatures, distinct per head and proportional to K: the KL of random beliefs
    grows with K, so that every head's attention stays spread and its dL/dphi, dL/dkappa are not
    exponentially small (one-hot attention would leave them at the level of rounding)."""
    hs = heads_of(spec)
    return torch.tensor([(0.6 + 0.8 * h / max(len(hs) - 1, 1)) * K for h, (l, off, K) in enumerate(hs)],
                        dtype=torch.float64, device=device)


def gradient_checks(device, check, verdict):
    """(b) differentiated by autograd with respect to mu, sigma, phi and kappa (one value per head)."""
    # gradcheck in float64, B = 1, N = 5, upstream spec: every entry of every input against finite
    # differences, without and with the covariance message.
    spec, N = "upstream", 5
    mask = causal_mask(N, device)
    kap = spread_kappa(spec, device)
    inputs = [*random_beliefs(spec, 1, N, 13, device, torch.float64), kap]
    for cov in (False, True):
        fn = lambda *x: factorised_forward(spec, *x, mask, covariance=cov)
        leaves = [x.clone().requires_grad_() for x in inputs]
        ok = torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-6, raise_exception=False)
        verdict(f"{spec}: (b) torch.autograd.gradcheck in fp64, B=1, N=5, (mu, sigma, phi, kappa) -> "
                f"{'(m, diag Sigma^agg)' if cov else 'm'} (eps 1e-6, atol 1e-7, rtol 1e-6)", ok)

    # fp32 gradients (what the benchmark times) against fp64 ones, and against float64 central
    # differences of L at two entries per input: the largest gradient and one drawn at random.
    B, N = 2, 6
    mask = causal_mask(N, device)
    rng = np.random.default_rng(16)
    for spec in SPECS:
        E = embed_dim(spec)
        kap = spread_kappa(spec, device)
        x64 = [*random_beliefs(spec, B, N, 14, device, torch.float64), kap]
        w64 = random_weights([(B, N, E), (B, N, E)], 15, device, torch.float64)
        fn = lambda *x: factorised_forward(spec, *x, mask, covariance=True)
        g64 = loss_gradients(fn, x64, w64)
        g32 = loss_gradients(fn, [x.float() for x in x64], [w.float() for w in w64])

        def loss64(xs):
            with torch.no_grad():
                return sum(float((w * o).sum()) for w, o in zip(w64, fn(*xs)))

        for k, name in enumerate(GRAD_INPUTS):
            scale = float(g64[k].abs().max())
            check(f"{spec}: (b) dL/d{name} fp32 vs fp64 autograd, max |dg| / max |g|",
                  float((g32[k].double() - g64[k]).abs().max()) / scale, 1e-5)
            fd_err32 = fd_err64 = 0.0
            for idx in (int(g64[k].abs().argmax()), int(rng.integers(g64[k].numel()))):
                h = 1e-5
                plus, minus = [x.clone() for x in x64], [x.clone() for x in x64]
                plus[k].view(-1)[idx] += h
                minus[k].view(-1)[idx] -= h
                fd = (loss64(plus) - loss64(minus)) / (2 * h)
                fd_err32 = max(fd_err32, abs(float(g32[k].view(-1)[idx]) - fd) / scale)
                fd_err64 = max(fd_err64, abs(float(g64[k].view(-1)[idx]) - fd) / scale)
            check(f"{spec}: (b) dL/d{name} fp32 autograd vs fp64 central difference (2 entries), / max |g|",
                  fd_err32, 1e-5)
            check(f"{spec}: (b) dL/d{name} fp64 autograd vs fp64 central difference (2 entries), / max |g|",
                  fd_err64, 1e-8)


def self_test(device, fixture_arg=None):
    results = []

    def check(name, err, tol):
        ok = bool(np.isfinite(err) and err <= tol)
        results.append(ok)
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {err:.3e} (tol {tol:.0e})")

    def info(name, err):
        print(f"  [info] {name}: {err:.3e}")

    def verdict(name, ok):
        results.append(bool(ok))
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")

    print(f"self-test on {device} (torch {torch.__version__})")

    # (M1) fixtures and properties.
    a = math.sqrt(3)
    fix1 = np.array([[[0, 0, -1], [0, 0, 0], [1, 0, 0]],
                     [[0, 1, 0], [-1, 0, 0], [0, 0, 0]],
                     [[0, 0, 0], [0, 0, -1], [0, 1, 0]]], float)
    fix2 = np.array([[[0, 0, -a, 0, 0], [0, 0, 0, 0, -1], [a, 0, 0, 1, 0], [0, 0, -1, 0, 0], [0, 1, 0, 0, 0]],
                     [[0, a, 0, 0, 0], [-a, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, -1, 0, 0, 0], [0, 0, -1, 0, 0]],
                     [[0, 0, 0, 0, 0], [0, 0, -1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, -2], [0, 0, 0, 2, 0]]], float)
    check("generators l=1 vs math.md fixture", np.abs(generators_np(1) - fix1).max(), 1e-14)
    check("generators l=2 vs math.md fixture", np.abs(generators_np(2) - fix2).max(), 1e-14)
    check("generators l=0 are zero", np.abs(generators_np(0)).max(), 0.0)
    prop = 0.0
    for l in range(1, 11):
        Gx, Gy, Gz = generators_np(l)
        K = 2 * l + 1
        prop = max(prop, max(np.abs(g + g.T).max() for g in (Gx, Gy, Gz)),
                   np.abs(Gx @ Gy - Gy @ Gx - Gz).max(), np.abs(Gy @ Gz - Gz @ Gy - Gx).max(),
                   np.abs(Gz @ Gx - Gx @ Gz - Gy).max(),
                   np.abs(-(Gx @ Gx + Gy @ Gy + Gz @ Gz) - l * (l + 1) * np.eye(K)).max())
    check("generators l=1..10: antisymmetric, [Gx,Gy]=Gz cyclic, Casimir l(l+1)", prop, 1e-12)

    # (M2) Wigner-D by matrix_exp (fp64): orthogonal, agrees with an eigendecomposition exponential.
    rng = np.random.default_rng(7)
    phis = np.concatenate([rng.standard_normal((16, 3)), [[0, 0, 0], [1e-9, 0, 0], [0, 0, 3.5], [4.0, -3.0, 2.0]]])
    orth = agree = 0.0
    for l in (1, 2, 3, 9):
        R = wigner_d(torch.tensor(phis, device=device), l).cpu().numpy()
        G = generators_np(l)
        for r, p in zip(R, phis):
            orth = max(orth, np.abs(r @ r.T - np.eye(2 * l + 1)).max())
            agree = max(agree, np.abs(r - expm_antisym(np.einsum("a,akl->kl", p, G))).max())
    check("Wigner-D (matrix_exp fp64) orthogonality", orth, 1e-12)
    check("Wigner-D matrix_exp vs eigendecomposition exp", agree, 1e-12)

    # Method checks on B = 2, N = 6 for every named spec.
    B, N, kappa = 2, 6, 1.0
    mask = causal_mask(N, device)
    for spec in SPECS:
        mu64, sig64, phi64 = random_beliefs(spec, B, N, 11, "cpu", torch.float64)
        mu_n, sig_n, phi_n = mu64.numpy(), sig64.numpy(), phi64.numpy()
        ref_exact, ref_cov = reference_exact(spec, mu_n, sig_n, phi_n, kappa)
        ref_up, _ = reference_upstream(spec, mu_n, sig_n, phi_n, kappa)
        mu32, sig32, phi32 = (x.to(device, torch.float32) for x in (mu64, sig64, phi64))
        in64 = [x.to(device) for x in (mu64, sig64, phi64)]
        kap32, kap64 = kappa_per_head(spec, kappa, device), kappa_per_head(spec, kappa, device, torch.float64)
        with torch.no_grad():
            mb = factorised_forward(spec, mu32, sig32, phi32, kap32, mask).double().cpu().numpy()
            mb64 = factorised_forward(spec, *in64, kap64, mask)
            sb = factorised_forward(spec, mu32, sig32, phi32, kap32, mask, covariance=True)[1]
            sb64 = factorised_forward(spec, *in64, kap64, mask, covariance=True)[1]
            ma = upstream_forward(spec, mu32, sig32, phi32, kap32, mask).double().cpu().numpy()
            ma64 = upstream_forward(spec, *in64, kap64, mask)
            lifted32 = lift_all(spec, mu32, sig32, phi32, kap32)
            mc32 = sdpa_message(lifted32, sdpa_call(sdpa_inputs(lifted32, torch.float32, "qk")))
            mc32 = mc32.double().cpu().numpy()
            mc_min = sdpa_message(lifted32, sdpa_call(sdpa_inputs(lifted32, torch.float32, "min")))
            mc_min = mc_min.double().cpu().numpy()
            mc16 = sdpa_message(lifted32, sdpa_call(sdpa_inputs(lifted32, torch.bfloat16, "qk")))
            mc16 = mc16.double().cpu().numpy()
        check(f"{spec}: (b) factorised_torch fp32 vs direct (M4) fp64, max |dm|", np.abs(mb - ref_exact).max(), 1e-4)
        check(f"{spec}: (b) factorised_torch fp64 vs direct (M4) fp64, max |dm|",
              np.abs(mb64.cpu().numpy() - ref_exact).max(), 1e-10)
        check(f"{spec}: (b) covariance message fp32 vs direct (M7) fp64, max |d diag Sigma^agg|",
              np.abs(sb.double().cpu().numpy() - ref_cov).max(), 1e-4)
        check(f"{spec}: (b) covariance message fp64 vs direct (M7) fp64, max |d diag Sigma^agg|",
              np.abs(sb64.cpu().numpy() - ref_cov).max(), 1e-10)
        check(f"{spec}: (a) upstream fp32 vs per-pair loop of section 6 fp64, max |dm|", np.abs(ma - ref_up).max(), 1e-5)
        check(f"{spec}: (a) upstream fp64 vs per-pair loop of section 6 fp64, max |dm|",
              np.abs(ma64.cpu().numpy() - ref_up).max(), 1e-12)
        check(f"{spec}: (c) wiring: SDPA in fp32 (v padded to q width) vs direct (M4), max |dm|",
              np.abs(mc32 - ref_exact).max(), 1e-4)
        check(f"{spec}: (c) wiring: SDPA in fp32 (v padded to 8) vs direct (M4), max |dm|",
              np.abs(mc_min - ref_exact).max(), 1e-4)
        info(f"{spec}: (c) SDPA in bf16 vs direct (M4), max |dm|", np.abs(mc16 - ref_exact).max())
        info(f"{spec}: upstream diagonal approximation vs exact (M4), max |dm|", np.abs(ref_up - ref_exact).max())

    gradient_checks(device, check, verdict)

    # Optional: (a) in float64 with float32-rounded generators against the upstream project's own
    # KL matrices (diag_exact; its KL is mask-independent, so the comparison is of KL only).
    fx = _fixture_dir(fixture_arg)
    if fx is None:
        print("  [skip] upstream parity fixture not found (pass --fixture DIR to check (a) against it)")
    else:
        mu = np.load(os.path.join(fx, "mu.npy"))
        sig = np.load(os.path.join(fx, "sigma_diag.npy"))
        phi = np.load(os.path.join(fx, "phi.npy"))
        kl_fix = np.load(os.path.join(fx, "diag_exact_kl.npy"))
        t = lambda x: torch.tensor(x, dtype=torch.float64, device=device)
        Nf = mu.shape[1]
        err = 0.0
        with torch.no_grad():
            for h, (l, off, K) in enumerate(heads_of("upstream")):
                G = torch.tensor(generators_np(l).astype(np.float32), dtype=torch.float64, device=device)
                _, kl = upstream_head(t(mu[..., off:off + K]), t(sig[..., off:off + K]), t(phi), G, t(0.43),
                                      causal_mask(Nf, device), return_kl=True)
                err = max(err, np.abs(kl.cpu().numpy() - kl_fix[:, h]).max())
        check(f"(a) in fp64 vs the upstream project's diag_exact KL ({fx})", err, 1e-10)

    n_fail = results.count(False)
    print(f"self-test: {len(results) - n_fail} passed, {n_fail} failed")
    return n_fail == 0


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

def is_oom(e):
    if isinstance(e, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    s = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in s or "can't allocate memory" in s)


def free_memory(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


class Clock:
    """Milliseconds of one call, split at the marks the call sets: CUDA events on a GPU (recorded in
    the stream between the kernels), perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.marks = []

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def __call__(self, fn):
        """Runs fn(self); returns the milliseconds of each part between its start, marks and end."""
        self.marks = []
        self.mark()
        out = fn(self)
        self.mark()
        if self.cuda:
            self.marks[-1].synchronize()
            ms = [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        else:
            ms = [(b - a) * 1e3 for a, b in zip(self.marks, self.marks[1:])]
        del out
        return ms


def bench_one(device, setup, run, args, parts=("forward",)):
    """setup() -> state (untimed); run(state, clock) -> output (timed; clock.mark() between parts).

    Returns a dict of results; the median, min and max are of the whole call, and with several
    parts part_median_ms holds each part's own median over the same repetitions."""
    res = {"median_ms": None, "reps": 0, "status": "ok"}
    state = None
    start = time.perf_counter()
    clock = Clock(device)
    call = lambda: clock(lambda c: run(state, c))
    stage = "setup"
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        state = setup()
        stage = "warm-up"
        first = sum(call())
        res["first_call_ms"] = round(first, 3)
        if first > args.skip_seconds * 1e3:
            res["status"] = "skipped: too slow"
            return res
        # A slow call is its own warm-up and needs fewer repetitions.
        slow = first > args.slow_seconds * 1e3
        min_reps = args.slow_min_reps if slow else args.min_reps
        warm = 1
        while warm < args.warmup and not slow:
            call()
            warm += 1
        res["warmups"] = warm
        stage = "timed repetitions"
        times = []
        t_rep = time.perf_counter()
        while len(times) < args.max_reps:
            if len(times) >= min_reps and time.perf_counter() - t_rep >= args.min_seconds:
                break
            if times and time.perf_counter() - start >= args.max_seconds:
                break
            times.append(call())
        totals = [sum(t) for t in times]
        res["reps"] = len(times)
        res["median_ms"] = round(statistics.median(totals), 4)
        res["min_ms"] = round(min(totals), 4)
        res["max_ms"] = round(max(totals), 4)
        if len(parts) > 1:
            res["part_median_ms"] = {p: round(statistics.median(t[k] for t in times), 4) for k, p in enumerate(parts)}
        if len(times) < min_reps:
            res["status"] = f"ok (capped at {args.max_seconds:g} s)"
    except Exception as e:  # noqa: BLE001 -- OOM is recorded, anything else too (with its message)
        if is_oom(e):
            res["status"] = "OOM"
        else:
            res["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        res["failed_at"] = stage + (f", {state['at']}" if isinstance(state, dict) and "at" in state else "")
    finally:
        state = None
        if device.type == "cuda":
            res["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        free_memory(device)
        res["wall_s"] = round(time.perf_counter() - start, 2)
    return res


def method_runs(method, spec, inputs, N, covariance, weight_seed, device, args):
    """(setup, run) of the forward and of forward + backward for bench_one, and what gets gradients.

    inputs = (mu, sigma, phi, kappa). The backward is torch.autograd.grad with fixed random output
    gradients: the gradient of L = sum(w * outputs)."""
    if method == "sdpa_bf16":
        def setup():
            lifted = lift_all(spec, *inputs)
            groups = sdpa_inputs(lifted, torch.bfloat16, args.sdpa_v_pad)
            del lifted
            return {"groups": groups}

        def grad_setup():
            st = setup()
            st["leaves"] = [x.requires_grad_() for group in st["groups"] for x in group]
            st["weights"] = random_weights([v.shape for q, k, v in st["groups"]], weight_seed, device, torch.bfloat16)
            return st

        def grad_run(st, clock):
            outs = sdpa_call(st["groups"])
            clock.mark()
            st["at"] = "backward"
            return torch.autograd.grad(outs, st["leaves"], grad_outputs=st["weights"])

        return (setup, lambda st, clock: sdpa_call(st["groups"])), (grad_setup, grad_run), ["q", "k", "v"]

    if method == "upstream":
        forward = lambda st, x: upstream_forward(spec, *x, st["mask"], progress=st)
    else:
        forward = lambda st, x: factorised_forward(spec, *x, st["mask"], covariance=covariance)
    setup = lambda: {"mask": causal_mask(N, device)}
    mu = inputs[0]

    def grad_setup():
        shapes = [mu.shape] * (2 if covariance else 1)  # m, and the diagonal of Sigma^agg
        return {"mask": causal_mask(N, device), "leaves": [x.detach().requires_grad_() for x in inputs],
                "weights": random_weights(shapes, weight_seed, device)}

    def grad_run(st, clock):
        outs = forward(st, st["leaves"])
        clock.mark()
        st["at"] = "backward"
        return torch.autograd.grad(outs if isinstance(outs, tuple) else (outs,), st["leaves"],
                                   grad_outputs=st["weights"])

    return (setup, lambda st, clock: forward(st, inputs)), (grad_setup, grad_run), list(GRAD_INPUTS)


def grad_fields(res):
    """bench_one's results of forward + backward, named beside the forward's in a result entry."""
    parts = res.get("part_median_ms", {})
    out = {"backward_median_ms": parts.get("backward"), "forward_backward_median_ms": res["median_ms"],
           "grad_forward_median_ms": parts.get("forward"), "grad_status": res["status"], "grad_reps": res["reps"]}
    for k in ("min_ms", "max_ms"):
        if k in res:
            out["forward_backward_" + k] = res[k]
    for k in ("first_call_ms", "warmups", "peak_mem_gib", "wall_s", "failed_at"):
        if k in res:
            out["grad_" + k] = res[k]
    return out


def run_workload(wname, wl, B, N, seed, device, methods, args):
    entries = []
    kappa = 1.0
    for method in methods:
        free_memory(device)
        mu, sigma, phi = random_beliefs(wl.spec, B, N, seed, device)
        inputs = (mu, sigma, phi, kappa_per_head(wl.spec, kappa, device))
        (setup, run), (grad_setup, grad_run), grads_wrt = method_runs(
            method, wl.spec, inputs, N, wl.covariance, seed + 100, device, args)

        print(f"{wname} {wl.spec} B={B} N={N} {method} ...", flush=True)
        with torch.no_grad():
            res = bench_one(device, setup, run, args)
            if method == "sdpa_bf16" and res["status"].startswith("ok"):
                if device.type == "cuda":
                    try:
                        groups = setup()["groups"]
                        res["sdpa_backends_accepting"] = sdpa_backends(groups)
                        res["sdpa_shapes"] = [list(q.shape) + [v.shape[-1]] for q, k, v in groups]
                        del groups
                    except Exception as e:  # noqa: BLE001
                        res["sdpa_backends_accepting"] = f"probe failed: {type(e).__name__}"
                    free_memory(device)
                try:  # accuracy of bf16 SDPA on this workload, against (b) in fp32
                    lifted = lift_all(wl.spec, *inputs)
                    m_c = sdpa_message(lifted, sdpa_call(sdpa_inputs(lifted, torch.bfloat16, args.sdpa_v_pad)))
                    del lifted
                    m_b = factorised_forward(wl.spec, *inputs, causal_mask(N, device))
                    res["max_abs_dm_vs_factorised_torch"] = float((m_c - m_b).abs().max())
                    del m_c, m_b
                except Exception as e:  # noqa: BLE001
                    res["max_abs_dm_vs_factorised_torch"] = f"not measured: {type(e).__name__}"
                free_memory(device)
        entry = {"workload": wname, "spec": wl.spec, "irreps": spec_string(wl.spec), "E": embed_dim(wl.spec),
                 "heads": len(heads_of(wl.spec)), "B": B, "N": N, "method": method,
                 "covariance_message": wl.covariance}
        entry.update(res)
        print(f"    forward -> {entry['status']}, median {entry['median_ms']} ms over {entry['reps']} reps "
              f"({entry['wall_s']} s)", flush=True)
        if not args.no_backward:
            if res["status"] == "OOM" or res["status"].startswith("skipped"):
                entry.update({"backward_median_ms": None, "forward_backward_median_ms": None,
                              "grad_status": res["status"], "grad_failed_at": "not run: the forward alone failed"})
            else:
                with torch.enable_grad():
                    gres = bench_one(device, grad_setup, grad_run, args, parts=("forward", "backward"))
                entry.update(grad_fields(gres))
                entry["grads_wrt"] = grads_wrt
            print(f"    forward+backward -> {entry['grad_status']}, median {entry['forward_backward_median_ms']} ms "
                  f"(backward {entry['backward_median_ms']} ms) over {entry.get('grad_reps', 0)} reps "
                  f"({entry.get('grad_wall_s', 0)} s)", flush=True)
        entries.append(entry)
        del mu, sigma, phi, inputs
    free_memory(device)
    return entries


def print_table(entries):
    cols = ["workload", "spec", "B", "N", "method", "median_ms", "reps", "status",
            "backward_median_ms", "forward_backward_median_ms", "grad_reps", "grad_status"]
    if not any("grad_status" in e for e in entries):
        cols = cols[:8]
    rows = [[str(e.get(c)) if e.get(c) is not None else "-" for c in cols] for e in entries]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda r: "  ".join(x.ljust(w) for x, w in zip(r, widths))
    print(line(cols))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def add_timing_arguments(p):
    """The repetition rules of bench_one (bench/torch_module.py times under the same ones)."""
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-reps", type=int, default=10)
    p.add_argument("--min-seconds", type=float, default=0.5)
    p.add_argument("--max-reps", type=int, default=50)
    p.add_argument("--slow-seconds", type=float, default=1.0,
                   help="a first call slower than this is the only warm-up, and --slow-min-reps suffice")
    p.add_argument("--slow-min-reps", type=int, default=3)
    p.add_argument("--max-seconds", type=float, default=60.0, help="cap per method-workload, warm-ups included")
    p.add_argument("--skip-seconds", type=float, default=30.0, help="skip when the first warm-up call exceeds this")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of " + ",".join(WORKLOADS))
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument("--out", help="write the results as JSON to this file")
    p.add_argument("--small", action="store_true", help="N = 64 and B = 2 for every workload (checking runs)")
    p.add_argument("--no-backward", action="store_true", help="time the forward only")
    p.add_argument("--self-test", action="store_true", help="run the correctness checks and exit")
    p.add_argument("--fixture", help="the upstream parity fixture folder (self-test; found automatically if beside)")
    p.add_argument("--seed", type=int, default=20251227,
                   help="base seed; workload Wk uses seed + k (W2c: W2's, U1: seed + 6, W6: seed + 7), its weights seed + 100 + k")
    add_timing_arguments(p)
    p.add_argument("--sdpa-v-pad", choices=["qk", "min"], default="qk",
                   help="pad v to the q/k width (qk: every backend incl. flash can run) or to a multiple of 8")
    args = p.parse_args()

    # fp32 means fp32: no TF32 anywhere (the upstream einsums and the lifted matmuls alike).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("CUDA is not available; use --device cpu (with --small) for a check run")

    if args.self_test:
        sys.exit(0 if self_test(device, args.fixture) else 1)

    wanted = [w.strip() for w in args.workloads.split(",") if w.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for w in wanted:
        if w not in WORKLOADS:
            sys.exit(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    for m in methods:
        if m not in METHODS:
            sys.exit(f"unknown method {m!r}; choose from {', '.join(METHODS)}")

    meta = {
        "script": "bench/torch_baselines.py",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "host": platform.node(),
        "python": platform.python_version(),
        "small": args.small,
        "seed": args.seed,
        "kappa": 1.0,
        "mask": "causal (j <= i)",
        "inputs": "mu ~ N(0,1), diagonal variances ~ U[0.5, 2], phi ~ N(0, 0.5^2); float32",
        "tf32": False,
        "sdpa_v_pad": args.sdpa_v_pad,
        "timing": {"clock": "CUDA events" if device.type == "cuda" else "perf_counter",
                   "warmups": args.warmup, "min_reps": args.min_reps, "min_seconds": args.min_seconds,
                   "max_reps": args.max_reps, "max_seconds_per_method_workload": args.max_seconds,
                   "skip_if_first_call_over_s": args.skip_seconds, "statistic": "median",
                   "slow_if_first_call_over_s": args.slow_seconds, "min_reps_if_slow": args.slow_min_reps,
                   "note": "a first call (the first warm-up) slower than slow_if_first_call_over_s is the only "
                           "warm-up and min_reps_if_slow replaces min_reps; max_seconds counts from the setup; "
                           "at least one rep. Forward and forward + backward are timed separately, each "
                           "under these rules; the backward median is that of the backward part of the "
                           "forward + backward iterations (a CUDA event between the two parts)."},
        "workloads": {w: {"spec": WORKLOADS[w].spec, "B": WORKLOADS[w].B, "N": WORKLOADS[w].N,
                          "covariance_message": WORKLOADS[w].covariance} for w in wanted},
        "timed_region": {m: TIMED_REGION[m] for m in methods},
    }
    if not args.no_backward:
        meta["backward"] = {
            "loss": "L = sum(w_mu * m), plus sum(w_sigma * diag Sigma^agg) on W2c; w ~ N(0, 1) fixed "
                    "(seed + 100 + k), given to torch.autograd.grad as grad_outputs",
            "grads_wrt": {"upstream": list(GRAD_INPUTS), "factorised_torch": list(GRAD_INPUTS),
                          "sdpa_bf16": ["q", "k", "v"]},
            "kappa": "a (H,) fp32 tensor, one value per head (all 1.0), requiring grad",
            "timed_region": {m: TIMED_REGION_BACKWARD[m] for m in methods},
        }
    print(f"torch {meta['torch_version']} on {meta['device_name']} ({device}), {meta['date_utc']}", flush=True)

    entries = []
    t0 = time.perf_counter()
    for w in wanted:
        wl = WORKLOADS[w]
        B, N = (2, 64) if args.small else (wl.B, wl.N)
        seed = args.seed + wl.seed_offset
        ms = [m for m in methods if m == "factorised_torch" or not wl.covariance]
        entries += run_workload(w, wl, B, N, seed, device, ms, args)
        # U1: the largest N (halving) at which the upstream way's forward and backward both fit.
        while wl.halve_n_on_oom and N >= 512 and any(
                e["method"] == "upstream" and e["N"] == N and "OOM" in (e["status"], e.get("grad_status"))
                for e in entries if e["workload"] == w):
            N //= 2
            entries += run_workload(w, wl, B, N, seed, device, ["upstream"], args)
        if args.out:  # rewrite after every workload so a killed run keeps what it measured
            with open(args.out, "w") as f:
                json.dump({"meta": meta, "results": entries}, f, indent=1)
    meta["total_wall_s"] = round(time.perf_counter() - t0, 1)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": entries}, f, indent=1)
        print(f"wrote {args.out}")
    print()
    print_table(entries)


if __name__ == "__main__":
    main()
