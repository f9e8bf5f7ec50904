"""Convert every source file of a dataset: the driver behind ``mribench data convert``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mribench.data.convert.registry import CONVERTERS
from mribench.data.convert.transforms import DEFAULT_LEVEL, DEFAULT_PERCENTILE, View
from mribench.data.convert.writer import Volume3D, convert_slices, convert_volume
from mribench.errors import DataError

ProgressFn = Callable[[int, int, str], None]


@dataclass
class ConversionReport:
    """What a conversion did.

    Attributes:
        written: output files.
        skipped: (source file, reason) for each source that could not be converted.
    """

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def convert_dataset(
    dataset: str,
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    views: list[str] | None = None,
    trim: tuple[int, int] | None = None,
    recon_size: tuple[int, int] | None = None,
    level: float = DEFAULT_LEVEL,
    percentile: float = DEFAULT_PERCENTILE,
    metadata: dict[str, Any] | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    dataset_name: str | None = None,
) -> ConversionReport:
    """Convert every source file of a dataset under ``src`` into fastMRI files under ``out_dir``.

    Args:
        dataset: a :data:`CONVERTERS` name.
        src: a source file or a folder searched recursively with the dataset's pattern.
        out_dir: output root (3D datasets write one sub-folder per view).
        views: views to write (3D datasets); default the dataset's default views.
        trim: (first, last) slices dropped, overriding the dataset's per-view default.
        recon_size: (h, w) target crop; default the full slice (3D) or the header's recon size (2D).
        level, percentile: the scaling rule (:func:`volume_scale`).
        metadata: header values overriding the dataset's (protocol, anatomy, vendor, model, field, ...).
        limit: convert at most this many source files.
        overwrite: replace existing outputs (otherwise a scan whose outputs all exist is skipped).
        progress: ``progress(done, total, source file name)``.
        dataset_name: the ``dataset`` attr of every output file (default: the converter's name for
            each view, Lin & Heckel's vocabulary where it has one).

    Raises:
        DataError: unknown or unsupported dataset, missing source.
        ValueError: unknown view, bad trim/recon size.
    """
    spec = CONVERTERS.get(dataset)
    if not spec.supported or spec.reader is None:
        raise DataError(f"expected a supported dataset, got {dataset!r}, which has no reader: {spec.note}")
    src_p = Path(src).expanduser()
    if src_p.is_file():
        files = [src_p]
    elif src_p.is_dir():
        files = sorted(p for p in src_p.rglob(spec.pattern) if p.is_file() and not p.name.startswith("."))
    else:
        raise DataError(f"expected a source file or folder, got {src_p} (not found)")
    if not files:
        raise DataError(f"expected {spec.pattern} source files under {src_p}, got none")
    if limit is not None:
        files = files[:limit]
    chosen: list[View] = []
    if spec.kind == "3d":
        names = views or list(spec.default_views)
        for v in names:
            if v not in spec.views:
                raise ValueError(f"expected views among {sorted(spec.views)} for {dataset}, got {v!r}")
            chosen.append(spec.views[v] if trim is None else replace(spec.views[v], trim=tuple(trim)))  # type: ignore[arg-type]
    overrides = {k: v for k, v in (metadata or {}).items() if v is not None}
    report = ConversionReport()
    out = Path(out_dir)
    for i, f in enumerate(files):
        try:
            for scan in spec.reader(f):
                # dataset defaults < what the file itself says < what the user passed
                scan.metadata = {**spec.metadata, **scan.metadata, **overrides}
                if isinstance(scan, Volume3D):
                    targets = [out / v.name / f"{dataset}_{scan.name}_{v.name}.h5" for v in chosen]
                    if not overwrite and all(t.is_file() for t in targets):
                        report.written.extend(targets)
                        continue
                    report.written.extend(
                        convert_volume(
                            scan,
                            out,
                            chosen,
                            dataset=dataset,
                            recon_size=recon_size,
                            level=level,
                            percentile=percentile,
                            dataset_names={v.name: dataset_name or spec.dataset_name(v.name) for v in chosen},
                        )
                    )
                else:
                    suffix = "" if spec.view_name == "native" else f"_{spec.view_name}"
                    target = out / f"{dataset}_{scan.name}{suffix}.h5"
                    if not overwrite and target.is_file():
                        report.written.append(target)
                        continue
                    if recon_size is not None:
                        scan.recon_size = recon_size
                    report.written.append(
                        convert_slices(
                            scan,
                            out,
                            dataset=dataset,
                            flip_rows=spec.flip_rows,
                            trim=tuple(trim) if trim else (0, 0),  # type: ignore[arg-type]
                            level=level,
                            percentile=percentile,
                            dataset_name=dataset_name or spec.dataset_name(spec.view_name),
                            view=spec.view_name,
                        )
                    )
        except (DataError, OSError, KeyError) as e:
            report.skipped.append((str(f), str(e)))
        if progress:
            progress(i + 1, len(files), f.name)
    return report
