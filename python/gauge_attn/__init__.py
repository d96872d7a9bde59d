"""Gauge-equivariant KL-divergence attention over SO(3) irreps, as PyTorch operators with autograd.

    out = gauge_attn.kl_attention(mu, sigma, phi, kappa, spec="upstream", causal=True)
    layer = gauge_attn.KLAttention("5x0+3x1+1x2", kappa=0.43, causal=True, learn_kappa=True)

Both run the operator ``torch.ops.gauge_attn.kl_attention`` (python/csrc/ops.cpp), compiled from the
gauge_attn C++ headers: on CPU tensors the forward is ``attention_forward<Spec>``, the backward
``torch.ops.gauge_attn.kl_attention_backward``, i.e. ``attention_backward<Spec>``; on CUDA tensors
(python/csrc/ops_cuda.cu) the fused kernels ``gpu::Forward<Spec>`` and ``gpu::Backward<Spec>``. The
extension holds the named specs chosen when it was built (all five by default); another spec gets
operators of its own, compiled on first use. This module adds what PyTorch wants registered from
Python: the fake kernels, with which torch.compile traces the operators without running them, and
the autograd formula. docs/pytorch.md is the user's guide.
"""

import hashlib
import os
import sys
import threading
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch

from . import _C  # noqa: F401  (loading the extension registers the operators)
from . import _build_config, _masks, _sources
from ._sources import MAX_L, NAMED_SPECS

__all__ = ["NAMED_SPECS", "MAX_MATRIX_ENTRIES", "IrrepSpec", "parse_spec", "Attention", "AttentionMatrices",
           "kl_attention", "KLAttention"]

# NAMED_SPECS (from _sources): the upstream note's five, name -> "HxL+..." (H heads of spin L each, in
# embedding order). The extension holds those of _build_config.SPECS (all five unless GAUGE_ATTN_SPECS
# chose fewer at build time); any other spec, named or not, is compiled on first use (_build_spec).

MODES = ("exact", "upstream")
EXPONENTIALS = ("pade", "taylor4")


class IrrepSpec(NamedTuple):
    """The layout of an irrep spec: ``irreps`` is ((heads, l), ...) in embedding order."""

    name: str  # a key of NAMED_SPECS, or the "HxL+..." string of a spec built just in time
    irreps: Tuple[Tuple[int, int], ...]

    @property
    def text(self) -> str:
        return _sources.text(self.irreps)

    @property
    def namespace(self) -> str:
        """The namespace of its operators: gauge_attn (the extension's specs), or one per spec built
        just in time."""
        return "gauge_attn" if self.name in _build_config.SPECS else "gauge_attn_" + _sources.unit_stem(self.text)

    @property
    def num_heads(self) -> int:
        return sum(h for h, _ in self.irreps)

    @property
    def embed_dim(self) -> int:
        return sum(h * (2 * l + 1) for h, l in self.irreps)

    def __str__(self) -> str:
        return self.name


def parse_spec(spec) -> IrrepSpec:
    """The IrrepSpec of a spec name (``NAMED_SPECS``), of a string like "5x0+3x1+1x2", or of the
    upstream layer's irrep_spec, a list like [("ℓ0", 5, 1), ("ℓ1", 3, 3), ("ℓ2", 1, 5)] of
    (label, heads, dim = 2l+1).

    Raises ValueError for anything else. A spec that the extension does not hold is compiled the
    first time an operator runs it (see _build_spec).
    """
    if isinstance(spec, (list, tuple)) and all(isinstance(t, (list, tuple)) and len(t) == 3 for t in spec):
        if not all(isinstance(d, int) and d % 2 == 1 for _, _, d in spec):
            raise ValueError(f"gauge_attn: 'spec': every irrep dimension must be odd (2l+1), got {spec!r}")
        spec = "+".join(f"{heads}x{(dim - 1) // 2}" for _, heads, dim in spec)
    if not isinstance(spec, str):
        raise TypeError(f"gauge_attn: 'spec' must be a name, a string 'HxL+...' or a list of (label, heads, dim), "
                        f"got {type(spec).__name__}")
    if spec in NAMED_SPECS:
        return IrrepSpec(spec, _sources.irreps(NAMED_SPECS[spec]))
    irreps = _sources.irreps(spec)
    if irreps is None or any(h < 1 or l > MAX_L for h, l in irreps):
        raise ValueError(f"gauge_attn: 'spec' must be one of {sorted(NAMED_SPECS)} or a string like "
                         f"'5x0+3x1+1x2' (heads x spin, at least one head each, spins up to {MAX_L}), got {spec!r}")
    for name, text in NAMED_SPECS.items():
        if _sources.irreps(text) == irreps:
            return IrrepSpec(name, irreps)
    return IrrepSpec(_sources.text(irreps), irreps)


