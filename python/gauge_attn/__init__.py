"""Gauge-equivariant KL-divergence attention over SO(3) irreps, as PyTorch operators with autograd.

    out = gauge_attn.kl_attention(mu, sigma, phi, kappa, spec="upstream", causal=True)
    layer = gauge_attn.KLAttention("5x0+3x1+1x2", kappa=0.43, causal=True, learn_kappa=True)

Both run the operator ``torch.ops.gauge_attn.kl_attention`` (python/csrc/ops.cpp), compiled from the
gauge_attn C++ headers: the forward is ``attention_forward<Spec>``, the backward
``torch.ops.gauge_attn.kl_attention_backward``, i.e. ``attention_backward<Spec>``. This module adds
what PyTorch wants registered from Python: the fake kernels, with which torch.compile traces the
operators without running them, and the autograd formula. docs/pytorch.md is the user's guide.
"""

import re
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch

from . import _C  # noqa: F401  (loading the extension registers the operators)

__all__ = ["NAMED_SPECS", "IrrepSpec", "parse_spec", "Attention", "kl_attention", "KLAttention"]

# The specs compiled into the extension (include/gauge_attn/specs.hpp, the upstream note's five):
# name -> "HxL+..." (H heads of spin L each, in embedding order). tests/test_ops.py checks that the
# extension agrees with every line.
NAMED_SPECS = {
    "upstream": "5x0+3x1+1x2",
    "more-tensor": "2x0+2x1+4x2",
    "higher-rank": "4x1+3x2+2x3",
    "scaled": "10x0+10x1+8x2+4x3",
    "single-l9": "1x9",
}

MODES = ("exact", "upstream")
EXPONENTIALS = ("pade", "taylor4")


class IrrepSpec(NamedTuple):
    """The layout of an irrep spec: ``irreps`` is ((heads, l), ...) in embedding order."""

    name: str  # the compiled spec it is
    irreps: Tuple[Tuple[int, int], ...]

    @property
    def num_heads(self) -> int:
        return sum(h for h, _ in self.irreps)

    @property
    def embed_dim(self) -> int:
        return sum(h * (2 * l + 1) for h, l in self.irreps)

    def __str__(self) -> str:
        return self.name


_IRREPS = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


def _irreps(text: str) -> Optional[Tuple[Tuple[int, int], ...]]:
    terms = [_IRREPS.match(t) for t in text.split("+")]
    if not all(terms):
        return None
    return tuple((int(m.group(1)), int(m.group(2))) for m in terms)


def parse_spec(spec) -> IrrepSpec:
    """The IrrepSpec of a spec name (``NAMED_SPECS``), of a string like "5x0+3x1+1x2", or of the
    upstream layer's irrep_spec, a list like [("ℓ0", 5, 1), ("ℓ1", 3, 3), ("ℓ2", 1, 5)] of
    (label, heads, dim = 2l+1).

    Raises ValueError for anything else, and NotImplementedError for a well-formed spec that is
    not compiled into the extension (building others just in time is not implemented yet).
    """
    if isinstance(spec, (list, tuple)) and all(isinstance(t, (list, tuple)) and len(t) == 3 for t in spec):
        if not all(isinstance(d, int) and d % 2 == 1 for _, _, d in spec):
            raise ValueError(f"gauge_attn: 'spec': every irrep dimension must be odd (2l+1), got {spec!r}")
        spec = "+".join(f"{heads}x{(dim - 1) // 2}" for _, heads, dim in spec)
    if not isinstance(spec, str):
        raise TypeError(f"gauge_attn: 'spec' must be a name, a string 'HxL+...' or a list of (label, heads, dim), "
                        f"got {type(spec).__name__}")
    if spec in NAMED_SPECS:
        return IrrepSpec(spec, _irreps(NAMED_SPECS[spec]))
    irreps = _irreps(spec)
    if irreps is None or any(h < 1 for h, _ in irreps):
        raise ValueError(f"gauge_attn: 'spec' must be one of {sorted(NAMED_SPECS)} or a string like "
                         f"'5x0+3x1+1x2' (heads x spin, at least one head each), got {spec!r}")
    for name, text in NAMED_SPECS.items():
        if _irreps(text) == irreps:
            return IrrepSpec(name, irreps)
    raise NotImplementedError(
        f"gauge_attn: spec {spec!r} is not compiled into this build (compiled: "
        + ", ".join(f"{n} = {t}" for n, t in NAMED_SPECS.items())
        + "); building other specs just in time is not implemented yet")


class Attention(NamedTuple):
    """What kl_attention returns; an output that was not requested is None."""

    mu: torch.Tensor  # (B, N, E) mean messages m_i (M6), heads concatenated in spec order
    sigma: Optional[torch.Tensor]  # covariance messages (M7), in the layout of the input sigma
    energy: Optional[torch.Tensor]  # (B, H, N) attention energy e_ih = sum_j beta_ij KL_ij


