"""Metric throughput on CPU: mribench SSIM vs ``fastmri.evaluate.ssim`` (same data, one run), plus
LPIPS-VGG, DISTS and the full metric suite in slices/s.

Usage: ``python benchmarks/metrics.py [--slices 64] [--size 320] [--repeats 3]``.
Target (DESIGN.md): SSIM >= 3x fastMRI's on 2 CPU cores with values equal to 1e-6.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch


def _data(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """MRI-like float32 slices: smooth blobs with texture, and a noisy slightly blurred reconstruction."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = torch.exp(-(xx**2 + yy**2) * 3.0)
    target = (base * (0.6 + 0.4 * torch.rand(n, size, size, generator=g))) * 3e-4
    blur = torch.nn.functional.avg_pool2d(target.unsqueeze(1), 3, 1, 1).squeeze(1)
    recon = (blur + 1e-5 * torch.randn(n, size, size, generator=g)).abs()
    return target, recon


def _best(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` timed runs (seconds) after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--perceptual-slices", type=int, default=4)
    args = parser.parse_args()

    from fastmri.evaluate import ssim as fastmri_ssim

    from mribench.metrics import get_metric, list_metrics, ssim
    from mribench.metrics.weights import missing_weights

    threads = torch.get_num_threads()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"torch {torch.__version__}, threads {threads}, cpus {os.cpu_count()}, load average {load}")
    print(f"{args.slices} slices {args.size}x{args.size} float32, data range = max of the batch (volume max)")
    target, recon = _data(args.slices, args.size)
    vmax = float(target.max())  # volume max, as fastMRI uses
    t_np, r_np = target.numpy(), recon.numpy()

    def ref() -> np.ndarray:
        return np.array(
            [fastmri_ssim(t_np[i : i + 1], r_np[i : i + 1], maxval=vmax).item() for i in range(args.slices)]
        )

    def ours() -> torch.Tensor:
        return ssim(target, recon, vmax)

    def ours_one_thread() -> torch.Tensor:
        torch.set_num_threads(1)  # this script may touch global state; the library never does
        try:
            return ssim(target, recon, vmax)
        finally:
            torch.set_num_threads(threads)

    # Interleave the runs so background load affects them alike; keep the best of each.
    t_ref, t_ours, t_one = [], [], []
    for _ in range(args.repeats):
        t_ref.append(_best(ref, 1))
        t_ours.append(_best(ours, 1))
        t_one.append(_best(ours_one_thread, 1))
    diff = float(np.abs(ours().numpy() - ref()).max())
    r_ref, r_ours, r_one = (args.slices / min(t) for t in (t_ref, t_ours, t_one))
    print(f"SSIM fastmri.evaluate.ssim : {r_ref:8.0f} slices/s")
    print(f"SSIM mribench              : {r_ours:8.0f} slices/s  ({r_ours / r_ref:.2f}x, target >= 3x)")
    print(f"SSIM mribench, 1 thread    : {r_one:8.0f} slices/s  ({r_one / r_ref:.2f}x)")
    print(f"SSIM max |difference|      : {diff:8.1e}   (target <= 1e-6)")

    n = min(args.perceptual_slices, args.slices)
    if n < 1:
        return
    pt, pr = target[:n], recon[:n]
    dr = torch.full((n,), vmax, dtype=torch.float64)
    for name in ("lpips_vgg", "dists"):
        missing = missing_weights(name)
        if missing:
            print(f"{name:<27}: skipped, weights {missing} missing (run `mribench weights fetch`)")
            continue
        spec = get_metric(name)
        sec = _best(lambda spec=spec: spec.compute(pt, pr, data_range=dr), 1)
        print(f"{name:<27}: {n / sec:8.1f} slices/s")

    names = [m for m in list_metrics() if not get_metric(m).needs_boxes]
    available = [m for m in names if not missing_weights(m)]
    boxes = [[(40, 60, 30, 25), (150, 150, 6, 6)] for _ in range(n)]

    def suite() -> None:
        for m in available:
            get_metric(m).compute(pt, pr, data_range=dr)
        for m in ("region_ssim", "region_ssim_small", "region_ssim_large"):
            get_metric(m).compute(pt, pr, data_range=dr, boxes=boxes)

    sec = _best(suite, 1)
    skipped = sorted(set(names) - set(available))
    print(
        f"full suite ({len(available) + 3} metrics)   : {n / sec:8.1f} slices/s"
        + (f"  (skipped {skipped})" if skipped else "")
    )


if __name__ == "__main__":
    main()
