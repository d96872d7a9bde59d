"""Dense attention masks, as the upstream layer takes them, read as the kernels' mask options.

The kernels never hold an N x N mask: they compute the allowed keys of a row from the options causal,
window and valid lengths, and the bias from alibi_slope (math.md section 5). The upstream layer takes a
dense mask (B, N, N) or (N, N) in which 0 means "i cannot attend to j" (masked_fill(mask == 0, -inf)
on the logits). ``options_of`` reads such a mask, and an additive one, and returns the options that
give the same attention, or raises ValueError naming the argument when no options do.

Reading the mask is a host-side comparison of B * N^2 entries (one synchronisation on a GPU); pass the
options themselves where that matters, and under torch.compile(fullgraph=True), whose graph cannot
branch on tensor values.
"""

from typing import Dict, Optional

import torch

__all__ = ["options_of"]


def _pattern(N: int, device, causal: bool, window: int) -> torch.Tensor:
    """(N, N) booleans: may row i attend to key j under the kernels' causal and window options."""
    i = torch.arange(N, device=device).unsqueeze(1)
    j = torch.arange(N, device=device).unsqueeze(0)
    allowed = torch.ones(N, N, dtype=torch.bool, device=device)
    if causal:
        allowed &= j <= i
        if window > 0:
            allowed &= j > i - window  # i - W < j <= i
    elif window > 0:
        allowed &= (i - j).abs() <= window // 2
    return allowed


def _one_pattern(allowed: torch.Tensor, name: str) -> torch.Tensor:
    """The (N, N) pattern shared by every sequence of a (B, N, N) or (N, N) mask."""
    if allowed.dim() == 2:
        return allowed
    if not bool((allowed == allowed[:1]).all()):
        b = int((allowed != allowed[:1]).flatten(1).any(1).nonzero()[0])
        raise ValueError(f"gauge_attn: '{name}' differs between sequences (sequence {b} is not sequence 0's): the "
                         "kernels apply one pattern to every sequence; give padded sequences 'valid_lengths' instead")
    return allowed[0]


def _options_of_pattern(allowed: torch.Tensor, name: str) -> Dict[str, object]:
    """causal and window for an (N, N) boolean pattern, or ValueError when none gives it."""
    N = allowed.shape[0]
    candidates = [(False, 0), (True, 0)]
    causal_width = int(allowed[N - 1].sum())  # i - W < j <= i: the last row sees W keys
    if 0 < causal_width < N:
        candidates.append((True, causal_width))
    half = int(allowed[0].sum()) - 1  # |i - j| <= W/2: the first row sees W/2 + 1 keys
    if 0 <= half < N - 1:
        candidates.append((False, 2 * half))
    for causal, window in candidates:
        if torch.equal(allowed, _pattern(N, allowed.device, causal, window)):
            return dict(causal=causal, window=window)
    i, j = (int(x) for x in (allowed != _pattern(N, allowed.device, True, 0)).nonzero()[0])  # where causal fails
    raise ValueError(f"gauge_attn: '{name}' is not a pattern the kernels compute (every key; causal, j <= i; a causal "
                     f"window, i - W < j <= i; a centred window, |i - j| <= W/2), e.g. at (i, j) = ({i}, {j}); "
                     "the fused kernels never hold an N x N mask: compute the others with your own attention")


def _alibi_slope(bias: torch.Tensor, allowed: torch.Tensor, name: str) -> float:
    """s such that bias[i, j] = s * (i - j) on every allowed entry (the kernels' ALiBi), else ValueError."""
    N = bias.shape[-1]
    distance = (torch.arange(N, device=bias.device).unsqueeze(1) - torch.arange(N, device=bias.device)).to(bias.dtype)
    d, v = distance[allowed], bias[allowed]
    slope = float((d * v).sum() / (d * d).sum()) if bool((d != 0).any()) else 0.0
    error = (v - slope * d).abs()
    tolerance = 1e-6 * max(1.0, abs(slope) * N)
    if bool((error > tolerance).any()):
        k = int(error.argmax())
        i, j = (int(x) for x in allowed.nonzero()[k])
        raise ValueError(f"gauge_attn: '{name}' adds {float(v[k])!r} at (i, j) = ({i}, {j}), which is no ALiBi bias "
                         f"slope * (i - j) (the best slope, {slope!r}, gives {slope * (i - j)!r}): the kernels add no "
                         "other bias; use a mask of 0 and -inf only, or alibi_slope")
    return slope


def options_of(mask: Optional[torch.Tensor], additive_mask: Optional[torch.Tensor], B: int, N: int) -> Dict[str, object]:
    """The kernels' options (causal, window, alibi_slope) equivalent to the masks.

    mask: (B, N, N) or (N, N), the upstream's convention: bool True, or any non-zero number, means
    "may attend". additive_mask: (B, N, N) or (N, N) floats added to the logits (-KL/kappa): 0 or a
    bias where attending, -inf where not. Both may be given; a key is allowed where both allow it.
    """
    allowed = None
    slope = 0.0
    for name, m in (("mask", mask), ("additive_mask", additive_mask)):
        if m is None:
            continue
        if not isinstance(m, torch.Tensor):
            raise TypeError(f"gauge_attn: '{name}' must be a torch.Tensor, got {type(m).__name__}")
        if tuple(m.shape) not in ((B, N, N), (N, N)):
            raise ValueError(f"gauge_attn: '{name}' must be (B, N, N) = {(B, N, N)} or (N, N) = {(N, N)}, got "
                             f"{tuple(m.shape)}")
        if name == "mask":
            this = _one_pattern(m if m.dtype == torch.bool else m != 0, name)
        else:
            if not m.is_floating_point():
                raise TypeError(f"gauge_attn: 'additive_mask' must be a floating tensor (0 or a bias to attend, -inf "
                                f"not to), got {m.dtype}")
            if bool(torch.isnan(m).any()) or bool((m == float("inf")).any()):
                raise ValueError("gauge_attn: 'additive_mask' holds NaN or +inf (0 or a bias to attend, -inf not to)")
            this = _one_pattern(m != float("-inf"), name)
            bias = m if m.dim() == 2 else m[0]
            if m.dim() == 3 and not bool(((m == bias) | (m == float("-inf"))).all()):
                raise ValueError("gauge_attn: 'additive_mask' adds different biases in different sequences: the "
                                 "kernels add one ALiBi bias to every sequence")
            slope = _alibi_slope(bias.double(), this, name) if bool((bias[this] != 0).any()) else 0.0
        allowed = this if allowed is None else allowed & this
    if allowed is None:
        return {}
    if not bool(allowed.any(1).all()):
        i = int((~allowed.any(1)).nonzero()[0])
        raise ValueError(f"gauge_attn: the masks leave row {i} no key to attend to (its softmax is undefined)")
    return dict(_options_of_pattern(allowed, "mask" if mask is not None else "additive_mask"), alibi_slope=slope)
