"""The metric registry: what the evaluator computes, under which pinned, hashed definition.

Each :class:`MetricSpec` carries a versioned profile id (``ssim@fastmri-v1``) and a JSON-able
definition (window, constants, data-range rule, preprocessing, references). The evaluator stores
``profile_ids`` with every run so results computed under different definitions are never mixed.
Plugins register specs under the ``mribench.metrics`` entry-point group.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from mribench.api.metric_names import ALIAS_REASONS, METRIC_ALIASES, canonical_metric
from mribench.errors import MetricError
from mribench.metrics import definitions as defs
from mribench.registry import Registry

Boxes = list[list[tuple[int, int, int, int]]]
# Uniform metric signature: fn(target, recon, *, data_range, boxes) -> (B,) tensor.
MetricFn = Callable[..., Tensor]
# Region metrics scored per box: fn(target, recon, *, data_range, boxes) -> one list per slice, one
# float per box of that slice (NaN for a box the metric does not score).
BoxMetricFn = Callable[..., list[list[float]]]


@dataclass(frozen=True)
class Tolerance:
    """How far apart two values of a metric may be and still count as the same number.

    Float-level differences (another CPU, BLAS or GPU kernel, another summation order) must never
    read as a change: ``mribench check`` allows every metric at least this drop, and
    ``mribench leaderboard audit`` accepts a re-evaluated slice within it. Two values ``a`` (the
    reference) and ``b`` are equal when ``|a - b| <= absolute + relative * |a|``.

    Attributes:
        absolute: allowed absolute difference (bounded metrics such as SSIM).
        relative: allowed difference relative to the reference value (scale-dependent metrics
            such as NMSE, or PSNR whose dB value is a log of one).
        why: one line on where the value comes from.
    """

    absolute: float = 0.0
    relative: float = 0.0
    why: str = ""

    def __post_init__(self) -> None:
        if not (self.absolute >= 0 and self.relative >= 0) or self.absolute + self.relative == 0:
            raise ValueError(
                f"expected a non-negative tolerance with absolute or relative > 0, got {self.absolute}, {self.relative}"
            )

    def allowed(self, reference: float) -> float:
        """The allowed difference around ``reference`` (NaN reference: the absolute part)."""
        ref = abs(float(reference))
        return self.absolute + (self.relative * ref if ref == ref and ref != float("inf") else 0.0)

    def describe(self) -> str:
        parts = [f"{self.absolute:g} absolute"] if self.absolute else []
        parts += [f"{self.relative:g} relative"] if self.relative else []
        return " + ".join(parts) + (f" ({self.why})" if self.why else "")


DEFAULT_TOLERANCE = Tolerance(relative=1e-6, why="default for metrics that state none: float64 rounding")


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        name: registry name (``ssim``, ``lpips_vgg``, ...).
        profile: versioned definition id, e.g. ``ssim@fastmri-v1``.
        higher_is_better: direction of improvement.
        needs_weights: needs pretrained network weights (see ``mribench weights``).
        differentiable: gradients flow through ``fn`` (usable as a loss).
        needs_boxes: a region metric that needs fastMRI+ boxes.
        description: one line.
        fn: ``fn(target, recon, *, data_range, boxes)`` with target/recon (B, H, W), data_range (B,)
            and boxes (one list per slice, or None) returning (B,).
        params: the pinned definition details (JSON-able) shown by ``explain`` and hashed.
        availability: raises :class:`~mribench.errors.WeightsMissingError` when unusable; None: always usable.
        per_box: for region metrics scored once per box: ``per_box(target, recon, *, data_range,
            boxes)`` returning one list of per-box floats per slice (``fn`` is then their mean per
            slice); summaries average such metrics over boxes (:func:`mribench.results.summarize`).
        tolerance: when two values count as the same number (:class:`Tolerance`); not part of the
            hashed definition, since it says how results are compared, not how they are computed.
    """

    name: str
    profile: str
    higher_is_better: bool
    needs_weights: bool
    differentiable: bool
    needs_boxes: bool
    description: str
    fn: MetricFn = field(compare=False, repr=False)
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    availability: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    per_box: BoxMetricFn | None = field(default=None, compare=False, repr=False)
    tolerance: Tolerance = field(default=DEFAULT_TOLERANCE, compare=False, repr=False)

    def compute_boxes(self, target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Boxes) -> list[list[float]]:
        """Score every box of a batch of slices (region metrics with ``per_box`` only).

        Args:
            target: (B, H, W) real tensor on any device.
            recon: (B, H, W) real tensor on the same device.
            data_range: (B,) per-slice data range (mribench: the target volume's max).
            boxes: fastMRI+ boxes per slice.

        Returns:
            B lists with one float per box of the slice (NaN: not scored by this metric).

        Raises:
            MetricError: the metric is not scored per box, or returned the wrong number of values.
        """
        if self.per_box is None:
            raise MetricError(f"expected a metric scored per box, got {self.name!r} (per slice only)")
        if target.ndim != 3 or recon.shape != target.shape:
            raise ValueError(
                f"expected target and recon of one shape (B, H, W), got {tuple(target.shape)} and {tuple(recon.shape)}"
            )
        dr = torch.as_tensor(data_range, dtype=torch.float64)
        dr = dr.expand(target.shape[0]) if dr.ndim == 0 else dr
        out = self.per_box(target, recon, data_range=dr.to(target.device), boxes=boxes)
        if len(out) != target.shape[0] or any(len(v) != len(b) for v, b in zip(out, boxes, strict=False)):
            raise MetricError(f"expected metric {self.name!r} to return one value per box of each slice")
        return [[float(x) for x in v] for v in out]

    def compute(self, target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Boxes | None = None) -> Tensor:
        """Score a batch of slices.

        Args:
            target: (B, H, W) real tensor on any device.
            recon: (B, H, W) real tensor on the same device.
            data_range: (B,) per-slice data range (mribench: the target volume's max).
            boxes: fastMRI+ boxes per slice; required when ``needs_boxes``, ignored otherwise.

        Returns:
            (B,) float64 CPU tensor.

        Raises:
            ValueError: bad shapes, or missing boxes for a region metric.
            MetricError: the metric function returned a wrong shape.
        """
        if target.ndim != 3 or recon.shape != target.shape:
            raise ValueError(
                f"expected target and recon of one shape (B, H, W), got {tuple(target.shape)} and {tuple(recon.shape)}"
            )
        batch = target.shape[0]
        dr = torch.as_tensor(data_range, dtype=torch.float64)
        if dr.ndim == 0:
            dr = dr.expand(batch)
        if dr.shape != (batch,):
            raise ValueError(f"expected data_range of shape ({batch},), got {tuple(dr.shape)}")
        if self.needs_boxes and boxes is None:
            raise ValueError(f"expected fastMRI+ boxes for region metric {self.name!r}, got None")
        out = self.fn(target, recon, data_range=dr.to(target.device), boxes=boxes if self.needs_boxes else None)
        out = torch.as_tensor(out).detach().to("cpu", torch.float64).reshape(-1)
        if out.shape != (batch,):
            raise MetricError(f"expected metric {self.name!r} to return shape ({batch},), got {tuple(out.shape)}")
        return out

    def check_available(self) -> None:
        """Raise :class:`~mribench.errors.WeightsMissingError` (with a hint) when weights are missing."""
        if self.availability is not None:
            self.availability()

    def definition(self) -> dict[str, Any]:
        """The pinned definition: identity, direction and all parameters (JSON-able, hashed by :func:`profile_ids`)."""
        return {
            "name": self.name,
            "profile": self.profile,
            "higher_is_better": self.higher_is_better,
            "needs_boxes": self.needs_boxes,
            **self.params,
        }


