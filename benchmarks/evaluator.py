"""Evaluator overhead: zero-filled on a whole embedded task.

Everything that is neither the model nor the metrics (reading HDF5, masking, the per-slice store,
the summary, set-up) counts as overhead; the target is < 10% of wall time. The runs share one
process, as evaluations in a notebook or a checkpoint sweep do: the index is read from disk once.

    python benchmarks/evaluator.py [--task anatomy] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", default="anatomy")
    ap.add_argument("--model", default="zero-filled")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    import mribench
    from mribench.data.index import build_index
    from mribench.data.synthetic import ensure_synthetic

    root = ensure_synthetic()
    build_index(root)  # the index is cached after the first build, as in daily use
    warm = mribench.EvalOptions(limit=2)
    mribench.evaluate(args.model, args.task, data=root, run_dir=Path(tempfile.mkdtemp()) / "warm", options=warm)
    print(f"task {args.task}, model {args.model}, data {root}")
    shares = []
    for r in range(args.repeats):
        rd = Path(tempfile.mkdtemp()) / "run"
        t0 = time.perf_counter()
        res = mribench.evaluate(
            args.model, args.task, data=root, run_dir=rd, runtime=mribench.Runtime(batch_size=args.batch_size)
        )
        wall = time.perf_counter() - t0
        t = res.config.timing["rank0"]
        n = len(res.slices)
        inner = t.model_seconds + t.metric_seconds
        print(
            f"run {r}: {n} slices, wall {wall:.2f} s ({n / wall:.1f} slices/s), model {t.model_seconds:.2f} s, "
            f"metrics {t.metric_seconds:.2f} s, overhead {wall - inner:.2f} s = {100 * (wall - inner) / wall:.1f}% of wall"
        )
        shares.append((wall - inner, wall))
    pct = sorted(100 * o / w for o, w in shares)
    pooled = 100 * sum(o for o, _ in shares) / sum(w for _, w in shares)
    print(
        f"overhead over {len(pct)} runs: median {pct[len(pct) // 2]:.1f}%, min {pct[0]:.1f}%, max {pct[-1]:.1f}%, "
        f"all runs together {pooled:.1f}% (target < 10%)"
    )


if __name__ == "__main__":
    main()
