"""The one number formatter and the one slug helper."""

from __future__ import annotations

import math

import pytest

from mribench import fmt
from mribench.paths import slug


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (0.61412007, 4, "0.6141"),
        (21.958304434178068, 4, "21.9583"),
        (-0.0616, 4, "-0.0616"),
        (4.076342932130289e-09, 4, "4.08e-09"),  # artifact variance: fixed decimals would show 0.0000
        (0.00099, 4, "9.90e-04"),
        (0.001, 4, "0.0010"),
        (0.0, 4, "0.0000"),
        (0.0042, 3, "4.2e-03"),
        (0.4, 1, "0.4"),  # no scientific form with fewer than 2 digits
        (18, 4, "18"),
        (None, 4, "–"),
        (math.nan, 4, "–"),
        (math.inf, 4, "inf"),
        (-math.inf, 4, "-inf"),
    ],
)
def test_number(value: float | None, digits: int, text: str) -> None:
    assert fmt.number(value, digits) == text


def test_the_leaderboard_rule_is_kept() -> None:
    """The committed leaderboard pages were rendered with this rule (html_pages.fmt before fmt existed)."""

    def old(v: float | None, nd: int = 4) -> str:
        if v is None:
            return "–"
        if 0 < abs(v) < 10 ** -(nd - 1):
            return f"{v:.{nd - 2}e}"
        return f"{v:.{nd}f}"

    for v in (0.5524947985043656, 19.37833469358945, 2.7e-09, -2.5799697405886164, 0.00731, 1e-3, None):
        for nd in (3, 4):
            assert fmt.number(v, nd) == old(v, nd)


def test_compact_exact_ci_and_infinite_note() -> None:
    assert fmt.compact(0.0012345678) == "0.001235" and fmt.compact(21.9583, 5) == "21.958"
    assert fmt.compact(0.003, 3, sign=True) == "+0.003" and fmt.compact(-0.0, 3, sign=True) == "-0"
    assert fmt.compact(1e-11, 6) == "1e-11" and fmt.compact(None) == "–"
    assert fmt.exact(0.1) == "0.1" and fmt.exact(None) == "null" and fmt.exact(3) == "3"
    assert fmt.ci(0.5, 0.4, None) == "0.5000 [0.4000, –]"
    assert fmt.infinite_note(0) == "" and fmt.infinite_note(None) == "" and fmt.infinite_note(2) == " (+2 inf)"


@pytest.mark.parametrize(
    ("args", "kw", "text"),
    [
        (("unet",), {}, "unet"),
        (("runs/x/my unet.safetensors",), {}, "my-unet.safetensors"),
        (("/",), {}, "model"),
        (("CORPD/FBK", "group"), {"basename": False}, "CORPD-FBK"),
        (("ViT-B-16:datacomp",), {"basename": False}, "ViT-B-16-datacomp"),
        (("",), {"basename": False}, "model"),
        (("a" * 70 + "-b",), {"max_len": 60}, "a" * 60),
        (("--x--",), {}, "x"),
    ],
)
def test_slug(args: tuple[str, ...], kw: dict[str, object], text: str) -> None:
    assert slug(*args, **kw) == text  # type: ignore[arg-type]