def _check_inputs(mu, sigma, phi, kappa, valid_lengths, spec: IrrepSpec, mode, exponential):
    """Raises TypeError / ValueError naming the argument; the shapes are those of the C++ checks
    (make_call in ops.cpp), which guard direct calls of the operator. Returns (B, N, H)."""
    for name, t in (("mu", mu), ("sigma", sigma), ("phi", phi), ("kappa", kappa)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"gauge_attn: '{name}' must be a torch.Tensor, got {type(t).__name__}")
    if mu.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"gauge_attn: 'mu' must be float32 or float64, got {mu.dtype}")
    for name, t in (("sigma", sigma), ("phi", phi)):
        if t.dtype != mu.dtype:
            raise TypeError(f"gauge_attn: '{name}' must have the dtype of 'mu' ({mu.dtype}), got {t.dtype}")
        if t.device != mu.device:
            raise ValueError(f"gauge_attn: '{name}' must be on the device of 'mu' ({mu.device}), got {t.device}")
    if mu.dim() != 3:
        raise ValueError(f"gauge_attn: 'mu' must be (B, N, E), got shape {tuple(mu.shape)}")
    B, N, E = mu.shape
    if E != spec.embed_dim:
        raise ValueError(f"gauge_attn: 'mu' has E = {E} but spec '{spec}' ({NAMED_SPECS[spec.name]}) has "
                         f"E = {spec.embed_dim}")
    if tuple(sigma.shape) not in ((B, N, E), (B, N, E, E)):
        raise ValueError(f"gauge_attn: 'sigma' must be (B, N, E) or (B, N, E, E) with (B, N, E) = {(B, N, E)}, "
                         f"got {tuple(sigma.shape)}")
    if tuple(phi.shape) != (B, N, 3):
        raise ValueError(f"gauge_attn: 'phi' must be (B, N, 3) = {(B, N, 3)}, got {tuple(phi.shape)}")
    H = spec.num_heads
    if kappa.dim() != 1 or kappa.shape[0] not in (1, H) or not kappa.is_floating_point():
        raise ValueError(f"gauge_attn: 'kappa' must be a 1-d floating tensor of 1 or H = {H} values, got "
                         f"{tuple(kappa.shape)} {kappa.dtype}")
    if valid_lengths is not None and (not isinstance(valid_lengths, torch.Tensor) or valid_lengths.dim() != 1
                                      or valid_lengths.shape[0] != B or valid_lengths.is_floating_point()):
        raise ValueError(f"gauge_attn: 'valid_lengths' must be an integer tensor of shape (B,) = ({B},)")
    if mode not in MODES:
        raise ValueError(f"gauge_attn: 'mode' must be one of {MODES}, got {mode!r}")
    if exponential not in EXPONENTIALS:
        raise ValueError(f"gauge_attn: 'exponential' must be one of {EXPONENTIALS}, got {exponential!r}")
    return B, N, H


@torch.library.register_fake("gauge_attn::kl_attention")
def _kl_attention_fake(mu, sigma, phi, kappa, valid_lengths, spec, mode, exponential, causal, mask_self, window,
                       alibi_slope, identity_transport, covariance_message, attention_energy):
    B, N, H = _check_inputs(mu, sigma, phi, kappa, valid_lengths, parse_spec(spec), mode, exponential)
    # Outputs that are not produced come back as (0,) tensors, as from the C++ kernel.
    return (mu.new_empty(mu.shape),
            sigma.new_empty(sigma.shape if covariance_message else (0,)),
            mu.new_empty((B, H, N) if attention_energy else (0,)),
            mu.new_empty((B, H, N) if mode == "exact" else (0,)))


@torch.library.register_fake("gauge_attn::kl_attention_backward")
def _kl_attention_backward_fake(grad_mu, grad_sigma, grad_energy, mu_out, sigma_out, energy, lse, mu, sigma, phi,
                                kappa, *options):
    # The kernel returns contiguous gradients in the shape of each input.
    return mu.new_empty(mu.shape), sigma.new_empty(sigma.shape), phi.new_empty(phi.shape), kappa.new_empty(kappa.shape)


def _setup_context(ctx, inputs, output):
    mu, sigma, phi, kappa, valid_lengths = inputs[:5]
    ctx.save_for_backward(*output, mu, sigma, phi, kappa, valid_lengths)
    ctx.options = inputs[5:]  # spec, mode, ... attention_energy: plain values


@torch.autograd.function.once_differentiable  # no double backward: a second one raises, not returns zeros
def _backward(ctx, grad_mu, grad_sigma, grad_energy, grad_lse):
    # The log-sum-exp is saved state, not a result (kl_attention drops it), so grad_lse is unused;
    # the gradients of outputs that were not produced are ignored by the kernel.
    grads = torch.ops.gauge_attn.kl_attention_backward(grad_mu, grad_sigma, grad_energy, *ctx.saved_tensors,
                                                       *ctx.options)
    return (*grads, None) + (None,) * len(ctx.options)  # None: valid_lengths and the options


torch.library.register_autograd("gauge_attn::kl_attention", _backward, setup_context=_setup_context)


