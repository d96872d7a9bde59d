#!/usr/bin/env bash
# The training runs of docs/training.md on the lent GPU machine, which has torch but no network and no
# Debian fortunes: the corpus travels in .carry/corpus (cp -rL /usr/share/games/fortunes .carry/corpus
# here, then carry .carry/corpus), and the package gauge_attn must be importable (the PYTHONPATH of
# scripts/gpu_check.sh's torch stage). Everything is written under out/train-gpu; $OUT gets the few files
# the device tool brings back: train_gpu.log, summary.txt (a JSON line per run), losses.png and
# train_gpu.tar.gz (all of out/train-gpu but the checkpoints).
#   scripts/train_gpu.sh [--gpus 1|2] [--study PATH]
#     --gpus 1 (default, <= 10 min): on one GPU the gauge model (3.5 min at most), the sdpa baseline
#              (2 min at most) and, for its speed, the same gauge model with the upstream layer's way in
#              plain PyTorch (1 min), their curves on one chart; with --study (a gauge_attn_study binary,
#              e.g. build-gpu/gauge_attn_study from `scripts/gpu_check.sh study`), the dump of the trained
#              beliefs and the study on them.
#     --gpus 2 (<= 3 min): the gauge model under torchrun on two GPUs, then the same on one GPU for
#              STEPS2 steps, their curves on one chart (the same global batch: the same curve within noise).
# STEPS (4000), STEPS2 (3000), BATCH (64) and CONTEXT (128) override the run's size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export NCCL_NVLS_ENABLE=0  # NVLink multicast off on the lent machines (device KINDS.md)
export PYTHONUNBUFFERED=1

gpus=1 study=""
while [ $# -gt 0 ]; do
  case "$1" in
    --gpus) gpus=${2:-}; shift 2 ;;
    --study) study=${2:-}; shift 2 ;;
    *) echo "usage: scripts/train_gpu.sh [--gpus 1|2] [--study PATH]" >&2; exit 2 ;;
  esac
done
case "$gpus" in 1|2) ;; *) echo "train_gpu.sh: --gpus must be 1 or 2, got '$gpus'" >&2; exit 2 ;; esac
corpus=.carry/corpus
if [ ! -d "$corpus" ]; then
  echo "train_gpu.sh: no corpus at $corpus: here, cp -rL /usr/share/games/fortunes $corpus and carry it" >&2
  exit 1
fi
if [ -n "$study" ] && [ ! -x "$study" ]; then
  echo "train_gpu.sh: --study $study: not an executable" \
       "(scripts/gpu_check.sh study builds build-gpu/gauge_attn_study)" >&2
  exit 1
fi
if ! python3 -c "import gauge_attn"; then
  echo "train_gpu.sh: gauge_attn does not import: set PYTHONPATH to the built package" >&2
  exit 1
fi

work=out/train-gpu
out=${OUT:-$work}
rm -rf "$work" && mkdir -p "$work" "$out"
exec > >(tee "$out/train_gpu.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown);" \
     "torch $(python3 -c 'import torch; print(torch.__version__)')"

train=(examples/python/train_gauge_lm.py --corpus "$corpus" --device cuda --batch "${BATCH:-64}"
       --context "${CONTEXT:-128}" --eval-every 250)
torchrun2=(python3 -m torch.distributed.run --standalone --nproc_per_node=2)
if [ "$gpus" = 1 ]; then
  # The time limits stop a run slower than planned, with its files, so that the runs, the study and
  # the start-ups fit in the device tool's 10 minutes a command; torch-upstream is there for its
  # tokens/s, which a minute measures.
  runs=(gauge sdpa torch-upstream)
  for run in gauge:210 sdpa:120 torch-upstream:60; do
    echo "== ${run%:*}, one GPU"
    python3 "${train[@]}" --attention "${run%:*}" --steps "${STEPS:-4000}" --time-limit "${run#*:}" \
      --out "$work/${run%:*}"
  done
  python3 examples/python/plot_losses.py "$work/gauge/losses.csv" "$work/sdpa/losses.csv" \
    "$work/torch-upstream/losses.csv" --label "gauge (KLAttention)" --label "sdpa baseline" \
    --label "gauge, upstream layer in PyTorch" --out "$work/losses.png"
  if [ -n "$study" ]; then
    echo "== the trained gauge model's beliefs and gauge_attn_study on them"
    python3 examples/python/dump_beliefs.py "$work/gauge/checkpoint.pt" --corpus "$corpus" --out "$work/beliefs" \
      --study "$study"
    for report in "$work"/beliefs/layer*/study/report.txt; do
      echo "-- $report"
      sed -n '/== verdict ==/,$p' "$report"
    done
  fi
else
  echo "== gauge, two GPUs (torchrun, DDP over NCCL)"
  "${torchrun2[@]}" "${train[@]}" --steps "${STEPS2:-3000}" --time-limit 75 --out "$work/gauge-2gpu"
  echo "== gauge, one GPU, the same global batch"
  python3 "${train[@]}" --steps "${STEPS2:-3000}" --time-limit 75 --out "$work/gauge-1gpu"
  python3 examples/python/plot_losses.py "$work/gauge-1gpu/losses.csv" "$work/gauge-2gpu/losses.csv" \
    --label "gauge, 1 GPU" --label "gauge, 2 GPUs (DDP)" --out "$work/losses.png"
  runs=(gauge-1gpu gauge-2gpu)
fi

for run in "${runs[@]}"; do
  python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$work/$run/summary.json"
done > "$out/summary.txt"
cat "$out/summary.txt"
if [ "$out" != "$work" ]; then
  cp "$work/losses.png" "$out/losses.png"
  tar -czf "$out/train_gpu.tar.gz" --exclude=checkpoint.pt -C out train-gpu
fi