# ---------------------------------------------------------------------------------------------
# Specs built just in time: the operator library of python/csrc (shipped as gauge_attn/jit/ with the
# headers) compiled for one spec, in its own operator namespace, by torch.utils.cpp_extension.load,
# in a build directory per spec under GAUGE_ATTN_JIT_DIR (default ~/.cache/gauge_attn/jit); with CUDA
# kernels when the extension has them. The build is kept: a later process loads it in a second; it is
# redone when the sources change (their digest is in the generated units).

_built = {"gauge_attn"}  # the namespaces whose operators are registered
_build_lock = threading.Lock()


def _build_spec(spec: IrrepSpec) -> None:
    jit = Path(__file__).resolve().parent / "jit"
    csrc, include = jit / "csrc", jit / "include"
    if not csrc.exists():
        raise RuntimeError(f"gauge_attn: {csrc} is missing: spec '{spec.name}' cannot be built just in time from "
                           "this installation (reinstall with `pip install --no-build-isolation ./python`)")
    eigen = Path(os.environ.get("EIGEN3_INCLUDE_DIR", "/usr/include/eigen3"))
    digest = hashlib.sha256()
    for path in sorted([*csrc.iterdir(), *include.rglob("*.hpp"), *include.rglob("*.cuh")]):
        digest.update(path.read_bytes())
    note = f", sources {digest.hexdigest()[:16]}"
    root = Path(os.environ.get("GAUGE_ATTN_JIT_DIR", Path.home() / ".cache" / "gauge_attn" / "jit"))
    build = root / spec.namespace
    devices = ("cpu", "cuda") if _build_config.CUDA else ("cpu",)
    sources = [str(csrc / "ops.cpp")] + ([str(csrc / "ops_cuda.cu")] if _build_config.CUDA else [])
    for device, suffix in zip(devices, ("_cpu.cpp", "_cuda.cu")):
        sources.append(str(_sources.write_if_changed(build / ("spec" + suffix),
                                                      _sources.spec_unit(spec.name, spec.irreps, device, note))))
    namespace = f"-DGAUGE_ATTN_NAMESPACE={spec.namespace}"
    if _build_config.CUDA and "TORCH_CUDA_ARCH_LIST" not in os.environ and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = _sources.DEFAULT_CUDA_ARCH
    print(f"gauge_attn: loading the operators of spec '{spec.name}' from {build}, compiling them first if needed "
          f"({' and '.join(d.upper() for d in devices)} kernels; minutes the first time, then kept)",
          file=sys.stderr, flush=True)
    from torch.utils import cpp_extension  # here: importing it looks for CUDA and can warn about it

    try:
        cpp_extension.load(
            name=spec.namespace, sources=sources, extra_include_paths=[str(csrc), str(include), str(eigen)],
            extra_cflags=[*_sources.CXX_FLAGS, namespace], extra_cuda_cflags=[*_sources.NVCC_FLAGS, namespace],
            extra_ldflags=_sources.LINK_FLAGS, build_directory=str(build), is_python_module=False)
    except Exception as error:
        raise RuntimeError(f"gauge_attn: building spec '{spec.name}' just in time failed (it needs a C++17 "
                           f"compiler, ninja{', nvcc' if _build_config.CUDA else ''} and Eigen's headers, {eigen}; "
                           f"set EIGEN3_INCLUDE_DIR): {error}") from error


def _operators(spec: IrrepSpec):
    """torch.ops.<namespace> of the spec, its operators built and registered on first use."""
    if spec.namespace not in _built:
        with _build_lock:
            if spec.namespace not in _built:
                _build_spec(spec)
                _register(spec.namespace)
                _built.add(spec.namespace)
    return getattr(torch.ops, spec.namespace)


class Attention(NamedTuple):
    """What kl_attention returns; an output that was not requested is None."""

    mu: torch.Tensor  # (B, N, E) mean messages m_i (M6), heads concatenated in spec order
    sigma: Optional[torch.Tensor]  # covariance messages (M7), in the layout of the input sigma
    energy: Optional[torch.Tensor]  # (B, H, N) attention energy e_ih = sum_j beta_ij KL_ij


