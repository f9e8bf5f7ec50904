"""Effective-robustness plot (OOD vs ID scatter with the linear fit) as SVG text.

Hand-written rather than matplotlib because the plot is inlined in the HTML page: each point needs
a link to its entry page and a tooltip, the text must go through the same escaping as the rest of
the page, and the bytes must be reproducible (no fonts, ids or dates embedded) so that rebuilding
an unchanged leaderboard gives an unchanged site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from mribench.analysis.effective_robustness import LinearTrend
from mribench.fmt import compact, number

WIDTH, HEIGHT = 560, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 52


@dataclass(frozen=True)
class Point:
    """One evaluated entry: ID (x) and OOD (y) scores, tooltip label and link."""

    x: float
    y: float
    label: str
    href: str | None = None
    reference: bool = False  # the task's Q-trained reference (drawn apart, never in the fit)


def _nice_ticks(lo: float, hi: float, n: int = 7) -> list[float]:
    span = hi - lo
    raw = span / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _range(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        pad = max(abs(lo) * 0.01, 0.01)
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def er_svg(
    points: list[Point], trend: LinearTrend | None, metric: str, *, title: str = "", standalone: bool = False
) -> str:
    """Render the scatter (OOD vs ID) with the fitted line and the y = x (no-drop) line.

    Args:
        points: the task's evaluated entries.
        trend: linear fit over them (None with fewer than two distinct ID scores).
        metric: metric name for the axis labels.
        title: accessible title of the figure.
        standalone: add the XML namespace (for a separate ``.svg`` file).

    Returns:
        SVG markup; all text is escaped.
    """
    e = escape
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    head = (
        f'<svg{ns} class="er-plot" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'aria-label="{e(title or "effective robustness plot")}">'
    )
    parts = [
        head,
        f"<title>{e(title or 'Effective robustness')}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    if not points:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-family="sans-serif" '
            f'font-size="14" fill="#555">no evaluated entries yet</text></svg>'
        )
        return "".join(parts)
    xs, ys = [p.x for p in points], [p.y for p in points]
    x0, x1 = _range(xs)
    y0, y1 = _range(ys)

    def sx(v: float) -> float:
        return round(LEFT + (v - x0) / (x1 - x0) * pw, 2)

    def sy(v: float) -> float:
        return round(TOP + ph - (v - y0) / (y1 - y0) * ph, 2)

    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in _nice_ticks(x0, x1):
        parts.append(
            f'<line x1="{sx(t)}" y1="{TOP}" x2="{sx(t)}" y2="{TOP + ph}" stroke="#eee"/>'
            f'<text x="{sx(t)}" y="{TOP + ph + 16}" text-anchor="middle" font-family="sans-serif" '
            f'font-size="11" fill="#333">{compact(t)}</text>'
        )
    for t in _nice_ticks(y0, y1):
        parts.append(
            f'<line x1="{LEFT}" y1="{sy(t)}" x2="{LEFT + pw}" y2="{sy(t)}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{sy(t) + 4}" text-anchor="end" font-family="sans-serif" '
            f'font-size="11" fill="#333">{compact(t)}</text>'
        )
    # y = x (OOD equal to ID: no drop), clipped to the plot box
    lo, hi = max(x0, y0), min(x1, y1)
    if lo < hi:
        parts.append(
            f'<line class="identity" x1="{sx(lo)}" y1="{sy(lo)}" x2="{sx(hi)}" y2="{sy(hi)}" '
            f'stroke="#999" stroke-dasharray="4 4"/>'
        )
    if trend is not None:
        # the fit in metric units over the x range, clipped to the y range
        a, b = trend.slope, trend.intercept
        seg = [(x, a * x + b) for x in (x0, x1)]
        if a != 0:
            seg = [(x, y) for x, y in seg if y0 <= y <= y1] + [
                ((y - b) / a, y) for y in (y0, y1) if x0 <= (y - b) / a <= x1
            ]
        else:
            seg = [(x, y) for x, y in seg if y0 <= y <= y1]
        seg = sorted(set(seg))
        if len(seg) >= 2:
            (ax, ay), (bx, by) = seg[0], seg[-1]
            parts.append(
                f'<line class="fit" x1="{sx(ax)}" y1="{sy(ay)}" x2="{sx(bx)}" y2="{sy(by)}" stroke="#c0392b" '
                f'stroke-width="2"><title>{e(f"fit: OOD = {compact(a)} * ID + {compact(b)} (n = {trend.n})")}</title></line>'
            )
    for p in points:
        what = "Q-trained reference, " if p.reference else ""
        dot = (
            f'<circle class="{"point reference" if p.reference else "point"}" cx="{sx(p.x)}" cy="{sy(p.y)}" r="5" '
            f'fill="{"#e67e22" if p.reference else "#2c6fbb"}" stroke="#fff">'
            f"<title>{e(p.label)} ({what}ID {number(p.x)}, OOD {number(p.y)})</title></circle>"
        )
        parts.append(f'<a href="{e(p.href)}">{dot}</a>' if p.href else dot)
    parts.append(
        f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 12}" text-anchor="middle" font-family="sans-serif" '
        f'font-size="12" fill="#111">ID {e(metric)} (test_P)</text>'
    )
    parts.append(
        f'<text x="14" y="{TOP + ph / 2}" text-anchor="middle" font-family="sans-serif" font-size="12" '
        f'fill="#111" transform="rotate(-90 14 {TOP + ph / 2})">OOD {e(metric)} (test_Q)</text>'
    )
    legend = "dashed: OOD = ID" + (" · red: linear fit over ranked entries" if trend is not None else "")
    if any(p.reference for p in points):
        legend += " · orange: Q-trained reference"
    parts.append(
        f'<text x="{LEFT}" y="{TOP - 10}" font-family="sans-serif" font-size="11" fill="#555">{e(legend)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
