"""Peak memory of an evaluation vs split size, and the evaluator's overhead.

Usage::

    python benchmarks/memory.py [--sizes 8 32 128] [--task anatomy] [--profile] [--json out.json]

For each size N, N tiny fastMRI-format volumes (half knee PD, half brain T2, one site at 3 T, like
``tests/conftest.py:make_volume``) are written to a temporary folder, and
``mribench.evaluate("zero-filled", task, data=...)`` runs in a fresh subprocess that reports its
RSS after the imports and its peak during the evaluation (``/proc/self/status`` VmRSS/VmHWM with the
peak reset through ``/proc/self/clear_refs``; ``resource.getrusage`` elsewhere), plus the
evaluator's own timing from ``run.json`` (``config.timing["rank0"]``: model_seconds,
metric_seconds, wall_seconds). Streaming evaluation keeps the peak flat as N grows.
Targets (DESIGN.md): memory flat as the split grows; evaluator overhead < 10% of wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def make_volume(root: Path, name: str, *, protocol: str, seed: int, coils: int, slices: int, recon: int) -> None:
    """A small multi-coil fastMRI-format volume with 2x read-out oversampling (as tests/conftest.py)."""
    import torch

    from mribench.data.fastmri_io import write_volume
    from mribench.data.header import AcquisitionHeader
    from mribench.physics.fft import center_crop, fft2c, ifft2c, rss

    rng = np.random.default_rng(seed)
    hh, ww = 2 * recon, recon + 8
    yy, xx = np.mgrid[-1 : 1 : recon * 1j, -1 : 1 : recon * 1j]
    imgs = np.zeros((slices, coils, hh, ww), np.complex64)
    ys, xs = np.mgrid[0:hh, 0:ww]
    sens = np.stack(
        [np.exp(-(((ys - hh * (c + 1) / (coils + 1)) / hh) ** 2) * 4) * np.exp(1j * c) for c in range(coils)]
    )
    for s in range(slices):
        obj = np.zeros((recon, recon))
        for _ in range(4):
            cx, cy, a, b = rng.uniform(-0.4, 0.4, 2).tolist() + rng.uniform(0.15, 0.5, 2).tolist()
            obj += rng.uniform(0.3, 1.0) * ((((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2) < 1)
        full = np.zeros((hh, ww), complex)
        full[hh // 4 : hh // 4 + recon, 4 : 4 + recon] = obj * np.exp(1j * (0.5 * xx + 0.3 * yy))
        imgs[s] = sens * full
    k = fft2c(torch.from_numpy(imgs))
    k = k + 0.01 * torch.from_numpy(
        (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)).astype(np.complex64)
    )
    k[..., :2] = 0
    k[..., ww - 2 :] = 0
    target = center_crop(rss(ifft2c(k)), (recon, recon)).numpy()
    header = AcquisitionHeader(
        encoded_size=(hh, ww, 1),
        recon_size=(recon, recon, 1),
        enc_limits_center=ww // 2 - 2,
        enc_limits_max=ww - 5,
        protocol_name=protocol,
        system_vendor="SIEMENS",
        system_model="Skyra",
        field_strength_t=2.89362,
        receiver_channels=coils,
        institution_name="NYU",
        sequence_type="TurboSpinEcho",
        tr_ms=2800.0,
        te_ms=30.0,
    )
    write_volume(
        root / f"{name}.h5",
        k.numpy(),
        target,
        header,
        acquisition=protocol,
        patient_id=f"p{seed}",
        extra_attrs={"site": "SITE_A"},
    )


def make_dataset(root: Path, n: int, *, coils: int, slices: int, recon: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        knee = i % 2 == 0
        make_volume(
            root,
            f"file_{'knee' if knee else 'brain_AXT2'}_{i:04d}",
            protocol="CORPD_FBK" if knee else "AXT2",
            seed=i,
            coils=coils,
            slices=slices,
            recon=recon,
        )


def child(args: argparse.Namespace) -> None:
    """Runs in the subprocess: one evaluation, then prints one JSON line."""
    import resource

    import mribench
    import mribench.workflows.evaluation  # noqa: F401  (imports are part of the baseline, not of the evaluation)

    def status_mb(key: str) -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    # Linux: writing 5 to clear_refs resets the peak (VmHWM) to the current RSS, so the peak read after
    # the evaluation is the evaluation's own; elsewhere fall back to the process-lifetime ru_maxrss.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before = status_mb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def rss_mb() -> float:
        peak = status_mb("VmHWM") if reset else None
        return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    if args.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
    result = mribench.evaluate(
        "zero-filled",
        args.task,
        data=args.root,
        run_dir=args.run_dir,
        runtime=mribench.Runtime(device="cpu", batch_size=args.batch_size),
    )
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "rss_mb_before": before,
        "peak_rss_mb": rss_mb(),
        "peak_reset": reset,
        "wall_outer_s": wall,
        "n_slices": int(len(result.slices)),
        "timing": result.config.timing["rank0"].model_dump() if "rank0" in result.config.timing else {},
    }
    if args.profile:
        pr.disable()
        import io

        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(25)
        out["profile"] = s.getvalue()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(15)
        out["profile_tottime"] = s.getvalue()
    print("RESULT " + json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 128], help="volumes per dataset")
    ap.add_argument("--task", default="anatomy")
    ap.add_argument("--coils", type=int, default=8)
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--recon", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--profile", action="store_true", help="cProfile the largest evaluation")
    ap.add_argument("--json", help="write the results as JSON to this file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="mribench-mem-") as tmp:
        env = {**os.environ, "MRIBENCH_CACHE": str(Path(tmp) / "cache")}
        for n in args.sizes:
            root = Path(tmp) / f"data{n}"
            t0 = time.perf_counter()
            make_dataset(root, n, coils=args.coils, slices=args.slices, recon=args.recon)
            gen = time.perf_counter() - t0
            data_mb = sum(p.stat().st_size for p in root.glob("*.h5")) / 2**20
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--task",
                args.task,
                "--root",
                str(root),
                "--run-dir",
                str(Path(tmp) / f"run{n}"),
                "--batch-size",
                str(args.batch_size),
            ]
            if args.profile and n == max(args.sizes):
                cmd.append("--profile")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                return 1
            r = {"volumes": n, "data_mb": data_mb, "generate_s": gen, **json.loads(line[len("RESULT ") :])}
            results.append(r)
    print(
        f"task {args.task}, zero-filled, volumes of {args.slices} slices x {args.coils} coils x "
        f"{2 * args.recon}x{args.recon + 8} k-space, batch {args.batch_size}"
    )
    print(" volumes  data MiB  slices  RSS before / peak during (MiB)   wall s   model s  metric s  overhead")
    for r in results:
        t = r["timing"]
        wall = t.get("wall_seconds", float("nan"))
        over = wall - t.get("model_seconds", 0.0) - t.get("metric_seconds", 0.0)
        print(
            f" {r['volumes']:7d}  {r['data_mb']:8.1f}  {r['n_slices']:6d}  {r['rss_mb_before']:10.0f} / "
            f"{r['peak_rss_mb']:6.0f}            {wall:7.2f}  {t.get('model_seconds', 0):7.2f}  "
            f"{t.get('metric_seconds', 0):8.2f}  {100 * over / wall:6.1f}%"
        )
    for r in results:
        if "profile" in r:
            print(f"\nprofile of the {r['volumes']}-volume evaluation (cumulative):\n{r.pop('profile')}")
            print(f"(tottime):\n{r.pop('profile_tottime')}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