class AttentionMatrices(NamedTuple):
    """What kl_attention returns with return_matrices=True: Attention's fields, then the matrices."""

    mu: torch.Tensor
    sigma: Optional[torch.Tensor]
    energy: Optional[torch.Tensor]
    beta: torch.Tensor  # (B, H, N, N) attention weights (no gradient)
    kl: torch.Tensor  # (B, H, N, N) KL(q_i || Omega_ij q_j) (no gradient)


# return_matrices materialises B * H * N^2 entries of beta and of KL (in float64 on the CPU): at most this many.
MAX_MATRIX_ENTRIES = 2**27


def _check_inputs(mu, sigma, phi, kappa, valid_lengths, spec: IrrepSpec, mode, exponential):
    """Raises TypeError / ValueError naming the argument; the shapes are those of the C++ checks
    (make_call in ops.cpp, check_cuda_call in ops_cuda.cu), which guard direct calls of the
    operator. Returns (B, N, H)."""
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
        raise ValueError(f"gauge_attn: 'mu' has E = {E} but spec '{spec}' ({spec.text}) has "
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
    for name, t in (("kappa", kappa), ("valid_lengths", valid_lengths)):  # read on the host: any device
        if t is not None and t.device not in (mu.device, torch.device("cpu")):
            raise ValueError(f"gauge_attn: '{name}' must be on the CPU or on the device of 'mu' ({mu.device}), "
                             f"got {t.device}")
    _check_choices(mode, exponential)
    if mu.device.type == "cuda":
        if not _build_config.CUDA:
            raise RuntimeError(f"gauge_attn: 'mu' is on {mu.device}, but this installation has no CUDA kernels "
                               "(reinstall on a machine with nvcc and a GPU, or with GAUGE_ATTN_CUDA=1), or pass "
                               "CPU tensors")
        if mu.dtype != torch.float32:
            raise TypeError(f"gauge_attn: 'mu' is {mu.dtype} on {mu.device}, but the CUDA kernels compute in "
                            "float32 only: pass float32 CUDA tensors, or CPU tensors for float64")
        if mode != "exact":
            raise ValueError(f"gauge_attn: 'mode' is {mode!r}, which runs on the CPU only (the CUDA kernels compute "
                             "the exact mode): pass CPU tensors for mode='upstream'")
    return B, N, H


def _check_choices(mode, exponential):
    if mode not in MODES:
        raise ValueError(f"gauge_attn: 'mode' must be one of {MODES}, got {mode!r}")
    if exponential not in EXPONENTIALS:
        raise ValueError(f"gauge_attn: 'exponential' must be one of {EXPONENTIALS}, got {exponential!r}")


def _kl_attention_fake(mu, sigma, phi, kappa, valid_lengths, spec, mode, exponential, causal, mask_self, window,
                       alibi_slope, identity_transport, covariance_message, attention_energy, check_inputs):
    B, N, H = _check_inputs(mu, sigma, phi, kappa, valid_lengths, parse_spec(spec), mode, exponential)
    # Outputs that are not produced come back as (0,) tensors, as from the C++ kernel.
    return (mu.new_empty(mu.shape),
            sigma.new_empty(sigma.shape if covariance_message else (0,)),
            mu.new_empty((B, H, N) if attention_energy else (0,)),
            mu.new_empty((B, H, N) if mode == "exact" else (0,)))


def _attention_matrices_fake(mu, sigma, phi, kappa, valid_lengths, spec, *options):
    B, N, _ = mu.shape
    H = parse_spec(spec).num_heads
    return mu.new_empty((B, H, N, N)), mu.new_empty((B, H, N, N))


def _kl_attention_backward_fake(grad_mu, grad_sigma, grad_energy, mu_out, sigma_out, energy, lse, mu, sigma, phi,
                                kappa, *options):
    # The kernel returns contiguous gradients in the shape of each input.
    return mu.new_empty(mu.shape), sigma.new_empty(sigma.shape), phi.new_empty(phi.shape), kappa.new_empty(kappa.shape)


def _setup_context(ctx, inputs, output):
    mu, sigma, phi, kappa, valid_lengths = inputs[:5]
    ctx.save_for_backward(*output, mu, sigma, phi, kappa, valid_lengths)
    ctx.options = inputs[5:]  # spec, mode, ... check_inputs: plain values
    # The gradient of an output that the loss does not use stays None, not zeros: the kernels then
    # skip its terms (a Σ^agg gradient costs the GPU backward a wider pair pass).
    ctx.set_materialize_grads(False)


def _register(namespace: str) -> None:
    """The Python halves of the operators of a namespace: fake kernels and the autograd formula."""
    backward_op = getattr(getattr(torch.ops, namespace), "kl_attention_backward")

    @torch.autograd.function.once_differentiable  # no double backward: a second one raises, not returns zeros
    def backward(ctx, grad_mu, grad_sigma, grad_energy, grad_lse):
        # The log-sum-exp is saved state, not a result (kl_attention drops it), so grad_lse is unused;
        # the gradients of outputs that were not produced are ignored by the kernel, None ones are zero.
        grads = backward_op(grad_mu, grad_sigma, grad_energy, *ctx.saved_tensors, *ctx.options)
        return (*grads, None) + (None,) * len(ctx.options)  # None: valid_lengths and the options

    torch.library.register_fake(f"{namespace}::kl_attention", _kl_attention_fake)
    torch.library.register_fake(f"{namespace}::kl_attention_backward", _kl_attention_backward_fake)
    torch.library.register_fake(f"{namespace}::attention_matrices", _attention_matrices_fake)
    torch.library.register_autograd(f"{namespace}::kl_attention", backward, setup_context=_setup_context)


_register("gauge_attn")


def kl_attention(mu: torch.Tensor, sigma: torch.Tensor, phi: torch.Tensor,
                 kappa: Union[float, Sequence[float], torch.Tensor], spec: Union[str, IrrepSpec] = "upstream", *,
                 valid_lengths: Optional[torch.Tensor] = None, mode: str = "exact", exponential: str = "pade",
                 causal: bool = False, mask_self: bool = False, window: int = 0, alibi_slope: float = 0.0,
                 identity_transport: bool = False, covariance_message: bool = False,
                 attention_energy: bool = False, check_inputs: bool = True, mask: Optional[torch.Tensor] = None,
                 additive_mask: Optional[torch.Tensor] = None,
                 return_matrices: bool = False) -> Union[Attention, AttentionMatrices]:
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

    mask, additive_mask: the upstream layer's dense masks instead of causal / window / alibi_slope,
    (B, N, N) or (N, N): mask 0 (or False) where i cannot attend to j; additive_mask added to the
    logits, -inf where i cannot attend. They are read on the host and turned into those options
    (gauge_attn/_masks.py); a pattern that no option gives raises ValueError (the kernels hold no
    N x N mask).

    CUDA tensors run the fused GPU kernels: float32 and the exact mode only. check_inputs (CUDA
    only; the CPU always checks): after each forward and backward, wait for the GPU and raise
    ValueError for a non-finite input, a covariance that is not positive definite or a non-finite
    incoming gradient. False saves that synchronisation; a bad input then gives NaN outputs and is
    reported by the next checked call on the same stream.

    return_matrices: an AttentionMatrices, with beta and KL, (B, H, N, N), for inspecting small N
    (B * H * N^2 at most MAX_MATRIX_ENTRIES): computed by the CPU library (float64 for CUDA inputs,
    then moved to their device and dtype), without gradients.
    """
    spec_ = spec if isinstance(spec, IrrepSpec) else parse_spec(spec)
    if not isinstance(kappa, torch.Tensor):
        kappa = torch.tensor(kappa, dtype=torch.float64).reshape(-1)  # on the CPU, where the kernels read it
    B, N, H = _check_inputs(mu, sigma, phi, kappa, valid_lengths, spec_, mode, exponential)
    if return_matrices and B * H * N * N > MAX_MATRIX_ENTRIES:
        raise ValueError(f"gauge_attn: 'return_matrices' would hold B * H * N^2 = {B * H * N * N} entries of beta and "
                         f"of KL, more than MAX_MATRIX_ENTRIES = {MAX_MATRIX_ENTRIES}: use a smaller N or B")
    if mask is not None or additive_mask is not None:
        if causal or window or alibi_slope:
            raise ValueError("gauge_attn: pass 'mask' / 'additive_mask' or the options causal, window and alibi_slope, "
                             f"not both (got causal={causal}, window={window}, alibi_slope={alibi_slope})")
        options = _masks.options_of(mask, additive_mask, B, N)
        causal, window, alibi_slope = options["causal"], options["window"], options["alibi_slope"]
    ops = _operators(spec_)
    mu_out, sigma_out, energy, _ = ops.kl_attention(
        mu, sigma, phi, kappa, valid_lengths, spec_.name, mode, exponential, causal, mask_self, window,
        float(alibi_slope), identity_transport, covariance_message, attention_energy, check_inputs)
    attention = Attention(mu_out, sigma_out if covariance_message else None, energy if attention_energy else None)
    if not return_matrices:
        return attention
    on_cpu = mu.device.type == "cpu"
    host = [t.detach() if on_cpu else t.detach().to("cpu", torch.float64) for t in (mu, sigma, phi)]
    lengths = valid_lengths.cpu() if valid_lengths is not None else None
    beta, kl = ops.attention_matrices(*host, kappa.detach().cpu(), lengths, spec_.name, mode, exponential, causal,
                                      mask_self, window, float(alibi_slope), identity_transport, False, False, True)
    if not on_cpu:
        beta, kl = beta.to(mu.device, mu.dtype), kl.to(mu.device, mu.dtype)
    return AttentionMatrices(*attention, beta, kl)


class KLAttention(torch.nn.Module):
    """kl_attention as a layer, with the temperatures as its state.

    kappa: one value for every head, or H values. learn_kappa=True makes log(kappa) an
    nn.Parameter (``log_kappa``; the log keeps kappa > 0 under any update); otherwise kappa is a
    buffer. The other keywords are those of kl_attention. forward(mu, sigma, phi, valid_lengths=None,
    mask=None, additive_mask=None) returns an Attention (mu, and sigma / energy where requested), or
    with return_matrices=True an AttentionMatrices.
    """

    def __init__(self, spec: str, kappa: Union[float, Sequence[float], torch.Tensor] = 1.0, *,
                 learn_kappa: bool = False, mode: str = "exact", exponential: str = "pade", causal: bool = False,
                 mask_self: bool = False, window: int = 0, alibi_slope: float = 0.0,
                 identity_transport: bool = False, covariance_message: bool = False, attention_energy: bool = False,
                 check_inputs: bool = True, return_matrices: bool = False):
        super().__init__()
        self.spec = parse_spec(spec)
        _operators(self.spec)  # a spec built just in time is built now, not while torch.compile traces
        kappa = torch.as_tensor(kappa, dtype=torch.float64).detach().clone().reshape(-1)
        if kappa.numel() not in (1, self.spec.num_heads) or not bool((kappa > 0).all()):
            raise ValueError(f"gauge_attn: 'kappa' must be 1 or H = {self.spec.num_heads} values > 0, got "
                             f"{kappa.tolist()}")
        _check_choices(mode, exponential)
        self.learn_kappa = learn_kappa
        if learn_kappa:  # a parameter in the default dtype, converted with the module (.double(), ...)
            self.log_kappa = torch.nn.Parameter(kappa.log().to(torch.get_default_dtype()))
        else:  # float64, as the kernels take kappa, so that 0.43 stays 0.43
            self.register_buffer("fixed_kappa", kappa)
        self.options = dict(mode=mode, exponential=exponential, causal=causal, mask_self=mask_self, window=window,
                            alibi_slope=alibi_slope, identity_transport=identity_transport,
                            covariance_message=covariance_message, attention_energy=attention_energy,
                            check_inputs=check_inputs, return_matrices=return_matrices)

    @property
    def kappa(self) -> torch.Tensor:
        return self.log_kappa.exp() if self.learn_kappa else self.fixed_kappa

    def forward(self, mu: torch.Tensor, sigma: torch.Tensor, phi: torch.Tensor,
                valid_lengths: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                additive_mask: Optional[torch.Tensor] = None) -> Attention:
        """mask / additive_mask: the upstream layer's dense masks (see kl_attention), in place of the
        layer's causal / window / alibi_slope, which must then be off."""
        return kl_attention(mu, sigma, phi, self.kappa, self.spec, valid_lengths=valid_lengths, mask=mask,
                            additive_mask=additive_mask, **self.options)

    def extra_repr(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"spec='{self.spec.name}' ({self.spec.text}), learn_kappa={self.learn_kappa}, {options}"
