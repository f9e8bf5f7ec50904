"""Datasets mribench lists but cannot convert yet (their native layout could not be checked)."""

from __future__ import annotations

from mribench.data.convert.registry import CONVERTERS, ConverterSpec

for _name, _title, _why in [
    ("stanford2d", "Stanford 2D FSE (mridata.org)", "layout not verified; no reader"),
    ("nyu2d", "NYU machine learning data (mridata.org)", "layout not verified; no reader"),
]:
    CONVERTERS.register(_name, ConverterSpec(_name, _title, False, None, note=_why, source="http://mridata.org"))
