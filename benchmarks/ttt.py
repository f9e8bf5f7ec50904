"""TTT adaptation speed: vectorised (stacked per-slice weights, one batched pass per step, stacked
Adam) vs a straightforward per-slice loop (deep copy, ``torch.optim.Adam``, direct model calls): same
trained model, same data, same self-validation splits, same stopping rule, one run.

Usage::

    python benchmarks/ttt.py [--slices 32] [--sizes 64x48] [--coils 4] [--chans 8] [--pools 2]
                             [--window 20] [--max-steps 200] [--loop-threads 1,default] [--workers 2]
                             [--engine grouped|vmap] [--variant d22|fast] [--repeats 1]
                             [--preset embedded|paper] [--device cuda] [--json out.json]

Rows: the loop at each of ``--loop-threads`` intra-op thread counts (default: one and torch's
default); the vectorised path at one thread; the vectorised path with ``--workers`` slice groups
adapted concurrently, one thread each (both cores without per-operation synchronisation). The
reference of the speed-ups and SSIM differences is the fastest loop row: on small images one
slice's operations gain nothing from a second thread (the loop is bound by per-operation
overheads), on large ones the loop's convolutions use both cores. ``--omp`` adds the vectorised
path at torch's default intra-op threads. ``--repeats`` runs the rows round-robin that many times
and keeps each row's fastest run (interleaved timing on a shared machine). ``--sizes
32x32,64x48,96x64`` sweeps image sizes; ``--preset embedded`` measures at the embedded
benchmark's size (256x132 knee slices, 16 coils) with the network of
``baselines/anatomy/embedded-ttt.yaml`` (16 channels, 3 pools), 8 slices and at most 80 steps;
``--preset paper`` at the paper's size (320x320, 15 coils, U-Net 64 channels / 4 pools), 8 slices,
at most 100 steps: the GPU target's setting. ``--variant`` picks the TTT variant (``d22``, default:
Darestani et al.'s input, loop order and maps, with their network input ``rss-real-imag`` and
``bart-ecalib`` maps; ``fast``: mribench's earlier variant, with which the figures of the
``ttt-fast`` card were measured). Target (DESIGN.md): >= 5x slices/hour at mean SSIM within 0.002,
on a GPU at the paper's size; on a CPU the rate is reported as a fraction of the machine's float32
matrix-product rate (the last line of each table). With ``--device cuda`` every timing is
synchronised with the device, adaptation and networks run there (ESPIRiT and SSIM on the CPU), and
the ceiling is the device's float32 matrix-product rate. In float32 the paths' iterates
differ by rounding (the same arithmetic in another order), which the L1 loss and the stopping rule
amplify into different trajectories, so per-slice SSIMs differ by a few 1e-3 either way; the paired
mean difference is reported with its standard error (the loop rows at different thread counts
differ from each other in the same way). ``--double`` runs in float64, where both paths give the
same iterates (same steps). Slices are synthetic multi-coil phantoms (random ellipses with a smooth
phase, Gaussian coil profiles, k-space noise), under-sampled 4x (equispaced, 16% centre); the
``ComplexUnetRecon`` is first trained for a few Adam steps with the joint loss on other slices.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch

from mribench.metrics import ssim
from mribench.models.complex_unet import ComplexUnetRecon
from mribench.physics.fft import fft2c, ifft2c, rss
from mribench.physics.masks import MaskSpec, volume_mask
from mribench.physics.operators import coil_images, combine_coils
from mribench.physics.sensitivity import sensitivities
from mribench.workflows.training.selfsup import d22_joint_loss, joint_loss
from mribench.workflows.training.ttt import TTTModel

MASK = MaskSpec("equispaced", acceleration=4, center_fraction=0.16)
#: ``--preset embedded``: the embedded benchmark's knee slices (256x132, 16 coils) and the network of
#: ``baselines/anatomy/embedded-ttt.yaml`` (16 channels, 3 pools); 8 slices, at most 80 steps.
PRESETS: dict[str, dict[str, object]] = {
    "embedded": {
        "sizes": "256x132",
        "coils": 16,
        "chans": 16,
        "pools": 3,
        "slices": 8,
        "max_steps": 80,
        "train_steps": 20,
    },
    "paper": {
        "sizes": "320x320",
        "coils": 15,
        "chans": 64,
        "pools": 4,
        "slices": 8,
        "max_steps": 100,
        "train_steps": 20,
        "train_slices": 4,
    },
}
#: Per variant: the network's input, coil-map preset and normalisation, and the training loss of the benchmark model.
VARIANT_MODELS = {
    "d22": {"input": "rss-real-imag", "maps": "bart-ecalib", "norm": "scale"},
    "fast": {"input": "coil-combined", "maps": "mribench", "norm": "instance"},
}


def synthetic_slices(n: int, h: int, w: int, coils: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fully sampled multi-coil phantoms.

    Returns:
        ``(kspace complex64 (n, C, h, w), mask (n, 1, 1, w), target real (n, h, w))`` with the RSS
        target of fastMRI.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    angles = np.linspace(0, 2 * np.pi, coils, endpoint=False)
    sens = np.stack(
        [np.exp(-((xx - 1.2 * np.cos(a)) ** 2 + (yy - 1.2 * np.sin(a)) ** 2)) * np.exp(1j * a) for a in angles]
    )
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
    kspace = kspace + 0.005 * float(kspace.abs().max()) * torch.complex(
        torch.from_numpy(noise[0]), torch.from_numpy(noise[1])
    )
    mask = torch.stack([volume_mask(MASK, w, f"bench_{seed}_{i}") for i in range(n)]).reshape(n, 1, 1, w)
    return kspace, mask, rss(ifft2c(kspace))


def train_model(
    chans: int,
    pools: int,
    h: int,
    w: int,
    coils: int,
    steps: int,
    lr: float,
    variant: str = "d22",
    slices: int = 16,
    device: str = "cpu",
) -> ComplexUnetRecon:
    """A ComplexUnetRecon trained with the variant's joint loss for a few steps on ``device`` (seeded,
    global RNG state restored; ESPIRiT runs on the CPU). Returned on the CPU, in eval mode."""
    kspace, mask, _ = synthetic_slices(slices, h, w, coils, seed=1)
    nlf = round(w * MASK.cf)
    masked = kspace * mask
    opts = VARIANT_MODELS[variant]
    sens = sensitivities(masked, nlf, opts["maps"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ComplexUnetRecon(
            chans=chans, num_pool_layers=pools, input=opts["input"], maps=opts["maps"], norm=opts["norm"]
        )
    target = rss(coil_images(kspace)) if variant == "d22" else combine_coils(kspace, sens)
    dev = torch.device(device)
    model, masked, mask, sens, target = (t.to(dev) for t in (model, masked, mask, sens, target))  # type: ignore[assignment]
    loss_fn = d22_joint_loss if variant == "d22" else joint_loss
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model.predict_image(masked, mask, sens), target, masked, mask, sens).backward()
        opt.step()
    return model.cpu().eval()


def network_flops(model: ComplexUnetRecon, h: int, w: int, device: str = "cpu") -> int:
    """Floating-point operations of one slice's Adam step in the network (forward and backward of
    the convolutions and matrix products, as counted by ``torch.utils.flop_counter``; the k-space
    loss, normalisation and activations come on top). Both paths do this arithmetic per slice and step."""
    from torch.utils.flop_counter import FlopCounterMode

    dev = torch.device(device)
    net = copy.deepcopy(model.net).float().to(dev)
    x = torch.randn(1, 1, h, w, 2, device=dev)
    with FlopCounterMode(display=False) as counter:
        net(x).abs().sum().backward()
    return int(counter.get_total_flops())


def matmul_gflops(threads: int, n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """float32 matrix-product rate (GFLOP/s): near the peak of this machine's CPU cores (at ``threads``
    intra-op threads) or of a CUDA device (TF32 off, as torch's default for matrix products)."""
    dev = torch.device(device)
    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        a @ b
        _sync(dev)
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            _sync(dev)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(default)
    return 2 * n**3 / best / 1e9


def _device_name(device: str) -> str:
    dev = torch.device(device)
    return f"{device} ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else device


def _sync(device: torch.device) -> None:
    """Wait for queued device work (timings on a GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loop_threads(spec: str) -> list[int]:
    """``--loop-threads``: comma-separated thread counts, ``default`` for torch's default."""
    counts = []
    for part in spec.split(","):
        n = torch.get_num_threads() if part.strip() == "default" else int(part)
        if n < 1:
            raise ValueError(f"expected positive thread counts in --loop-threads, got {spec!r}")
        if n not in counts:
            counts.append(n)
    return counts


def _variants(args: argparse.Namespace) -> dict[str, tuple[int, dict[str, object]]]:
    """Row name -> (intra-op threads, TTTModel options); loop rows first, named ``loop-<threads>t``."""
    rows: dict[str, tuple[int, dict[str, object]]] = {
        f"loop-{n}t": (n, {"vectorized": False}) for n in _loop_threads(args.loop_threads)
    }
    rows["vectorised"] = (1, {"vectorized": True})
    if args.omp:
        rows["vectorised-omp"] = (args.threads or torch.get_num_threads(), {"vectorized": True})
    if args.workers > 1:
        rows[f"vectorised-{args.workers}w"] = (1, {"vectorized": True, "workers": args.workers})
    return rows


def run(args: argparse.Namespace, h: int, w: int) -> dict[str, object]:
    model = train_model(
        args.chans,
        args.pools,
        h,
        w,
        args.coils,
        args.train_steps,
        args.lr,
        args.variant,
        args.train_slices,
        args.device,
    )
    kspace, mask, target = synthetic_slices(args.slices, h, w, args.coils, seed=2)
    if args.double:  # float64 check: both paths then give the same iterates (up to ~1e-12)
        model, kspace, mask, target = model.double(), kspace.to(torch.complex128), mask.double(), target.double()
    device = torch.device(args.device)
    model, kspace, mask = model.to(device), kspace.to(device), mask.to(device)
    masked = kspace * mask
    _sync(device)
    t0 = time.perf_counter()
    sens = sensitivities(masked, round(w * MASK.cf), VARIANT_MODELS[args.variant]["maps"])
    _sync(device)
    sens_seconds = time.perf_counter() - t0
    seeds = list(range(args.slices))
    kw = {
        "lr": args.lr,
        "window": args.window,
        "max_steps": args.max_steps,
        "max_parallel": args.parallel,
        "engine": args.engine,
        "variant": args.variant,
    }
    variants = _variants(args)
    default_threads = torch.get_num_threads()
    rows: dict[str, dict[str, object]] = {}
    for rep in range(args.repeats):
        for name, (threads, opts) in variants.items():
            torch.set_num_threads(threads)
            if rep == 0:  # warm-up (first-call costs stay out of the comparison)
                TTTModel(model, **{**kw, "max_steps": 2}, **opts).adapt_images(
                    masked[:4], mask[:4], sens[:4], seeds[:4]
                )
            ttt = TTTModel(model, **kw, **opts)
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            images, stats = ttt.adapt_images(masked, mask, sens, seeds)
            _sync(device)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            torch.set_num_threads(default_threads)
            if name in rows and float(rows[name]["seconds"]) <= seconds:  # type: ignore[arg-type]
                continue
            recon = images.abs().cpu().to(target.dtype)  # SSIM on the CPU
            score = ssim(target, recon, target.amax(dim=(-2, -1)))
            rows[name] = {
                "threads": threads,
                "workers": int(opts.get("workers", 1)),
                "seconds": seconds,  # type: ignore[call-overload]
                "cpu_seconds": cpu,
                "load": os.getloadavg()[0],
                "slices_per_hour": args.slices / seconds * 3600,
                "steps": [st["steps"] for st in stats],
                "ssim": score.tolist(),
            }
    with torch.no_grad():
        base = model.predict_image(masked, mask, sens).abs().cpu()
    # the reference is the loop at its best thread count on this machine and size
    reference = min((name for name in rows if name.startswith("loop-")), key=lambda n: float(rows[n]["seconds"]))  # type: ignore[arg-type]
    loop = rows[reference]
    out: dict[str, object] = {
        "device": str(device),
        "size": f"{h}x{w}",
        "slices": args.slices,
        "coils": args.coils,
        "engine": args.engine,
        "variant": args.variant,
        "chans": args.chans,
        "pools": args.pools,
        "reference": reference,
        "sens_seconds": sens_seconds,
        "rows": rows,
        "ssim_before_ttt": float(ssim(target, base, target.amax(dim=(-2, -1))).mean()),
    }
    flops = network_flops(model, h, w, args.device)
    out["network_gflop_per_step"] = flops / 1e9
    ref_ssim = torch.tensor(loop["ssim"])  # type: ignore[arg-type]
    for row in rows.values():
        row["network_gflops"] = flops * sum(row["steps"]) / float(row["seconds"]) / 1e9  # type: ignore[arg-type]
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
    parser.add_argument("--train-slices", type=int, default=16, help="synthetic slices the model is trained on")
    parser.add_argument("--variant", choices=("d22", "fast"), default="d22", help="TTT variant (TTTModel.variant)")
    parser.add_argument("--parallel", type=int, default=64, help="most slices adapted at once (vectorised)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads of --omp (default: torch's)")
    parser.add_argument(
        "--loop-threads",
        default="1,default",
        help="comma-separated intra-op thread counts of loop rows ('default': torch's); the "
        "fastest loop row is the reference",
    )
    parser.add_argument("--workers", type=int, default=2, help="slice groups adapted concurrently (1: no such row)")
    parser.add_argument("--omp", action="store_true", help="add the vectorised path at --threads intra-op threads")
    parser.add_argument("--engine", choices=("grouped", "vmap"), default="grouped", help="vectorised engine")
    parser.add_argument("--repeats", type=int, default=1, help="round-robin runs per row (fastest kept)")
    parser.add_argument("--double", action="store_true", help="run TTT in float64 (equivalence check)")
    parser.add_argument("--device", default="cpu", help="torch device of the adaptation (cpu, cuda, cuda:1)")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=None,
        help="set --sizes, --coils, --chans, --pools, --slices, --max-steps, --train-steps (and for "
        "'paper' --train-slices) together (overriding those options)",
    )
    args = parser.parse_args()
    if args.preset:
        for name, value in PRESETS[args.preset].items():
            setattr(args, name, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: no CUDA device is available")
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.set_device(index)  # explicit (set_device needs an index): every tensor goes to this device
        args.device = f"cuda:{index}"
        device = torch.device(args.device)
    results = []
    peak = matmul_gflops(torch.get_num_threads(), device=args.device)
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.lower().split("x"))
        r = run(args, h, w)
        r["matmul_gflops"] = peak
        results.append(r)
        print(
            f"\nTTT, {r['slices']} slices {r['size']}, {r['coils']} coils, U-Net chans {r['chans']} pools {r['pools']}, "
            f"W={args.window}, max {args.max_steps} steps, engine {r['engine']}, variant {r['variant']}, "
            f"{'float64' if args.double else 'float32'}, {os.cpu_count()} CPUs, device {_device_name(args.device)}"
        )
        print(
            f"  {'':<16}{'threads':>8}{'workers':>8}{'seconds':>9}{'cpu s':>8}{'load':>6}{'slices/h':>10}"
            f"{'speed-up':>9}{'steps':>7}{'same':>6}{'mean SSIM':>11}{'diff (SE)':>20}{'GFLOP/s':>9}"
        )
        for name, row in r["rows"].items():  # type: ignore[attr-defined]
            print(
                f"  {name:<16}{row['threads']:>8}{row['workers']:>8}{row['seconds']:>9.2f}{row['cpu_seconds']:>8.2f}"
                f"{row['load']:>6.2f}{row['slices_per_hour']:>10.0f}{row['speedup']:>8.2f}x{sum(row['steps']):>7}"
                f"{row['same_steps']:>6}{row['mean_ssim']:>11.4f}{row['ssim_diff']:>+11.4f} ({row['ssim_diff_se']:.4f})"
                f"{row['network_gflops']:>9.1f}"
            )
        print(
            f"  reference: {r['reference']} (the fastest loop row); target: speed-up >= 5x, |mean SSIM difference| "
            f"<= 0.002; 'same': slices stopping at the reference's step; load: 1-minute load average after the "
            f"row; SSIM before TTT {r['ssim_before_ttt']:.4f}; ESPIRiT {r['sens_seconds']:.2f} s total"
        )
        ref_rate = r["rows"][r["reference"]]["network_gflops"]  # type: ignore[index]
        line = f"  GFLOP/s: the network's convolutions and products per second ({r['network_gflop_per_step']:.3f} GFLOP per slice and step)"
        where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else _device_name(args.device)
        best_rate = max(float(row["network_gflops"]) for row in r["rows"].values())  # type: ignore[attr-defined]
        r["fraction_of_matmul_peak"] = {n: float(row["network_gflops"]) / peak for n, row in r["rows"].items()}  # type: ignore[attr-defined]
        line += (
            f"; float32 matrix products: {peak:.0f} GFLOP/s ({where}); the reference runs at "
            f"{100 * ref_rate / peak:.0f}% of that, the fastest row at {100 * best_rate / peak:.0f}% (no "
            f"implementation of the same arithmetic can exceed 100%)"
        )
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
