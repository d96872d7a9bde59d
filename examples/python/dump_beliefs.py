"""Dumps the beliefs that enter each attention layer of a train_gauge_lm.py checkpoint, on validation
text, as the .npy input of gauge_attn_study (docs/study.md), and runs the study on them if given its
binary.

    python examples/python/dump_beliefs.py out/train/gauge/checkpoint.pt --out out/train/gauge/beliefs \
        --study build/tools/gauge_attn_study

Writes OUT/layer<k>/mu.npy (B, N, E), sigma.npy (B, N, E) variances, phi.npy (B, N, 3), float64, and
OUT/layer<k>/meta.json (spec, the layer's kappa per head, the study's command line); with --study,
the study's files in OUT/layer<k>/study/ and its report in OUT/layer<k>/study/report.txt. The model is
causal, so the beliefs of the first N tokens are those of any longer context.
"""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import gauge_lm

# The study's own default sweep (docs/study.md), to which the layer's kappa is added.
STUDY_KAPPAS = (10, 1, 0.43, 0.1, 0.01, 0.0086, 0.001, 0.00043, 0.0001)


def layer_beliefs(checkpoint: Path, corpus: Path, batch: int, tokens: int):
    """(config, [(mu, sigma, phi) per layer, numpy float64], [kappa per head per layer]) of B windows
    of N tokens evenly spaced over the validation text."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = gauge_lm.ModelConfig(**state["model_config"])
    if config.attention not in gauge_lm.BELIEF_ATTENTIONS:
        raise ValueError(f"checkpoint {checkpoint}: a {config.attention} model has no beliefs; train with "
                         "--attention gauge")
    if not 2 <= tokens <= config.context:
        raise ValueError(f"--tokens {tokens}: must lie in [2, {config.context}] (2: KL needs pairs; "
                         f"{config.context}: the model's context)")
    model = gauge_lm.LanguageModel(config).double()
    model.load_state_dict(state["model"])
    model.eval()
    _, validation = gauge_lm.split_corpus(gauge_lm.read_corpus(corpus), config.context)
    starts = torch.linspace(0, len(validation) - tokens - 1, batch).long()
    x, _ = gauge_lm.windows(validation, starts, tokens)
    beliefs = []
    with torch.no_grad():
        model(x, beliefs=beliefs)
    kappas = [block.attention.kappa.tolist() for block in model.blocks]
    return config, [tuple(t.numpy() for t in layer) for layer in beliefs], kappas


def study_command(study: Path, folder: Path, spec: str, kappa) -> list:
    # The layer's kappa joins the sweep: one value, the geometric mean when it is learned per head.
    model_kappa = math.exp(sum(math.log(k) for k in kappa) / len(kappa))
    kappas = ",".join(f"{k:.6g}" for k in sorted({*STUDY_KAPPAS, float(f"{model_kappa:.6g}")}, reverse=True))
    command = [str(study), "--mu", str(folder / "mu.npy"), "--sigma", str(folder / "sigma.npy"),
               "--phi", str(folder / "phi.npy"), "--kappa", kappas, "--out", str(folder / "study")]
    name = gauge_lm.gauge_attn.parse_spec(spec).name
    # The study knows the named specs; for another it infers the spec from E (docs/study.md).
    return command + (["--spec", name] if name in gauge_lm.gauge_attn.NAMED_SPECS else [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="checkpoint.pt of a gauge model")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--corpus", type=Path, default=gauge_lm.DEFAULT_CORPUS,
                        help="the corpus of the training (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=24, help="sequences B (default: %(default)s, the study's)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens N (default: %(default)s, the upstream note's)")
    parser.add_argument("--study", type=Path, help="the gauge_attn_study binary: run it on every layer")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    if not args.checkpoint.is_file():
        parser.error(f"checkpoint: {args.checkpoint}: no such file")
    if args.study and not args.study.is_file():
        parser.error(f"--study {args.study}: no such file (scripts/main.sh builds build/tools/gauge_attn_study)")
    try:
        config, layers, kappas = layer_beliefs(args.checkpoint, args.corpus, args.batch, args.tokens)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))

    status = 0
    for k, ((mu, sigma, phi), kappa) in enumerate(zip(layers, kappas)):
        folder = args.out / f"layer{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in (("mu", mu), ("sigma", sigma), ("phi", phi)):
            np.save(folder / f"{name}.npy", array)
        command = study_command(args.study or Path("gauge_attn_study"), folder, config.spec, kappa)
        meta = {"checkpoint": str(args.checkpoint), "layer": k, "spec": config.spec, "kappa": kappa,
                "shape": list(mu.shape), "study_command": command}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"layer {k}: {folder}/{{mu,sigma,phi}}.npy, B = {mu.shape[0]}, N = {mu.shape[1]}, E = {mu.shape[2]}, "
              f"kappa {', '.join(f'{x:.4g}' for x in kappa)}", flush=True)
        if args.study:
            (folder / "study").mkdir(exist_ok=True)
            run = subprocess.run(command, capture_output=True, text=True)
            (folder / "study" / "report.txt").write_text(run.stdout + run.stderr)
            print(f"layer {k}: gauge_attn_study exited {run.returncode}; report in {folder}/study/report.txt",
                  flush=True)
            status = status or run.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
