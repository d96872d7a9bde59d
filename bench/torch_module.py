#!/usr/bin/env python3
"""gauge_attn.KLAttention (the package's operators on CUDA tensors: the fused kernels of cuda/) timed
against what users do today, on one GPU, forward and forward + backward.

  (a) the upstream layer's way (bench/torch_baselines.py, method upstream): upstream spec, B = 1,
      N = 4096 (workload U1), and at the largest N at which its forward + backward fits in memory
      (found by doubling N from 8192, then bisecting down to --step tokens);
  (b) PyTorch autograd through the factorised fp32 form (torch_baselines.py, factorised_torch) on
      W1-W3.

The baselines are torch_baselines.run_workload itself: the same inputs (causal, kappa = 1 per head,
seeds of the workload), the same loss L = sum(w * m) with w ~ N(0, 1) given to torch.autograd.grad,
the same timing rules (CUDA events, medians; torch_baselines.add_timing_arguments). The module is
timed two ways:

  KLAttention   as a user writes it: KLAttention(spec, kappa per head, learn_kappa=True, causal=True)
                moved to the GPU, check_inputs on (the default): the forward and the backward each
                wait once for the GPU to check the inputs, and kappa, on the GPU, is read by the host
                (the kernels take it as launch parameters). Gradients: mu, sigma, phi, log_kappa.
  unchecked     kl_attention(..., check_inputs=False) with kappa a CPU tensor that needs no gradient:
                nothing synchronises. Gradients: mu, sigma, phi.

Usage (on the GPU machine, with the package installed with CUDA kernels):
  python3 bench/torch_module.py --out torch_module.json
  python3 bench/torch_module.py --cases W1 --out w1.json      # a subset: U1, largest, W1, W2, W3
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_baselines as tb  # noqa: E402  (beside this file)

import gauge_attn  # noqa: E402

CASES = ("U1", "largest", "W1", "W2", "W3")
VARIANTS = ("KLAttention", "unchecked")


def module_runs(variant, spec, inputs, weight_seed, device):
    """(setup, run) of the forward and of forward + backward for tb.bench_one, and what gets gradients."""
    mu, sigma, phi, kappa = inputs
    if variant == "KLAttention":
        layer = gauge_attn.KLAttention(spec, kappa.tolist(), learn_kappa=True, causal=True).to(device)
        attend = lambda m, s, p: layer(m, s, p).mu
        extra, names = [layer.log_kappa], ["mu", "sigma", "phi", "log_kappa"]
    else:
        cpu_kappa = kappa.double().cpu()
        attend = lambda m, s, p: gauge_attn.kl_attention(m, s, p, cpu_kappa, spec, causal=True, check_inputs=False).mu
        extra, names = [], ["mu", "sigma", "phi"]

    def grad_setup():
        return {"leaves": [x.detach().requires_grad_() for x in (mu, sigma, phi)] + extra,
                "weights": tb.random_weights([mu.shape], weight_seed, device)}

    def grad_run(st, clock):
        m = attend(*st["leaves"][:3])
        clock.mark()
        return torch.autograd.grad(m, st["leaves"], grad_outputs=st["weights"])

    return (dict, lambda st, clock: attend(mu, sigma, phi)), (grad_setup, grad_run), names


def run_module(case, wl, B, N, seed, device, args):
    """Entries like tb.run_workload's, one per variant of the module, with the largest difference of
    its mean message from factorised_torch's (fp32) on the same inputs."""
    entries = []
    mu, sigma, phi = tb.random_beliefs(wl.spec, B, N, seed, device)
    inputs = (mu, sigma, phi, tb.kappa_per_head(wl.spec, 1.0, device))
    with torch.no_grad():
        try:
            m = gauge_attn.kl_attention(mu, sigma, phi, inputs[3], wl.spec, causal=True).mu
            reference = tb.factorised_forward(wl.spec, *inputs, tb.causal_mask(N, device))
            difference = float((m - reference).abs().max())
            del m, reference
        except Exception as e:  # noqa: BLE001 -- recorded, like the timings' failures
            difference = f"not measured: {type(e).__name__}"
        tb.free_memory(device)
    for variant in VARIANTS:
        (setup, run), (grad_setup, grad_run), names = module_runs(variant, wl.spec, inputs, seed + 100, device)
        print(f"{case} {wl.spec} B={B} N={N} {variant} ...", flush=True)
        with torch.no_grad():
            entry = {"case": case, "spec": wl.spec, "B": B, "N": N, "method": variant, "grads_wrt": names,
                     "max_abs_dm_vs_factorised_torch": difference, **tb.bench_one(device, setup, run, args)}
        with torch.enable_grad():
            entry.update(tb.grad_fields(tb.bench_one(device, grad_setup, grad_run, args, parts=("forward", "backward"))))
        print(f"    forward {entry['status']} {entry['median_ms']} ms, forward+backward {entry['grad_status']} "
              f"{entry['forward_backward_median_ms']} ms", flush=True)
        entries.append(entry)
    return entries


def baseline(case, wl, B, N, seed, device, method, args):
    entries = tb.run_workload(case, wl, B, N, seed, device, [method], args)
    for e in entries:
        e["case"] = e.pop("workload")
    return entries


