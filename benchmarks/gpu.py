"""Every CUDA path of mribench in one run, one summary table (driver of ``benchmarks/gpu.sh``).

Rows (each runs in its own process with a time limit, so a failure or a hang is reported in its row
and the table is still printed):

- ``cuda-tests``: the tests marked ``cuda`` (``pytest -m cuda``; they skip without a GPU);
- ``ttt-embedded``: ``benchmarks/ttt.py --device cuda --preset embedded`` (the embedded benchmark's
  256x132 slices, 16 coils, U-Net 16 channels / 3 pools): per-slice loop vs vectorised TTT;
- ``ttt-paper``: the same at the paper's size (``--preset paper``: 320x320, 15 coils, U-Net 64
  channels / 4 pools); target >= 5x slices/hour against the loop at equal SSIM (DESIGN.md);
- ``eval``: ``mribench.evaluate`` of a U-Net and a VarNet (random weights: timing only, no score is
  reported) in fp32 and bf16 on synthetic fastMRI-format volumes at the paper's size;
- ``metrics``: SSIM, LPIPS-VGG and DISTS throughput on the device (the perceptual networks with
  their weights when fetched, else with random weights, labelled: timing only).

Without a CUDA device (or with ``--cpu-fallback``) every row runs at tiny sizes on the CPU in
seconds: a check that the script and its rows work, not a measurement. The GPU run is sized to
finish in under 8 minutes on one H200 (time limits per row: 100 + 80 + 150 + 80 + 40 s).

Usage::

    bash benchmarks/gpu.sh [--cpu-fallback] [--rows ttt-paper,eval] [--json out.json]
    python benchmarks/gpu.py --row eval --device cuda --json out.json      # one row (what the driver runs)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@dataclass
class Row:
    """One line of the table: a command (argv after the interpreter), its time limit and a summary."""

    name: str
    argv: list[str]
    timeout: float
    summarise: Callable[[dict[str, Any]], str]
    result: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- summaries of row outputs


def _ttt_summary(doc: dict[str, Any]) -> str:
    parts = []
    for r in doc.get("results", []):
        rows = r["rows"]
        best = max((n for n in rows if not n.startswith("loop")), key=lambda n: rows[n]["speedup"], default=None)
        if best is None:
            continue
        b = rows[best]
        parts.append(
            f"{r['size']} {r['coils']}c ch{r['chans']} {r.get('variant', '')}: {best} {b['speedup']:.2f}x vs {r['reference']} "
            f"({b['slices_per_hour']:.0f} slices/h), dSSIM {b['ssim_diff']:+.4f} ({b['ssim_diff_se']:.4f}), "
            f"{b['network_gflops']:.0f} GFLOP/s"
            + (f" of {r['matmul_gflops']:.0f} matmul" if r.get("matmul_gflops") else "")
        )
    return "; ".join(parts) or "no rows"


def _eval_summary(doc: dict[str, Any]) -> str:
    return "; ".join(
        f"{k} {v['slices_per_second']:.1f} slices/s" + ("" if v.get("ok") else " (failed slices)")
        for k, v in doc.get("runs", {}).items()
    )


def _metrics_summary(doc: dict[str, Any]) -> str:
    return "; ".join(
        f"{k} {v['slices_per_second']:.0f}/s" + (" (random weights)" if v.get("random_weights") else "")
        for k, v in doc.get("metrics", {}).items()
    )


def _tests_summary(doc: dict[str, Any]) -> str:
    return str(doc.get("summary", ""))


# --------------------------------------------------------------------------- the rows themselves


def _synthetic_root(root: Path, volumes: int, slices: int, coils: int, recon: int) -> None:
    """Knee and brain fastMRI-format volumes: smooth random objects, Gaussian coil profiles, noise.

    k-space is (coils, 2 * recon, recon + 16) with read-out oversampling and 8 unacquired padding
    columns on each side, as fastMRI files have; the target is the cropped RSS image.
    """
    import numpy as np
    import torch

    from mribench.data.fastmri_io import write_volume
    from mribench.data.header import AcquisitionHeader
    from mribench.physics.fft import center_crop, fft2c, ifft2c, rss

    h, w = 2 * recon, recon + 16
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    angles = np.linspace(0, 2 * np.pi, coils, endpoint=False)
    sens = np.stack([np.exp(-((xx - np.cos(a)) ** 2 + (yy - np.sin(a)) ** 2)) * np.exp(1j * a) for a in angles])
    for protocol in ("CORPD_FBK", "AXT2"):
        for v in range(volumes):
            rng = np.random.default_rng((v, len(protocol)))
            imgs = []
            for _ in range(slices):
                obj = np.zeros((h, w))
                for _ in range(6):
                    cx, cy = rng.uniform(-0.3, 0.3, 2)
                    a, b = rng.uniform(0.05, 0.3, 2)
                    obj += rng.uniform(0.2, 1.0) * (((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1)
                imgs.append(sens * obj)
            k = fft2c(torch.from_numpy(np.stack(imgs).astype(np.complex64)))
            k = k + 1e-3 * float(k.abs().max()) * torch.randn(k.shape, dtype=torch.complex64)
            k[..., :8] = 0
            k[..., w - 8 :] = 0
            target = center_crop(rss(ifft2c(k)), (recon, recon)).numpy()
            header = AcquisitionHeader(
                encoded_size=(h, w, 1),
                recon_size=(recon, recon, 1),
                enc_limits_center=w // 2 - 8,
                enc_limits_max=w - 17,
                protocol_name=protocol,
                system_vendor="SIEMENS",
                system_model="Skyra",
                field_strength_t=2.89362,
                receiver_channels=coils,
                institution_name="NYU",
                sequence_type="TurboSpinEcho",
            )
            name = f"file_{'knee' if protocol == 'CORPD_FBK' else 'brain_AXT2'}_{v:03d}.h5"
            write_volume(root / name, k.numpy(), target, header, acquisition=protocol, patient_id=f"p{v}")


def row_eval(args: argparse.Namespace) -> dict[str, Any]:
    """``mribench.evaluate`` of a U-Net and a VarNet in fp32 and bf16 (random weights: timing only)."""
    import torch

    from mribench import evaluate
    from mribench.api.model import ModelInfo
    from mribench.api.run import EvalOptions, Runtime
    from mribench.models.builtin import UnetRecon, VarNetRecon
    from mribench.models.loaded import LoadedModel
    from mribench.tasks import parse_task

    tiny = args.device == "cpu"
    size = dict(volumes=2, slices=2, coils=4, recon=32) if tiny else dict(volumes=2, slices=4, coils=15, recon=320)
    task = parse_task(
        {
            "version": 1,
            "source": {"filter": {"anatomy": "knee"}},
            "target": {"filter": {"anatomy": "brain"}},
            "mask": {"type": "equispaced", "acceleration": 4},
            "splits": {"test_fraction": 0.99},
            "metrics": ["ssim", "psnr"],
        },
        "gpu-check",
    )
    out: dict[str, Any] = {"device": args.device, "size": size, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        os.environ["MRIBENCH_CACHE"] = str(Path(tmp) / "cache")  # the index of this data stays here
        t0 = time.perf_counter()
        _synthetic_root(root, **size)
        out["data_seconds"] = time.perf_counter() - t0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            nets = {
                "unet": UnetRecon(chans=4, num_pool_layers=2) if tiny else UnetRecon(),
                "varnet": VarNetRecon(num_cascades=2, chans=4, sens_chans=2, pools=2, sens_pools=2)
                if tiny
                else VarNetRecon(),
            }
        for arch, net in nets.items():
            for precision in ("fp32", "bf16"):
                key = f"{arch}-{precision}"
                lm = LoadedModel(net.eval(), ModelInfo(f"{arch}-random", "builtin", "", {"timing_only": True}))
                for rep in range(1 if tiny else 2):  # on the GPU the first run pays for context and kernels
                    t0 = time.perf_counter()
                    res = evaluate(
                        lm,
                        task,
                        data=root,
                        run_dir=Path(tmp) / f"{key}-{rep}",
                        options=EvalOptions(precision=precision, splits=("test_P", "test_Q")),
                        runtime=Runtime(device=args.device, batch_size=4 if tiny else 8),
                    )
                    seconds = time.perf_counter() - t0
                slices = len(res.slices)
                out["runs"][key] = {
                    "slices": slices,
                    "seconds": seconds,
                    "slices_per_second": slices / seconds,
                    "ok": bool((res.slices["status"] == "ok").all()),
                }
    return out


def row_metrics(args: argparse.Namespace) -> dict[str, Any]:
    """SSIM / LPIPS-VGG / DISTS throughput on the device."""
    import torch

    from mribench.metrics import ssim
    from mribench.metrics.perceptual import dists, lpips
    from mribench.metrics.weights import missing_weights

    dev = torch.device(args.device)
    n, size = (4, 32) if dev.type == "cpu" else (64, 320)
    g = torch.Generator().manual_seed(0)
    target = torch.rand(n, size, size, generator=g).to(dev)
    recon = (target + 0.05 * torch.randn(n, size, size, generator=g).to(dev)).abs()
    out: dict[str, Any] = {"device": str(dev), "slices": n, "size": size, "metrics": {}}

    def timed(fn: Callable[[], Any]) -> float:
        fn()  # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        return time.perf_counter() - t0

    seconds = timed(lambda: ssim(target, recon, 1.0))
    out["metrics"]["ssim"] = {"slices_per_second": n / seconds}
    k = min(n, 16)
    for name in ("lpips_vgg", "dists"):
        random = bool(missing_weights(name))

        def perceptual(name: str = name, random: bool = random) -> Any:
            if name == "dists":
                return dists(target[:k], recon[:k], allow_random_weights=random)
            return lpips(target[:k], recon[:k], allow_random_weights=random)

        seconds = timed(perceptual)
        out["metrics"][name] = {"slices_per_second": k / seconds, "random_weights": random}
    return out


def _sync(dev: Any) -> None:
    import torch

    if torch.device(dev).type == "cuda":
        torch.cuda.synchronize(dev)


ROW_FUNCTIONS = {"eval": row_eval, "metrics": row_metrics}


# --------------------------------------------------------------------------- the driver


def plan(device: str, out_dir: Path) -> list[Row]:
    """The rows of a run on ``device`` (``cuda``: full sizes; ``cpu``: the tiny fallback)."""
    py = ["-u"]
    me = [*py, str(HERE / "gpu.py")]
    ttt = [*py, str(HERE / "ttt.py"), "--device", device, "--loop-threads", "1", "--workers", "1"]
    if device == "cpu":
        tiny_ttt = ["--sizes", "32x32", "--slices", "2", "--coils", "4", "--chans", "4", "--pools", "2"]
        tiny_ttt += ["--window", "2", "--max-steps", "8", "--train-steps", "2", "--train-slices", "2"]
        tests = Row("cuda-tests", [], 0, _tests_summary, {"status": "skipped", "summary": "no CUDA device"})
        return [
            tests,
            Row("ttt-embedded", [*ttt, *tiny_ttt, "--json", str(out_dir / "ttt-embedded.json")], 120, _ttt_summary),
            # at the tiny size the second TTT row checks the other variant instead of another size
            Row(
                "ttt-paper",
                [*ttt, *tiny_ttt, "--variant", "fast", "--json", str(out_dir / "ttt-paper.json")],
                120,
                _ttt_summary,
            ),
            Row(
                "eval",
                [*me, "--row", "eval", "--device", "cpu", "--json", str(out_dir / "eval.json")],
                120,
                _eval_summary,
            ),
            Row(
                "metrics",
                [*me, "--row", "metrics", "--device", "cpu", "--json", str(out_dir / "metrics.json")],
                120,
                _metrics_summary,
            ),
        ]
    return [
        Row("cuda-tests", ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"], 100, _tests_summary),
        Row(
            "ttt-embedded",
            [*ttt, "--preset", "embedded", "--json", str(out_dir / "ttt-embedded.json")],
            80,
            _ttt_summary,
        ),
        Row("ttt-paper", [*ttt, "--preset", "paper", "--json", str(out_dir / "ttt-paper.json")], 150, _ttt_summary),
        Row(
            "eval", [*me, "--row", "eval", "--device", device, "--json", str(out_dir / "eval.json")], 80, _eval_summary
        ),
        Row(
            "metrics",
            [*me, "--row", "metrics", "--device", device, "--json", str(out_dir / "metrics.json")],
            40,
            _metrics_summary,
        ),
    ]


def _json_path(argv: list[str]) -> Path | None:
    return Path(argv[argv.index("--json") + 1]) if "--json" in argv else None


def run_row(row: Row) -> None:
    """Run one row in a subprocess; record status, seconds and its summary (never raises)."""
    if not row.argv:
        row.result.setdefault("seconds", 0.0)
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, *row.argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=row.timeout
        )
        rc, tail = proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()[-12:]
    except subprocess.TimeoutExpired as e:
        rc, tail = None, [f"timed out after {row.timeout:.0f} s"] + str(e.stdout or "").strip().splitlines()[-3:]
    row.result["seconds"] = time.perf_counter() - t0
    row.result["output_tail"] = tail
    if row.name == "cuda-tests":
        summary = next(
            (line for line in reversed(tail) if " passed" in line or " skipped" in line or "no tests" in line), ""
        )
        row.result["summary"] = summary.strip("= ")
        # exit code 5: no test selected (none marked cuda); 0: all passed
        row.result["status"] = "ok" if rc in (0, 5) else ("timeout" if rc is None else f"FAILED (rc {rc})")
        return
    path = _json_path(row.argv)
    if rc == 0 and path is not None and path.is_file():
        try:
            row.result.update(json.loads(path.read_text()) if path.suffix == ".json" else {})
            row.result["status"] = "ok"
        except (OSError, ValueError) as e:
            row.result["status"] = f"FAILED (unreadable output: {e})"
    else:
        row.result["status"] = "timeout" if rc is None else f"FAILED (rc {rc}): {tail[-1] if tail else ''}"


def _table(rows: list[Row], device: str, wall: float) -> str:
    lines = [f"mribench GPU check on {device} (one row per CUDA path; {wall:.0f} s in all)"]
    lines.append(f"{'row':<14}{'status':<10}{'seconds':>8}  result")
    for r in rows:
        status = str(r.result.get("status", "not run"))
        try:
            text = r.summarise(r.result) if status == "ok" else "; ".join(r.result.get("output_tail", [])[-2:])
        except (KeyError, TypeError, ValueError) as e:  # a row's output without the expected fields
            text = f"(summary failed: {type(e).__name__}: {e})"
        head, _, detail = status.partition(" ")
        prefix = f"{detail}: " if detail else ""
        lines.append(f"{r.name:<14}{head:<10}{r.result.get('seconds', 0.0):>8.1f}  {prefix}{text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-fallback", action="store_true", help="tiny sizes on the CPU even when a GPU is present")
    ap.add_argument("--rows", default=None, help="comma-separated subset of the rows")
    ap.add_argument("--json", default=None, help="write every row's result here")
    ap.add_argument("--row", choices=sorted(ROW_FUNCTIONS), default=None, help="run one row in this process")
    ap.add_argument("--device", default=None, help="device of --row (default: cuda when available)")
    args = ap.parse_args(argv)

    import torch

    cuda = torch.cuda.is_available() and not args.cpu_fallback
    if args.row:
        args.device = args.device or ("cuda" if cuda else "cpu")
        if args.device.startswith("cuda"):
            dev = torch.device(args.device)
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            torch.cuda.set_device(index)  # explicit (set_device needs an index)
            args.device = f"cuda:{index}"
        result = ROW_FUNCTIONS[args.row](args)
        text = json.dumps(result, indent=2, default=float)
        if args.json:
            Path(args.json).write_text(text)
        else:
            print(text)
        return 0

    device = "cuda" if cuda else "cpu"
    name = (
        torch.cuda.get_device_name(0) if cuda else f"CPU fallback ({os.cpu_count()} CPUs, tiny sizes: no measurement)"
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = plan(device, Path(tmp))
        if args.rows:
            wanted = set(args.rows.split(","))
            unknown = wanted - {r.name for r in rows}
            if unknown:
                ap.error(f"unknown rows {sorted(unknown)}; rows: {[r.name for r in rows]}")
            rows = [r for r in rows if r.name in wanted]
        for row in rows:
            run_row(row)
            print(f"[{row.name}] {row.result.get('status')} in {row.result.get('seconds', 0.0):.1f} s", flush=True)
    wall = time.perf_counter() - t0
    print()
    print(_table(rows, name, wall))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"device": name, "wall_seconds": wall, "rows": {r.name: r.result for r in rows}},
                indent=2,
                default=float,
            )
        )
    failed = [r.name for r in rows if r.result.get("status") not in ("ok", "skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
