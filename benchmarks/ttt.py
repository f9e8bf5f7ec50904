"""TTT adaptation speed: vectorised (stacked per-slice weights, one batched pass per step, stacked
Adam) vs a straightforward per-slice loop (deep copy, ``torch.optim.Adam``, direct model calls): same
trained model, same data, same self-validation splits, same stopping rule, one run.

Usage::

    python benchmarks/ttt.py [--slices 32] [--sizes 64x48] [--coils 4] [--chans 8] [--pools 2]
                             [--window 20] [--max-steps 200] [--loop-threads 1] [--workers 2]
                             [--engine grouped|vmap] [--repeats 1] [--json out.json]

Rows: the loop at ``--loop-threads`` intra-op threads (on this 2-core machine its best: one
slice's small operations gain nothing from a second thread and, on a busy machine, stall on it);
the vectorised path at one thread; the vectorised path with ``--workers`` slice groups adapted
concurrently, one thread each (both cores without per-operation synchronisation). ``--omp`` adds
the vectorised path at torch's default intra-op threads. ``--repeats`` runs the rows round-robin
that many times and keeps each row's fastest run (interleaved timing on a shared machine).
``--sizes 32x32,64x48,96x64`` sweeps image sizes. Target (DESIGN.md): >= 5x slices/hour at mean
SSIM within 0.002. In float32 the paths' iterates differ by rounding (the same arithmetic in
another order), which the L1 loss and the stopping rule amplify into different trajectories, so
per-slice SSIMs differ by a few 1e-3 either way; the paired mean difference is reported with its
standard error. ``--double`` runs in float64, where both paths give the same iterates (same steps).
Slices are synthetic multi-coil phantoms (random ellipses with a smooth phase, Gaussian coil
profiles, k-space noise), under-sampled 4x (equispaced, 16% centre); the tiny ``ComplexUnetRecon``
is first trained for a few Adam steps with the joint loss on other slices.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from mribench.metrics import ssim
from mribench.physics.fft import fft2c, ifft2c, rss
from mribench.physics.masks import MaskSpec, volume_mask
from mribench.training.complex_unet import ComplexUnetRecon
from mribench.training.operators import combine_coils
from mribench.training.selfsup import joint_loss
from mribench.training.sensitivity import estimate_sensitivities
from mribench.training.ttt import TTTModel

MASK = MaskSpec("equispaced", acceleration=4, center_fraction=0.16)


def synthetic_slices(n: int, h: int, w: int, coils: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fully sampled multi-coil phantoms.

    Returns:
        ``(kspace complex64 (n, C, h, w), mask (n, 1, 1, w), target real (n, h, w))`` with the RSS
        target of fastMRI.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    angles = np.linspace(0, 2 * np.pi, coils, endpoint=False)
    sens = np.stack([np.exp(-((xx - 1.2 * np.cos(a)) ** 2 + (yy - 1.2 * np.sin(a)) ** 2)) * np.exp(1j * a) for a in angles])
    images = []
    for _ in range(n):
        obj = np.zeros((h, w))
        for _ in range(6):
            cx, cy = rng.uniform(-0.4, 0.4, 2)
            a, b = rng.uniform(0.1, 0.5, 2)
            obj += rng.uniform(0.2, 1.0) * (((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1)
        images.append(sens * obj * np.exp(1j * (0.6 * xx + rng.uniform(-0.5, 0.5) * yy)))
    kspace = fft2c(torch.from_numpy(np.stack(images).astype(np.complex64)))
    noise = rng.standard_normal((2, *kspace.shape)).astype(np.float32)
    kspace = kspace + 0.005 * float(kspace.abs().max()) * torch.complex(torch.from_numpy(noise[0]), torch.from_numpy(noise[1]))
    mask = torch.stack([volume_mask(MASK, w, f"bench_{seed}_{i}") for i in range(n)]).reshape(n, 1, 1, w)
    return kspace, mask, rss(ifft2c(kspace))


def train_model(chans: int, pools: int, h: int, w: int, coils: int, steps: int, lr: float) -> ComplexUnetRecon:
    """A tiny ComplexUnetRecon trained with the joint loss (seeded, global RNG state restored)."""
    kspace, mask, _ = synthetic_slices(16, h, w, coils, seed=1)
    nlf = round(w * MASK.cf)
    masked = kspace * mask
    sens = estimate_sensitivities(masked, nlf)
    target = combine_coils(kspace, sens)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ComplexUnetRecon(chans=chans, num_pool_layers=pools)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        joint_loss(model.predict_image(masked, mask, sens), target, masked, mask, sens).backward()
        opt.step()
    return model.eval()


def _variants(args: argparse.Namespace) -> dict[str, tuple[int, dict[str, object]]]:
    """Row name -> (intra-op threads, TTTModel options)."""
    rows: dict[str, tuple[int, dict[str, object]]] = {
        "loop": (args.loop_threads, {"vectorized": False}),
        "vectorised": (1, {"vectorized": True}),
    }
    if args.omp:
        rows["vectorised-omp"] = (args.threads or torch.get_num_threads(), {"vectorized": True})
    if args.workers > 1:
        rows[f"vectorised-{args.workers}w"] = (1, {"vectorized": True, "workers": args.workers})
    return rows


def run(args: argparse.Namespace, h: int, w: int) -> dict[str, object]:
    model = train_model(args.chans, args.pools, h, w, args.coils, args.train_steps, args.lr)
    kspace, mask, target = synthetic_slices(args.slices, h, w, args.coils, seed=2)
    if args.double:  # float64 check: both paths then give the same iterates (up to ~1e-12)
        model, kspace, mask, target = model.double(), kspace.to(torch.complex128), mask.double(), target.double()
    masked = kspace * mask
    t0 = time.perf_counter()
    sens = estimate_sensitivities(masked, round(w * MASK.cf))
    sens_seconds = time.perf_counter() - t0
    seeds = list(range(args.slices))
    kw = {"lr": args.lr, "window": args.window, "max_steps": args.max_steps, "max_parallel": args.parallel,
          "engine": args.engine}  # fmt: skip
    variants = _variants(args)
    default_threads = torch.get_num_threads()
    rows: dict[str, dict[str, object]] = {}
    for rep in range(args.repeats):
        for name, (threads, opts) in variants.items():
            torch.set_num_threads(threads)
            if rep == 0:  # warm-up (first-call costs stay out of the comparison)
                TTTModel(model, **{**kw, "max_steps": 2}, **opts).adapt_images(masked[:4], mask[:4], sens[:4], seeds[:4])
            ttt = TTTModel(model, **kw, **opts)
            t0, c0 = time.perf_counter(), time.process_time()
            images, stats = ttt.adapt_images(masked, mask, sens, seeds)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            torch.set_num_threads(default_threads)
            if name in rows and float(rows[name]["seconds"]) <= seconds:  # type: ignore[arg-type]
                continue
            recon = images.abs().to(target.dtype)
            score = ssim(target, recon, target.amax(dim=(-2, -1)))
            rows[name] = {"threads": threads, "workers": int(opts.get("workers", 1)), "seconds": seconds,  # type: ignore[call-overload]
                          "cpu_seconds": cpu, "load": os.getloadavg()[0],
                          "slices_per_hour": args.slices / seconds * 3600, "steps": [st["steps"] for st in stats],
                          "ssim": score.tolist()}  # fmt: skip
    with torch.no_grad():
        base = model.predict_image(masked, mask, sens).abs()
    loop = rows["loop"]
    out: dict[str, object] = {"size": f"{h}x{w}", "slices": args.slices, "coils": args.coils, "engine": args.engine,
                              "sens_seconds": sens_seconds, "rows": rows,
                              "ssim_before_ttt": float(ssim(target, base, target.amax(dim=(-2, -1))).mean())}  # fmt: skip
    ref_ssim = torch.tensor(loop["ssim"])  # type: ignore[arg-type]
    for row in rows.values():
        diff = torch.tensor(row["ssim"]) - ref_ssim  # type: ignore[arg-type]
        row["speedup"] = float(loop["seconds"]) / float(row["seconds"])  # type: ignore[arg-type]
        row["mean_ssim"] = float(torch.tensor(row["ssim"]).mean())  # type: ignore[arg-type]
        row["ssim_diff"] = float(diff.mean())
        row["ssim_diff_se"] = float(diff.std() / len(diff) ** 0.5) if len(diff) > 1 else 0.0
        row["same_steps"] = sum(a == b for a, b in zip(row["steps"], loop["steps"], strict=True))  # type: ignore[call-overload]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--sizes", default="64x48", help="comma-separated HxW")
    parser.add_argument("--coils", type=int, default=4)
    parser.add_argument("--chans", type=int, default=8)
    parser.add_argument("--pools", type=int, default=2)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3, help="training and TTT learning rate")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=64, help="most slices adapted at once (vectorised)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads of --omp (default: torch's)")
    parser.add_argument("--loop-threads", type=int, default=1, help="intra-op threads of the loop")
    parser.add_argument("--workers", type=int, default=2, help="slice groups adapted concurrently (1: no such row)")
    parser.add_argument("--omp", action="store_true", help="add the vectorised path at --threads intra-op threads")
    parser.add_argument("--engine", choices=("grouped", "vmap"), default="grouped", help="vectorised engine")
    parser.add_argument("--repeats", type=int, default=1, help="round-robin runs per row (fastest kept)")
    parser.add_argument("--double", action="store_true", help="run TTT in float64 (equivalence check)")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.lower().split("x"))
        r = run(args, h, w)
        results.append(r)
        print(f"\nTTT, {r['slices']} slices {r['size']}, {r['coils']} coils, U-Net chans {args.chans} pools {args.pools}, "
              f"W={args.window}, max {args.max_steps} steps, engine {r['engine']}, "
              f"{'float64' if args.double else 'float32'}, {os.cpu_count()} CPUs")  # fmt: skip
        print(f"  {'':<16}{'threads':>8}{'workers':>8}{'seconds':>9}{'cpu s':>8}{'load':>6}{'slices/h':>10}"
              f"{'speed-up':>9}{'steps':>7}{'same':>6}{'mean SSIM':>11}{'diff (SE)':>20}")  # fmt: skip
        for name, row in r["rows"].items():  # type: ignore[attr-defined]
            print(f"  {name:<16}{row['threads']:>8}{row['workers']:>8}{row['seconds']:>9.2f}{row['cpu_seconds']:>8.2f}"
                  f"{row['load']:>6.2f}{row['slices_per_hour']:>10.0f}{row['speedup']:>8.2f}x{sum(row['steps']):>7}"
                  f"{row['same_steps']:>6}{row['mean_ssim']:>11.4f}{row['ssim_diff']:>+11.4f} ({row['ssim_diff_se']:.4f})")  # fmt: skip
        print(f"  target: speed-up >= 5x, |mean SSIM difference| <= 0.002; 'same': slices stopping at the loop's "
              f"step; load: 1-minute load average after the row; SSIM before TTT {r['ssim_before_ttt']:.4f}; "
              f"ESPIRiT {r['sens_seconds']:.2f} s total")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
