"""A small gauge transformer language model on gauge_attn.KLAttention, its dot-product baseline, and
the byte-level corpus they train on (docs/training.md).

The gauge model follows the upstream's GaugeTransformerLM in its semantics (not its code): each byte
token is a belief q_i = N(mu_i, diag sigma_i) with a gauge frame phi_i, all three looked up per token
(a learned position embedding added to mu, as upstream); every layer is the KL attention of an irrep
spec (no query/key/value projections, no output projection: the message m_i = sum_j beta_ij Omega_ij
mu_j is added to mu) followed by a feed-forward block on mu; a linear readout of mu gives the logits.
Sigma and phi stay those of the embedding through the layers (the upstream's default, evolve_sigma and
evolve_phi off). kappa is the upstream's kappa_base * E / 11, one for all heads, or learned per head.

The baseline (attention="sdpa") is the same model with ordinary dot-product attention in the gauge
model's place: pre-norm, query/key/value and output projections, heads of the spec's sizes (2l+1),
torch.nn.functional.scaled_dot_product_attention; no sigma or phi. Its feed-forward width is chosen
so that both models have about the same number of parameters (matched_baseline).

attention="torch-upstream" is the gauge model with the upstream layer's own way of computing the
attention in its place: plain PyTorch that materialises Omega_ij as (B, N, N, K, K) per head, the
upstream's diagonal KL and its clamps (upstream_forward of bench/torch_baselines.py, math.md section 6).
The same parameters; it is there for the speed of the upstream's layer, and fits small N only.
"""

import dataclasses
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

import gauge_attn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import torch_baselines  # noqa: E402  (bench/torch_baselines.py: the upstream layer's arithmetic in PyTorch)

VOCAB = 256  # byte-level tokens
DEFAULT_CORPUS = Path("/usr/share/games/fortunes")  # Debian's fortunes and fortunes-min packages
SIGMA_FLOOR = 1e-3  # smallest variance: keeps KL = ... + (mu_i - mu_j)^2 / (2 sigma) finite
ATTENTIONS = ("gauge", "sdpa", "torch-upstream")
BELIEF_ATTENTIONS = ("gauge", "torch-upstream")  # the models whose tokens carry (mu, sigma, phi)


