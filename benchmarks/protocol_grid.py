"""A PNG grid of MRIBench-Sim images: one column per protocol and site, rows from several subjects.

Usage::

    python benchmarks/protocol_grid.py                          # docs/images/mribench-sim-protocols.png
    python benchmarks/protocol_grid.py --out grid.png --rows 2  # elsewhere, fewer subjects
    python benchmarks/protocol_grid.py --size tiny              # the test size (quick)

For each (protocol, site, field) stratum of the catalog it generates (into the MRIBench-Sim cache,
as any job would, and only the volumes it shows) the first ``--rows`` volumes of the validation
folder and draws the target (``reconstruction_rss``) of a slice spread over the volume: the middle
slice in the first row, then slices towards either end, so a reader sees each contrast, the
anatomical coverage and subject variability, and can judge them against real fastMRI images.
Each image is scaled to its own 99.5th percentile, flipped vertically as fastMRI's viewers show it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "images" / "mribench-sim-protocols.png"


def _strata(size: str, rows: int) -> dict[str, list[str]]:
    """Column title -> the validation volumes shown (normal subjects first)."""
    from mribench.data.synthetic.catalog import catalog

    cols: dict[str, list[str]] = {}
    for s in catalog(size):
        if s.split != "val" or s.coils > 8 and s.anatomy == "knee" and size != "fastmri":
            continue  # the 15-coil knees of the coil shift duplicate a stratum
        site = "Stanford-like" if s.site == "SITE_B" else "fastMRI-like"
        title = f"{s.protocol_name}\n{site} {s.field}"
        cols.setdefault(title, [])
        if len(cols[title]) < rows and not (s.lesions and len(cols[title]) == 0):
            cols[title].append(s.name)
    return {k: v for k, v in cols.items() if v}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--size", default="default", help="MRIBench-Sim size (default, fastmri, tiny)")
    ap.add_argument("--rows", type=int, default=2, help="subjects per protocol")
    ap.add_argument("--per-line", type=int, default=8, help="protocols per line of the grid")
    args = ap.parse_args(argv)

    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from mribench.data.synthetic import ensure_synthetic
    from mribench.data.synthetic.catalog import catalog

    cols = _strata(args.size, args.rows)
    where = {s.name: s.path for s in catalog(args.size)}
    names = sorted({n for v in cols.values() for n in v})
    root = ensure_synthetic(args.size, volumes=names)
    nrow = max(len(v) for v in cols.values())
    per = max(1, min(args.per_line, len(cols)))
    lines = -(-len(cols) // per)
    fig, axes = plt.subplots(lines * nrow, per, figsize=(2.2 * per, 2.35 * nrow * lines), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, (title, vols) in enumerate(cols.items()):
        for i, name in enumerate(vols):
            ax = axes[(j // per) * nrow + i][j % per]
            with h5py.File(root / where[name], "r") as hf:
                rss = hf["reconstruction_rss"]
                n = rss.shape[0]
                # row 0: the middle slice; later rows alternate towards the ends of the volume
                k = n // 2 + (1 if i % 2 else -1) * ((i + 1) // 2) * max(1, n // 5)
                k = min(max(k, 0), n - 1)
                img = np.asarray(rss[k], dtype=np.float32)
            ax.imshow(np.flipud(img), cmap="gray", vmin=0.0, vmax=float(np.percentile(img, 99.5)))
            if i == 0:
                ax.set_title(title, fontsize=8)
            ax.text(2, 10, f"{name[:-3][-10:]} s{k}/{n}", color="yellow", fontsize=5)
    fig.suptitle(f"MRIBench-Sim ({args.size}): targets by protocol and site", fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out} ({len(cols)} protocol and site strata x {nrow} subjects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