def kl_attention(mu: torch.Tensor, sigma: torch.Tensor, phi: torch.Tensor,
                 kappa: Union[float, Sequence[float], torch.Tensor], spec: Union[str, IrrepSpec] = "upstream", *,
                 valid_lengths: Optional[torch.Tensor] = None, mode: str = "exact", exponential: str = "pade",
                 causal: bool = False, mask_self: bool = False, window: int = 0, alibi_slope: float = 0.0,
                 identity_transport: bool = False, covariance_message: bool = False,
                 attention_energy: bool = False) -> Attention:
    """KL attention of every head of ``spec`` (a name, "HxL+...", or an IrrepSpec) (M5, M6; M7 and
    the energy on request).

    mu (B, N, E), sigma (B, N, E) variances or (B, N, E, E) covariances (only the per-head blocks are
    read), phi (B, N, 3) frames; float32 or float64, any strides. kappa: one temperature for every
    head or one per head (a float, a sequence or a 1-d tensor; a tensor that requires grad gets its
    gradient). valid_lengths: (B,) integers, tokens n >= valid_lengths[b] are padding (zero outputs,
    zero gradients). mode: "exact" (M4 through the factorisation M8) or "upstream" (the upstream
    layer's arithmetic, math.md section 6; O(N^2 K^3), for small N), whose "exponential" is "pade"
    (torch.matrix_exp upstream) or "taylor4". window: 0 (off), causal: i - W < j <= i, else
    |i - j| <= W/2. alibi_slope: logit += slope * (i - j).
    """
    spec_ = spec if isinstance(spec, IrrepSpec) else parse_spec(spec)
    if not isinstance(kappa, torch.Tensor):
        kappa = torch.tensor(kappa, dtype=torch.float64, device=mu.device).reshape(-1)
    _check_inputs(mu, sigma, phi, kappa, valid_lengths, spec_, mode, exponential)
    mu_out, sigma_out, energy, _ = torch.ops.gauge_attn.kl_attention(
        mu, sigma, phi, kappa, valid_lengths, spec_.name, mode, exponential, causal, mask_self, window,
        float(alibi_slope), identity_transport, covariance_message, attention_energy)
    return Attention(mu_out, sigma_out if covariance_message else None, energy if attention_energy else None)


class KLAttention(torch.nn.Module):
    """kl_attention as a layer, with the temperatures as its state.

    kappa: one value for every head, or H values. learn_kappa=True makes log(kappa) an
    nn.Parameter (``log_kappa``; the log keeps kappa > 0 under any update); otherwise kappa is a
    buffer. The other keywords are those of kl_attention. forward(mu, sigma, phi, valid_lengths=None)
    returns an Attention (mu, and sigma / energy where requested).
    """

    def __init__(self, spec: str, kappa: Union[float, Sequence[float], torch.Tensor] = 1.0, *,
                 learn_kappa: bool = False, mode: str = "exact", exponential: str = "pade", causal: bool = False,
                 mask_self: bool = False, window: int = 0, alibi_slope: float = 0.0,
                 identity_transport: bool = False, covariance_message: bool = False, attention_energy: bool = False):
        super().__init__()
        self.spec = parse_spec(spec)
        kappa = torch.as_tensor(kappa, dtype=torch.float64).detach().clone().reshape(-1)
        if kappa.numel() not in (1, self.spec.num_heads) or not bool((kappa > 0).all()):
            raise ValueError(f"gauge_attn: 'kappa' must be 1 or H = {self.spec.num_heads} values > 0, got "
                             f"{kappa.tolist()}")
        if mode not in MODES:
            raise ValueError(f"gauge_attn: 'mode' must be one of {MODES}, got {mode!r}")
        if exponential not in EXPONENTIALS:
            raise ValueError(f"gauge_attn: 'exponential' must be one of {EXPONENTIALS}, got {exponential!r}")
        self.learn_kappa = learn_kappa
        if learn_kappa:  # a parameter in the default dtype, converted with the module (.double(), ...)
            self.log_kappa = torch.nn.Parameter(kappa.log().to(torch.get_default_dtype()))
        else:  # float64, as the kernels take kappa, so that 0.43 stays 0.43
            self.register_buffer("fixed_kappa", kappa)
        self.options = dict(mode=mode, exponential=exponential, causal=causal, mask_self=mask_self, window=window,
                            alibi_slope=alibi_slope, identity_transport=identity_transport,
                            covariance_message=covariance_message, attention_energy=attention_energy)

    @property
    def kappa(self) -> torch.Tensor:
        return self.log_kappa.exp() if self.learn_kappa else self.fixed_kappa

    def forward(self, mu: torch.Tensor, sigma: torch.Tensor, phi: torch.Tensor,
                valid_lengths: Optional[torch.Tensor] = None) -> Attention:
        return kl_attention(mu, sigma, phi, self.kappa, self.spec, valid_lengths=valid_lengths, **self.options)

    def extra_repr(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"spec='{self.spec.name}' ({NAMED_SPECS[self.spec.name]}), learn_kappa={self.learn_kappa}, {options}"
