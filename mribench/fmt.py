"""Numbers as text: the one formatter of every table, page and message mribench writes.

Three forms, each for one purpose:

* :func:`number` -- fixed decimals for tables (CLI, report, leaderboard README and site). Values so
  small that the fixed form would show only zeros (Lin & Heckel's artifact variance is ~1e-9 on
  fastMRI's intensity scale) switch to scientific notation.
* :func:`compact` -- significant digits (``format(v, ".4g")``) for prose, plot ticks and the
  regression gate's verdict lines, optionally with an explicit sign.
* :func:`exact` -- the value exactly as stored (``repr``), for messages that compare stored numbers.

:func:`decimals` picks the decimals of a row of one quantity (a metric's means, CIs and drop) so that
its largest value shows about four significant digits: SSIM ``0.6141``, PSNR ``21.55``, an artifact
variance on an 8-bit scale ``1415``.

Missing values (None, NaN) are shown as :data:`MISSING` by default; infinities as ``inf`` /
``-inf`` (they are real values, e.g. PSNR of an exact reconstruction; see
:mod:`mribench.analysis.stats`). This module imports nothing heavy (it sits at the bottom layer).
"""

from __future__ import annotations

import math

MISSING = "–"  # an en dash: a missing number, distinct from a minus sign


def _missing(v: float | int | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def number(v: float | int | None, digits: int = 4, missing: str = MISSING) -> str:
    """A number for a table: ``digits`` decimals, tiny magnitudes in scientific notation.

    Args:
        v: the value (ints are printed as they are; bools are not numbers here).
        digits: decimals of the fixed form; values with ``0 < |v| < 10^-(digits - 1)`` are written
            with ``digits - 2`` decimals in scientific notation when ``digits >= 2``.
        missing: text for None and NaN.

    Returns:
        e.g. ``number(0.61412) == "0.6141"``, ``number(4.0763e-09) == "4.08e-09"``,
        ``number(None) == "–"``, ``number(float("inf")) == "inf"``, ``number(18) == "18"``.
    """
    if _missing(v):
        return missing
    if isinstance(v, bool) or not isinstance(v, float):
        return str(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if digits >= 2 and 0 < abs(v) < 10 ** -(digits - 1):
        return f"{v:.{digits - 2}e}"
    return f"{v:.{digits}f}"


def compact(v: float | int | None, significant: int = 4, sign: bool = False, missing: str = MISSING) -> str:
    """A number with ``significant`` significant digits (``format(v, ".4g")``).

    Args:
        v: the value.
        significant: significant digits.
        sign: always write the sign (``+0.002``), e.g. for differences.
        missing: text for None and NaN.
    """
    if v is None or _missing(v):
        return missing
    return f"{float(v):{'+' if sign else ''}.{significant}g}"


def exact(v: float | int | None) -> str:
    """The value exactly as stored: ``repr`` of the number, ``null`` for None (JSON's word)."""
    return "null" if v is None else repr(v)


def decimals(*values: float | int | None, significant: int = 4, most: int = 4) -> int:
    """Decimals that show the largest finite ``|value|`` with about ``significant`` significant digits.

    Args:
        values: the numbers printed together (missing and infinite ones are ignored).
        significant: significant digits of the largest value.
        most: at most this many decimals (values too small for them switch to scientific
            notation in :func:`number`).

    Returns:
        e.g. ``decimals(0.61, 0.55) == 4``, ``decimals(21.55, -1.2) == 2``, ``decimals(1415.3) == 0``.
    """
    finite = [abs(float(v)) for v in values if v is not None and not isinstance(v, bool) and math.isfinite(float(v))]
    big = max(finite, default=0.0)
    if big == 0.0:
        return most
    return max(0, min(most, significant - 1 - math.floor(math.log10(big))))


def ci(mean: float | None, low: float | None, high: float | None, digits: int = 4, missing: str = MISSING) -> str:
    """``mean [low, high]`` with :func:`number` (the form of every mean with a CI in a table)."""
    return f"{number(mean, digits, missing)} [{number(low, digits, missing)}, {number(high, digits, missing)}]"


def infinite_note(n_inf: int | None) -> str:
    """`` (+3 inf)`` when a summary left ``n_inf`` infinite values out of its mean, else ``""``."""
    return f" (+{n_inf} inf)" if n_inf else ""