METRICS: Registry[MetricSpec] = Registry("metric", MetricError, "mribench.metrics")

for _spec in defs.builtin_specs(MetricSpec):
    if _spec.name in defs.TOLERANCES:
        _spec = replace(_spec, tolerance=Tolerance(**defs.TOLERANCES[_spec.name]))
    METRICS.register(_spec.name, _spec)


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name`` (or the one an alias such as ``lpips`` stands for, see
    :data:`mribench.api.metric_names.METRIC_ALIASES`); unknown names raise :class:`MetricError` with a
    suggestion."""
    spec = METRICS.get(canonical_metric(name))
    if not isinstance(spec, MetricSpec):
        raise MetricError(f"expected a MetricSpec registered as {name!r}, got {type(spec).__name__}")
    return spec


def list_metrics() -> list[str]:
    """Sorted names of all metrics (built-in and plugins)."""
    return METRICS.names()


def tolerance_of(name: str) -> Tolerance:
    """The :class:`Tolerance` of metric ``name``; :data:`DEFAULT_TOLERANCE` for a metric this
    installation does not know (a plugin metric of a stored run)."""
    try:
        return get_metric(name).tolerance
    except MetricError:
        return DEFAULT_TOLERANCE


def definition_hash(spec: MetricSpec) -> str:
    """sha256 of the JSON-dumped definition (sorted keys)."""
    text = json.dumps(spec.definition(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def profile_ids(names: list[str]) -> dict[str, dict[str, str]]:
    """``name -> {"profile": id, "hash": sha256 of the definition}`` for the given metrics."""
    out = {}
    for n in names:
        spec = get_metric(n)
        out[n] = {"profile": spec.profile, "hash": definition_hash(spec)}
    return out


def explain(name: str) -> str:
    """A multi-line human explanation of metric ``name``: definition, data range, references, caveats."""
    spec = get_metric(name)
    d = spec.definition()
    aliases = [a for a, m in METRIC_ALIASES.items() if m == spec.name]
    lines = [
        f"{spec.name}  ({spec.profile})" + (f"  alias: {', '.join(aliases)}" if aliases else ""),
        f"  {spec.description}",
        f"  direction: {'higher' if spec.higher_is_better else 'lower'} is better",
        f"  needs pretrained weights: {'yes' if spec.needs_weights else 'no'}"
        + ("  (see `mribench weights status`)" if spec.needs_weights else ""),
        f"  needs fastMRI+ boxes: {'yes' if spec.needs_boxes else 'no'}",
        f"  definition hash: {definition_hash(spec)[:16]}",
        f"  tolerance (equal values in check and audit): {spec.tolerance.describe()}",
        "  definition:",
    ]
    skip = {"name", "profile", "higher_is_better", "needs_boxes", "references", "notes"}
    for key in sorted(k for k in d if k not in skip):
        lines.append(f"    {key}: {d[key]}")
    if d.get("references"):
        lines.append("  references:")
        lines.extend(f"    - {r}" for r in d["references"])
    for note in d.get("notes", []):
        lines.append("  note: " + note)
    if name != spec.name:
        why = ALIAS_REASONS.get(name)
        lines.insert(1, f"  {name!r} is an alias of {spec.name!r}" + (f" ({why})" if why else ""))
    if spec.name == "ssim" or spec.name.startswith("region_ssim"):
        lines.append("  why SSIM numbers differ between tools:")
        lines.extend("    " + line for line in defs.SSIM_CAVEATS)
    return "\n".join(lines)
