"""Trains the gauge transformer of gauge_lm.py (or its dot-product baseline) to predict the next byte of
Debian's fortunes, on the CPU, one GPU, or several through torchrun and DistributedDataParallel.

    python examples/python/train_gauge_lm.py --steps 2000 --out out/train/gauge
    python examples/python/train_gauge_lm.py --attention sdpa --steps 2000 --out out/train/sdpa
    torchrun --nproc_per_node=2 examples/python/train_gauge_lm.py --steps 2000 --out out/train/gauge-2

--batch is the global batch: step s trains on the same --batch windows of the corpus whatever the
number of processes (drawn from a generator seeded by --seed and s), each process taking its slice,
so one and two processes follow the same loss curve up to rounding. Writes into --out: losses.csv
(a row per step), losses.png, checkpoint.pt (every --checkpoint-every steps and at the end; --resume
continues from it) and summary.json (final losses, tokens per second). docs/training.md has more.
"""

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import gauge_lm
import plot_losses

DTYPES = {"float32": torch.float32, "float64": torch.float64}
CSV_COLUMNS = ("step", "train_loss", "energy", "val_loss", "lr", "tokens_per_s", "elapsed_s")
WARM_STEPS = 10  # steps left out of the tokens/s of summary.json (allocator and kernel start-up)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=gauge_lm.DEFAULT_CORPUS,
                   help="a text file, or a directory of fortune files (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("out/train"), help="output directory (default: %(default)s)")
    m = p.add_argument_group("model (ignored with --resume: the checkpoint's model is trained)")
    m.add_argument("--attention", choices=gauge_lm.ATTENTIONS, default="gauge",
                   help="gauge: KLAttention; sdpa: dot-product attention, about as many parameters as gauge; "
                        "torch-upstream: the upstream layer's arithmetic in plain PyTorch (for its speed; small N)")
    m.add_argument("--spec", default="upstream", help="irrep spec: a named spec (%s) or 'HxL+...'"
                   % ", ".join(gauge_lm.gauge_attn.NAMED_SPECS))
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--context", type=int, default=128, help="tokens per sequence N")
    m.add_argument("--hidden", type=int, help="feed-forward width (default: 4E for gauge; for sdpa the width "
                   "that matches the gauge model's parameter count)")
    m.add_argument("--kappa-base", type=float, default=1.0, help="kappa = kappa_base * E / 11 (upstream)")
    m.add_argument("--learn-kappa", action="store_true", help="learn one kappa per head")
    m.add_argument("--mode", choices=("exact", "upstream"), default="exact", help="KLAttention's mode")
    m.add_argument("--mask-self", action=argparse.BooleanOptionalAction, default=True,
                   help="leave j = i out of the KL attention (default: on, as in the upstream note)")
    m.add_argument("--mu-init-std", type=float, default=1.0, help="std of the initial mean embeddings")
    t = p.add_argument_group("training")
    t.add_argument("--lambda-beta", type=float, default=0.0,
                   help="weight of the attention energy sum_j beta_ij KL_ij (mean over tokens and heads, "
                        "summed over layers) in the loss")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch", type=int, default=32, help="global batch (sequences per step, all processes)")
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of Adam")
    t.add_argument("--warmup", type=int, default=100, help="steps of linear warm-up, then cosine decay to lr/10")
    t.add_argument("--clip", type=float, default=1.0, help="gradient norm clip")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", choices=DTYPES, default="float32")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--eval-every", type=int, default=200, help="steps between validation losses")
    t.add_argument("--eval-batches", type=int, default=8, help="global batches in a validation loss")
    t.add_argument("--checkpoint-every", type=int, default=1000)
    t.add_argument("--resume", type=Path, help="a checkpoint.pt to continue from")
    t.add_argument("--time-limit", type=float, default=0.0,
                   help="stop (with checkpoint and files) at the first step after this many seconds; 0: none")
    args = p.parse_args(argv)
    for name in ("steps", "batch", "warmup", "eval_every", "eval_batches", "checkpoint_every", "context", "layers"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return p, args


def model_config(args) -> gauge_lm.ModelConfig:
    """The model of the command line; for sdpa without --hidden, the one matched to the gauge model."""
    gauge = gauge_lm.ModelConfig(attention="gauge", spec=args.spec, layers=args.layers, context=args.context,
                                 hidden=4 * gauge_lm.gauge_attn.parse_spec(args.spec).embed_dim
                                 if args.hidden is None else args.hidden,
                                 kappa_base=args.kappa_base, learn_kappa=args.learn_kappa, mode=args.mode,
                                 mask_self=args.mask_self, attention_energy=args.lambda_beta > 0,
                                 mu_init_std=args.mu_init_std)
    if args.attention != "sdpa":
        return dataclasses.replace(gauge, attention=args.attention)
    return gauge_lm.matched_baseline(gauge) if args.hidden is None else dataclasses.replace(gauge, attention="sdpa")


def init_distributed(device_arg: str):
    """(device, rank, world size); under torchrun, the process group (NCCL on GPUs, gloo on the CPU)."""
    if device_arg == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device")
    cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    return device, rank, world


def offsets(seed: int, stream: int, count: int, high: int) -> torch.Tensor:
    """count window starts in [0, high) from a generator of (seed, stream) alone: stream s + 1 is step s
    of training, stream 0 the validation set, the same in every process."""
    generator = torch.Generator().manual_seed(seed * 2**32 + stream)
    return torch.randint(0, high, (count,), generator=generator)


def learning_rate(args, step: int) -> float:
    warm = min(1.0, (step + 1) / args.warmup)
    return args.lr * warm * (0.1 + 0.45 * (1 + math.cos(math.pi * min(step / args.steps, 1.0))))


def all_mean(values: List[float], device, world: int) -> List[float]:
    """The mean over the processes of each value."""
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / world).tolist()


