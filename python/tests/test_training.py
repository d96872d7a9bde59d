"""examples/python: the gauge language model's training script on the CPU (a few steps of a tiny model),
its resume, two gloo processes against one, the baseline, the belief dump for gauge_attn_study, and
the errors for a missing corpus."""

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "examples" / "python"))
import dump_beliefs  # noqa: E402
import gauge_lm  # noqa: E402
import plot_losses  # noqa: E402
import train_gauge_lm  # noqa: E402

# The study binary, if built: GAUGE_ATTN_STUDY, or where scripts/main.sh builds it.
STUDY = Path(os.environ.get("GAUGE_ATTN_STUDY", REPO / "build" / "tools" / "gauge_attn_study"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A directory laid out as Debian's fortunes: text files beside their .dat index, a .u8 link."""
    folder = tmp_path_factory.mktemp("fortunes")
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly banjos".split()
    text = "\n%\n".join(" ".join(words[(i * k) % len(words)] for k in range(1, 9)) for i in range(1500))
    (folder / "quotes").write_text(text)
    (folder / "quotes.dat").write_bytes(b"\0" * 24)
    (folder / "quotes.u8").symlink_to("quotes")
    return folder


def tiny(corpus, out, *extra):
    """A command line for a few steps of a one-layer model, in float64 so that runs compare tightly."""
    return ["--corpus", str(corpus), "--out", str(out), "--layers", "1", "--context", "16", "--batch", "4",
            "--steps", "4", "--warmup", "2", "--eval-every", "2", "--eval-batches", "1", "--dtype", "float64",
            "--device", "cpu", *extra]


def losses(out: Path, column="train_loss"):
    with open(out / "losses.csv", newline="") as f:
        return [float(r[column]) for r in csv.DictReader(f) if r[column]]


@pytest.fixture(scope="module")
def gauge_run(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gauge")
    assert train_gauge_lm.main(tiny(corpus, out)) == 0
    return out


def test_training_writes_its_files(gauge_run):
    assert {p.name for p in gauge_run.iterdir()} >= {"checkpoint.pt", "losses.csv", "losses.png", "summary.json"}
    train = losses(gauge_run)
    assert len(train) == 4 and all(np.isfinite(train)) and 3 < train[0] < 8  # ln 256 = 5.55 at the start
    assert len(losses(gauge_run, "val_loss")) == 2  # steps 2 and 4
    summary = json.loads((gauge_run / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["processes"] == 1 and summary["attention"] == "gauge"
    assert summary["kappa"] == [[pytest.approx(19 / 11)]]  # kappa_base * E / 11


def test_attention_energy_and_learned_kappa(corpus, tmp_path):
    assert train_gauge_lm.main(tiny(corpus, tmp_path, "--lambda-beta", "0.1", "--learn-kappa")) == 0
    assert all(e > 0 for e in losses(tmp_path, "energy"))
    (kappa,) = json.loads((tmp_path / "summary.json").read_text())["kappa"]
    assert len(kappa) == 9 and len(set(kappa)) > 1  # one per head, each moved by its own gradient


def test_resume_continues_the_same_run(corpus, gauge_run, tmp_path):
    # A time limit of ~0 s stops after the first step, with its checkpoint; resuming runs steps 2-4.
    assert train_gauge_lm.main(tiny(corpus, tmp_path, "--time-limit", "1e-9")) == 0
    assert len(losses(tmp_path)) == 1
    assert train_gauge_lm.main(tiny(corpus, tmp_path, "--resume", str(tmp_path / "checkpoint.pt"))) == 0
    # The same process, data and arithmetic: the same numbers to the last bit but for summation order.
    np.testing.assert_allclose(losses(tmp_path), losses(gauge_run), rtol=1e-12)


def test_two_gloo_processes_follow_one(corpus, gauge_run, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(REPO / "examples" / "python" / "train_gauge_lm.py"), *tiny(corpus, tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["processes"] == 2
    # Each process takes half of the same global batch and DDP averages the gradients: the same steps up
    # to the order of the sums (about 1e-16 relative per step in float64; 1e-10 leaves room for Adam).
    for column in ("train_loss", "val_loss"):
        np.testing.assert_allclose(losses(tmp_path, column), losses(gauge_run, column), rtol=1e-10)


def test_sdpa_baseline_matches_the_parameter_count(corpus, gauge_run, tmp_path):
    config = gauge_lm.ModelConfig(layers=3, hidden=76)
    gauge = gauge_lm.parameter_count(gauge_lm.LanguageModel(config))
    baseline = gauge_lm.matched_baseline(config)
    # One unit of feed-forward width is 2E + 1 parameters per layer: the nearest width is within half.
    assert abs(gauge_lm.parameter_count(gauge_lm.LanguageModel(baseline)) - gauge) <= 3 * (2 * 19 + 1) / 2
    assert train_gauge_lm.main(tiny(corpus, tmp_path, "--attention", "sdpa")) == 0
    assert len(losses(tmp_path)) == 4
    chart = tmp_path / "both.png"
    assert plot_losses.main([str(gauge_run / "losses.csv"), str(tmp_path / "losses.csv"), "--out", str(chart)]) == 0
    assert chart.stat().st_size > 0


def test_torch_upstream_is_the_gauge_model_in_upstream_mode(corpus, tmp_path):
    # The same parameters (one state dict) and the upstream layer's arithmetic on both sides: the same
    # logits up to the generators, float32-rounded in KLAttention's upstream mode as in the upstream
    # layer and float64 in torch_baselines, which moves the l2 head's messages by ~1e-8
    # (docs/upstream-compatibility.md; ~1e-15 for l0 and l1).
    config = gauge_lm.ModelConfig(layers=2, context=8, hidden=8, learn_kappa=True, mode="upstream")
    gauge = gauge_lm.LanguageModel(config).double()
    upstream = gauge_lm.LanguageModel(dataclasses.replace(config, attention="torch-upstream")).double()
    upstream.load_state_dict(gauge.state_dict())
    tokens = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(upstream(tokens)[0], gauge(tokens)[0], rtol=0, atol=1e-7)
    assert train_gauge_lm.main(tiny(corpus, tmp_path, "--attention", "torch-upstream", "--context", "8",
                                    "--steps", "2", "--eval-every", "1")) == 0
    assert len(losses(tmp_path)) == 2


def test_dump_writes_the_study_input(corpus, gauge_run, tmp_path):
    study = ["--study", str(STUDY)] if STUDY.is_file() else []
    status = dump_beliefs.main([str(gauge_run / "checkpoint.pt"), "--corpus", str(corpus), "--out", str(tmp_path),
                                "--batch", "3", "--tokens", "8", *study])
    assert status == 0, (tmp_path / "layer0" / "study" / "report.txt").read_text() if study else ""
    layer = tmp_path / "layer0"
    mu, sigma, phi = (np.load(layer / f"{name}.npy") for name in ("mu", "sigma", "phi"))
    assert mu.shape == sigma.shape == (3, 8, 19) and phi.shape == (3, 8, 3)
    assert mu.dtype == sigma.dtype == phi.dtype == np.float64 and (sigma > 0).all()
    assert not (tmp_path / "layer1").exists()
    meta = json.loads((layer / "meta.json").read_text())
    assert meta["spec"] == "upstream" and "--spec" in meta["study_command"]
    if study:
        assert (layer / "study" / "study.json").is_file()


@pytest.mark.parametrize("make", [lambda d: d / "absent", lambda d: d], ids=["missing", "no-fortune-files"])
def test_missing_corpus_is_named(make, tmp_path, capsys):
    path = make(tmp_path)
    with pytest.raises(SystemExit) as exit:
        train_gauge_lm.main(["--corpus", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert f"--corpus {path}" in error and "fortune" in error