def fits(entry):
    return entry["status"] == "ok" and entry.get("grad_status") == "ok"


def largest_upstream(seed, device, args):
    """The upstream way at B = 1 from N = 8192, doubling while forward + backward fit, then bisecting
    between the last N that fits and the first that does not, down to args.step tokens. Returns
    every attempt's entries and the largest N that fits (4096, U1's, if 8192 does not)."""
    wl = tb.WORKLOADS["U1"]
    entries, good, bad = [], 4096, None
    N = 8192
    while bad is None or bad - good > args.step:
        e = baseline("largest", wl, 1, N, seed, device, "upstream", args)
        entries += e
        if fits(e[0]):
            good = N
        else:
            bad = N
        if bad is None:
            N *= 2
            if N > args.max_n:
                break
        else:
            N = (good + bad) // 2 // args.step * args.step
    for e in entries:
        e["fits"] = fits(e)
    return entries, good


def comparisons(entries):
    """Per case and N: each baseline's medians over each variant's, forward and forward + backward."""
    out = []
    ours = [e for e in entries if e["method"] in VARIANTS]
    for b in entries:
        if b["method"] in VARIANTS or not b.get("fits", True):
            continue
        for o in ours:
            if (o["case"], o["N"], o["B"]) != (b["case"], b["N"], b["B"]):
                continue
            ratio = lambda x, y: round(x / y, 2) if x and y else None
            out.append({"case": b["case"], "spec": b["spec"], "B": b["B"], "N": b["N"], "baseline": b["method"],
                        "module": o["method"],
                        "forward_ms": [b["median_ms"], o["median_ms"]],
                        "forward_speedup": ratio(b["median_ms"], o["median_ms"]),
                        "forward_backward_ms": [b["forward_backward_median_ms"], o["forward_backward_median_ms"]],
                        "forward_backward_speedup": ratio(b["forward_backward_median_ms"],
                                                          o["forward_backward_median_ms"])})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    p.add_argument("--out", help="write the results as JSON to this file (rewritten after every case)")
    p.add_argument("--seed", type=int, default=20251227, help="base seed, as torch_baselines.py's")
    p.add_argument("--step", type=int, default=1024, help="the resolution of the largest N the upstream way fits")
    p.add_argument("--max-n", type=int, default=65536, help="the largest N tried for the upstream way")
    tb.add_timing_arguments(p)
    args = p.parse_args()
    args.no_backward = False  # read by tb.run_workload

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in torch_baselines.py
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device(args.device)
    if device.type != "cuda" or not torch.cuda.is_available():
        sys.exit("torch_module.py times the CUDA kernels: it needs a CUDA device")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if any(c not in CASES for c in cases):
        sys.exit(f"unknown case in {args.cases!r}; choose from {', '.join(CASES)}")

    meta = {"script": "bench/torch_module.py",
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch_version": torch.__version__, "cuda_version": torch.version.cuda,
            "device_name": torch.cuda.get_device_name(device), "host": platform.node(),
            "gauge_attn_specs_compiled": list(gauge_attn._build_config.SPECS), "seed": args.seed,
            "inputs": "torch_baselines.random_beliefs (float32, diagonal), causal, kappa = 1 per head",
            "variants": {"KLAttention": "learn_kappa=True on the GPU, check_inputs=True; grads mu, sigma, phi, log_kappa",
                         "unchecked": "kl_attention, kappa on the CPU without grad, check_inputs=False; grads mu, "
                                      "sigma, phi"},
            "timing": "torch_baselines.bench_one: CUDA events, medians; forward under no_grad, forward + "
                      "backward = one forward recorded by autograd and torch.autograd.grad of L = sum(w * m)"}
    entries = []
    t0 = time.perf_counter()

    def save():
        meta["total_wall_s"] = round(time.perf_counter() - t0, 1)
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"meta": meta, "results": entries, "comparisons": comparisons(entries)}, f, indent=1)

    for case in cases:
        if case == "largest":
            wl = tb.WORKLOADS["U1"]
            seed = args.seed + wl.seed_offset
            tried, N = largest_upstream(seed, device, args)
            entries += tried
            meta["largest_upstream_n"] = N
            entries += run_module(case, wl, 1, N, seed, device, args)
        else:
            wl = tb.WORKLOADS[case]
            seed = args.seed + wl.seed_offset
            entries += baseline(case, wl, wl.B, wl.N, seed, device, "upstream" if case == "U1" else "factorised_torch",
                                args)
            entries += run_module(case, wl, wl.B, wl.N, seed, device, args)
        save()
    save()
    print(f"\n{'case':8} {'N':>6} {'baseline':17} {'module':12} {'fwd ms (base/ours)':>24} {'x':>8} "
          f"{'fwd+bwd ms (base/ours)':>26} {'x':>8}")
    for c in comparisons(entries):
        print(f"{c['case']:8} {c['N']:>6} {c['baseline']:17} {c['module']:12} "
              f"{str(c['forward_ms']):>24} {str(c['forward_speedup']):>8} "
              f"{str(c['forward_backward_ms']):>26} {str(c['forward_backward_speedup']):>8}")
    print(f"total {meta['total_wall_s']} s" + (f"; wrote {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