class Trainer:
    def __init__(self, args, config: gauge_lm.ModelConfig, data, device, rank: int, world: int):
        if args.batch % world:
            raise ValueError(f"--batch {args.batch} must be a multiple of the number of processes ({world})")
        self.args, self.config, self.device, self.rank, self.world = args, config, device, rank, world
        self.train_data, self.val_data = data
        self.local = args.batch // world
        torch.manual_seed(args.seed)  # the same initial model in every process
        self.model = gauge_lm.LanguageModel(config).to(device=device, dtype=DTYPES[args.dtype])
        self.net = (DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None)
                    if world > 1 else self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.step, self.history = 0, []

    def batch(self, data: torch.Tensor, starts: torch.Tensor):
        """This process's slice of the global batch whose windows start at starts."""
        mine = starts[self.rank * self.local:(self.rank + 1) * self.local]
        return [t.to(self.device) for t in gauge_lm.windows(data, mine, self.config.context)]

    def train_step(self) -> Dict[str, float]:
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.args, self.step)
        starts = offsets(self.args.seed, self.step + 1, self.args.batch, len(self.train_data) - self.config.context)
        x, y = self.batch(self.train_data, starts)
        logits, energy = self.net(x)
        ce = F.cross_entropy(logits.reshape(-1, gauge_lm.VOCAB), y.reshape(-1))
        loss = ce + self.args.lambda_beta * energy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients over the processes: the global batch's gradient
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.clip)
        self.optimizer.step()
        self.step += 1
        ce, energy = all_mean([ce.item(), energy.item()], self.device, self.world)
        return {"train_loss": ce, "energy": energy, "lr": self.optimizer.param_groups[0]["lr"]}

    @torch.no_grad()
    def validation_loss(self) -> float:
        self.model.eval()
        starts = offsets(self.args.seed, 0, self.args.eval_batches * self.args.batch,
                         len(self.val_data) - self.config.context)
        total = 0.0
        for chunk in starts.split(self.args.batch):
            x, y = self.batch(self.val_data, chunk)
            logits, _ = self.model(x)
            total += F.cross_entropy(logits.reshape(-1, gauge_lm.VOCAB), y.reshape(-1)).item()
        return all_mean([total / self.args.eval_batches], self.device, self.world)[0]

    def save(self, out: Path) -> None:
        """checkpoint.pt (written whole, then renamed), losses.csv and losses.png; rank 0 only."""
        if self.rank:
            return
        state = {"model_config": dataclasses.asdict(self.config), "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "step": self.step, "history": self.history,
                 "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()}}
        torch.save(state, out / "checkpoint.tmp")
        os.replace(out / "checkpoint.tmp", out / "checkpoint.pt")
        with open(out / "losses.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(self.history)
        plot_losses.plot([out / "losses.csv"], out / "losses.png", [self.config.attention])

    def load(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.history = state["step"], state["history"]


def checkpoint_config(path: Path, lambda_beta: float) -> gauge_lm.ModelConfig:
    """The model configuration saved in a checkpoint of this script, with the energy output that
    --lambda-beta needs now (an output, not a parameter)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)["model_config"]
    return dataclasses.replace(gauge_lm.ModelConfig(**saved), attention_energy=lambda_beta > 0)


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    try:
        config = checkpoint_config(args.resume, args.lambda_beta) if args.resume else model_config(args)
        if config.attention != "gauge" and args.lambda_beta > 0:
            raise ValueError(f"--lambda-beta {args.lambda_beta}: the {config.attention} model offers no attention "
                             "energy (--attention gauge does)")
        data = gauge_lm.split_corpus(gauge_lm.read_corpus(args.corpus), config.context)
        device, rank, world = init_distributed(args.device)
        trainer = Trainer(args, config, data, device, rank, world)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    if args.resume:
        trainer.load(args.resume)
    args.out.mkdir(parents=True, exist_ok=True)
    parameters = gauge_lm.parameter_count(trainer.model)
    if rank == 0:
        print(f"{config.attention} model, spec {config.spec} (E = {config.irreps.embed_dim}), {config.layers} layers, "
              f"hidden {config.hidden}, {parameters} parameters; {world} process(es) on {device}, global batch "
              f"{args.batch} x {config.context} tokens; corpus {len(data[0])} + {len(data[1])} bytes", flush=True)

    tokens_per_step = args.batch * config.context
    start, timed_tokens, timed_s = time.time(), 0, 0.0
    bar = tqdm(total=args.steps, initial=trainer.step, disable=rank != 0, unit="step", dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30.0)
    while trainer.step < args.steps:
        t0 = time.time()
        row = trainer.train_step()
        dt = time.time() - t0
        if trainer.step > WARM_STEPS:
            timed_tokens, timed_s = timed_tokens + tokens_per_step, timed_s + dt
        last = trainer.step == args.steps
        stop = args.time_limit > 0 and all_mean([float(time.time() - start > args.time_limit)], device, world)[0] > 0
        validate = trainer.step % args.eval_every == 0 or last or stop
        row.update(step=trainer.step, val_loss=trainer.validation_loss() if validate else "",
                   tokens_per_s=tokens_per_step / dt, elapsed_s=time.time() - start)
        trainer.history.append(row)
        bar.update(1)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}", refresh=False)
        if trainer.step % args.checkpoint_every == 0 and not last:
            trainer.save(args.out)
        if stop:
            break
    bar.close()
    trainer.save(args.out)

    history = trainer.history
    validated = [r for r in history if r["val_loss"] != ""]
    beliefs = config.attention in gauge_lm.BELIEF_ATTENTIONS
    summary = {
        "attention": config.attention, "spec": config.spec, "layers": config.layers, "hidden": config.hidden,
        "parameters": parameters, "processes": world, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": args.dtype, "steps": trainer.step, "global_batch": args.batch, "context": config.context,
        "tokens_per_s": timed_tokens / timed_s if timed_s else None,
        "train_loss_last50": sum(r["train_loss"] for r in history[-50:]) / len(history[-50:]) if history else None,
        "val_loss": validated[-1]["val_loss"] if validated else None,
        "kappa": [b.attention.kappa.tolist() for b in trainer.model.blocks] if beliefs else None,
        "wall_s": time.time() - start,
    }
    if rank == 0:
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary), flush=True)
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