@dataclasses.dataclass
class ModelConfig:
    attention: str = "gauge"  # "gauge" (KLAttention), "sdpa" (dot-product) or "torch-upstream" (upstream's way)
    spec: str = "upstream"  # irrep spec: a name of gauge_attn.NAMED_SPECS or "HxL+..."
    layers: int = 2
    context: int = 128  # N: the longest sequence (the position embedding's size)
    hidden: int = 76  # width of the feed-forward block
    kappa_base: float = 1.0  # kappa = kappa_base * E / 11, as the upstream training scaled it
    learn_kappa: bool = False  # one learned kappa per head, starting from the above
    mode: str = "exact"  # KLAttention's mode: "exact" or "upstream" (its arithmetic, O(N^2 K^3))
    mask_self: bool = True  # the upstream note's model masked j = i (KL(q_i || q_i) = 0 dominates otherwise)
    attention_energy: bool = False  # layers also return e_ih = sum_j beta_ij KL_ij (for lambda_beta > 0)
    mu_init_std: float = 1.0  # std of the mean embeddings: sets the initial KL scale

    def __post_init__(self):
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if self.attention == "torch-upstream" and self.irreps.name not in torch_baselines.SPECS:
            raise ValueError(f"attention 'torch-upstream' takes the named specs {sorted(torch_baselines.SPECS)}, "
                             f"got spec {self.spec!r}")
        for name in ("layers", "context", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("kappa_base", "mu_init_std"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def irreps(self) -> gauge_attn.IrrepSpec:
        return gauge_attn.parse_spec(self.spec)

    @property
    def kappa(self) -> float:
        return self.kappa_base * self.irreps.embed_dim / 11


class GaugeAttention(nn.Module):
    """KL attention on the beliefs; returns the mean message (B, N, E) and the energy (B, H, N) or None."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        kappa = [config.kappa] * (config.irreps.num_heads if config.learn_kappa else 1)
        self.attention = gauge_attn.KLAttention(config.spec, kappa=kappa, learn_kappa=config.learn_kappa,
                                                mode=config.mode, causal=True, mask_self=config.mask_self,
                                                attention_energy=config.attention_energy)

    @property
    def kappa(self) -> torch.Tensor:
        return self.attention.kappa

    def forward(self, mu, sigma, phi):
        out = self.attention(mu, sigma, phi)
        return out.mu, out.energy


class TorchUpstreamAttention(GaugeAttention):
    """GaugeAttention with the upstream layer's arithmetic in plain PyTorch (upstream_forward of
    torch_baselines) in the operator's place: the same parameters (kappa as KLAttention keeps it) and
    mask; no energy."""

    def forward(self, mu, sigma, phi):
        N, options = mu.shape[1], self.attention.options
        mask = torch_baselines.causal_mask(N, mu.device)  # True where masked
        if options["mask_self"]:  # as KLAttention's: j = i stays only on a row with no other key (i = 0)
            mask |= torch.eye(N, dtype=torch.bool, device=mu.device)
            mask[0, 0] = False
        kappa = self.kappa.to(mu.dtype).expand(self.attention.spec.num_heads)
        return torch_baselines.upstream_forward(self.attention.spec.name, mu, sigma, phi, kappa, mask), None


class DotProductAttention(nn.Module):
    """Causal dot-product attention with the spec's head sizes (all heads of one l in one SDPA call)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        E = config.irreps.embed_dim
        self.groups = [(heads, 2 * l + 1) for heads, l in config.irreps.irreps]
        self.norm = nn.LayerNorm(E)
        self.qkv = nn.Linear(E, 3 * E)
        self.out = nn.Linear(E, E)

    def forward(self, mu, sigma, phi):  # sigma, phi: unused, the gauge layer's signature
        B, N, E = mu.shape
        q, k, v = self.qkv(self.norm(mu)).split(E, dim=-1)
        messages, offset = [], 0
        for heads, K in self.groups:  # each (B, N, heads*K) slice as (B, heads, N, K)
            group = (t[..., offset:offset + heads * K].reshape(B, N, heads, K).transpose(1, 2) for t in (q, k, v))
            m = F.scaled_dot_product_attention(*group, is_causal=True)
            messages.append(m.transpose(1, 2).reshape(B, N, heads * K))
            offset += heads * K
        return self.out(torch.cat(messages, dim=-1)), None


class Block(nn.Module):
    """mu += attention(mu, sigma, phi); mu += feed-forward(LayerNorm(mu))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        E = config.irreps.embed_dim
        layers = {"gauge": GaugeAttention, "sdpa": DotProductAttention, "torch-upstream": TorchUpstreamAttention}
        self.attention = layers[config.attention](config)
        self.feed_forward = nn.Sequential(nn.LayerNorm(E), nn.Linear(E, config.hidden), nn.GELU(),
                                          nn.Linear(config.hidden, E))

    def forward(self, mu, sigma, phi):
        message, energy = self.attention(mu, sigma, phi)
        mu = mu + message
        return mu + self.feed_forward(mu), energy


class LanguageModel(nn.Module):
    """Byte tokens (B, N) -> logits (B, N, 256), with either attention (ModelConfig.attention)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        E = config.irreps.embed_dim
        self.mu_embed = nn.Embedding(VOCAB, E)
        self.position = nn.Embedding(config.context, E)
        for embedding in (self.mu_embed, self.position):
            nn.init.normal_(embedding.weight, std=config.mu_init_std)
        if config.attention in BELIEF_ATTENTIONS:
            # softplus(raw) + floor starts at variance 1; phi ~ N(0, 0.1^2) as upstream starts it.
            self.sigma_embed = nn.Embedding(VOCAB, E)
            nn.init.constant_(self.sigma_embed.weight, float(torch.log(torch.expm1(torch.tensor(1.0 - SIGMA_FLOOR)))))
            self.phi_embed = nn.Embedding(VOCAB, 3)
            nn.init.normal_(self.phi_embed.weight, std=0.1)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.readout = nn.Sequential(nn.LayerNorm(E), nn.Linear(E, VOCAB))

    def forward(self, tokens: torch.Tensor, beliefs: Optional[List[Tuple[torch.Tensor, ...]]] = None):
        """Returns the logits (B, N, 256) and the attention energy summed over the layers and averaged
        over batch, heads and tokens (0 unless config.attention_energy). If ``beliefs`` is a list, the
        (mu, sigma, phi) entering each layer are appended to it."""
        B, N = tokens.shape
        if N > self.config.context:
            raise ValueError(f"tokens: sequences of N = {N} exceed the model's context {self.config.context}")
        mu = self.mu_embed(tokens) + self.position.weight[:N]
        if self.config.attention in BELIEF_ATTENTIONS:
            sigma = F.softplus(self.sigma_embed(tokens)) + SIGMA_FLOOR
            phi = self.phi_embed(tokens)
        else:
            sigma = phi = None
        energy = mu.new_zeros(())
        for block in self.blocks:
            if beliefs is not None:
                beliefs.append((mu, sigma, phi))
            mu, e = block(mu, sigma, phi)
            if e is not None:
                energy = energy + e.mean()
        return self.readout(mu), energy


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_baseline(config: ModelConfig) -> ModelConfig:
    """The sdpa config of the same shape whose parameter count is nearest the gauge model's: the count
    is affine in the feed-forward width, so two widths fix it."""
    target = parameter_count(LanguageModel(dataclasses.replace(config, attention="gauge")))
    counts = [parameter_count(LanguageModel(dataclasses.replace(config, attention="sdpa", hidden=h))) for h in (1, 2)]
    hidden = round(1 + (target - counts[0]) / (counts[1] - counts[0]))
    if hidden < 1:
        raise ValueError(f"no sdpa baseline matches the gauge model's {target} parameters: its attention "
                         f"projections alone are more (spec {config.spec}, layers {config.layers})")
    return dataclasses.replace(config, attention="sdpa", hidden=hidden, learn_kappa=False, attention_energy=False)


# ---------------------------------------------------------------------------------------------
# The corpus: bytes, split into training and validation data.

VALIDATION_BLOCK = 4096  # every tenth block of this many bytes is validation data


def read_corpus(path: Path) -> bytes:
    """A file's bytes, or those of every fortune file of a directory (a file beside its .dat index,
    as Debian's fortunes packages install them: the .u8 links and other files are left out), in name
    order. Raises FileNotFoundError / ValueError naming the path."""
    path = Path(path)
    if path.is_file():
        return path.read_bytes()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.with_name(p.name + ".dat").is_file())
        if not files:
            raise ValueError(f"--corpus {path}: the directory holds no fortune files (a text file beside its .dat "
                             "index); pass such a directory or a text file")
        return b"".join(p.read_bytes() for p in files)
    raise FileNotFoundError(f"--corpus {path}: no such file or directory. Install Debian's fortunes data "
                            f"(apt-get install fortunes; scripts/setup.sh does), which puts it in {DEFAULT_CORPUS}, "
                            "or pass --corpus FILE_OR_DIRECTORY")


def split_corpus(data: bytes, context: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) uint8 tensors: every tenth block of VALIDATION_BLOCK bytes is validation,
    so that both sample the whole corpus. Raises ValueError if either is too short for one sequence."""
    blocks = [data[i:i + VALIDATION_BLOCK] for i in range(0, len(data), VALIDATION_BLOCK)]
    parts = (b"".join(b for k, b in enumerate(blocks) if k % 10 != 9), b"".join(blocks[9::10]))
    for name, part in zip(("training", "validation"), parts):
        if len(part) <= context:
            raise ValueError(f"--corpus: {len(data)} bytes leave {len(part)} of {name} data, fewer than "
                             f"context + 1 = {context + 1} (the validation part is every tenth block of "
                             f"{VALIDATION_BLOCK} bytes)")
    return tuple(torch.frombuffer(bytearray(p), dtype=torch.uint8) for p in parts)


def windows(data: torch.Tensor, offsets: torch.Tensor, length: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-byte targets (len(offsets), length) int64 of the windows starting at offsets."""
    index = offsets[:, None] + torch.arange(length + 1)
    chunk = data[index].long()
    return chunk[:, :-1], chunk[:, 1:]
