"""Loss curves of train_gauge_lm.py runs on one chart: the training loss of every step (faint) with its
moving average, and the validation loss at its points.

    python examples/python/plot_losses.py out/gauge/losses.csv out/sdpa/losses.csv --out losses.png
    python examples/python/plot_losses.py a.csv b.csv --label "gauge" --label "sdpa" --out chart.png
"""

import argparse
import csv
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display on the training machines
import matplotlib.pyplot as plt  # noqa: E402

SMOOTHING = 0.02  # the moving average of the training loss spans this share of the run (it lags by half)


def read_losses(path: Path) -> Dict[str, List[float]]:
    """The columns step, train_loss and val_loss of a losses.csv (val_loss only where measured)."""
    curves = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            curves["step"].append(step)
            curves["train_loss"].append(float(row["train_loss"]))
            if row["val_loss"]:
                curves["val_step"].append(step)
                curves["val_loss"].append(float(row["val_loss"]))
    return curves


def moving_average(values: Sequence[float], width: int) -> List[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - width] if i >= width else 0.0)
        out.append(total / min(i + 1, width))
    return out


def plot(csv_paths: Sequence[Path], out: Path, labels: Optional[Sequence[str]] = None) -> None:
    """Draws the runs of csv_paths on one chart, written to out (PNG); labels default to the folder names."""
    labels = list(labels) if labels else [Path(p).parent.name or str(p) for p in csv_paths]
    fig, ax = plt.subplots(figsize=(8, 5))
    for path, label, color in zip(csv_paths, labels, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
        c = read_losses(path)
        ax.plot(c["step"], c["train_loss"], color=color, alpha=0.2, linewidth=0.8)
        width = max(1, round(SMOOTHING * len(c["step"])))
        ax.plot(c["step"], moving_average(c["train_loss"], width), color=color, label=f"{label} train")
        if c["val_step"]:
            ax.plot(c["val_step"], c["val_loss"], "o--", color=color, markersize=3, label=f"{label} validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per byte)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="+", type=Path, help="losses.csv files written by train_gauge_lm.py")
    parser.add_argument("--label", action="append", help="one per CSV, in order (default: the CSV's folder name)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.csv):
        parser.error(f"--label: {len(args.label)} labels for {len(args.csv)} CSV files")
    for path in args.csv:
        if not path.is_file():
            parser.error(f"csv: {path}: no such file")
    plot(args.csv, args.out, args.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
