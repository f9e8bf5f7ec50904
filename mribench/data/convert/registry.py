"""The converter registry: what mribench can convert, and how each dataset is recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mribench.data.convert.transforms import View
from mribench.data.convert.writer import Reader
from mribench.errors import DataError
from mribench.registry import Registry


@dataclass(frozen=True)
class ConverterSpec:
    """A dataset mribench can (or cannot yet) convert.

    Attributes:
        name: registry name.
        title: the dataset's name.
        supported: whether a reader exists (its native layout was checked against public sources).
        reader: source file -> scans; ``None`` when unsupported.
        kind: ``3d`` (views are synthesised) or ``2d`` (slices kept).
        views: the views a 3D dataset can produce.
        default_views: views written when none are asked for.
        pattern: glob of the source files under the input folder.
        metadata: header values known for every scan of the dataset (CLI options override them).
        layout: the native layout, in words.
        source: where to obtain the data.
        licence: the licence, or a pointer to it.
        note: caveats (or why it is unsupported).
        flip_rows: for 2D datasets, flip the images vertically (fastMRI orientation).
        dataset_names: the ``dataset`` attr written per view (``native`` for 2D datasets), in Lin &
            Heckel's ``datasetName`` vocabulary (see :mod:`mribench.data.datasets`); default the
            converter's name.
        view_name: the view a 2D dataset's slices are (``native`` when not named).
    """

    name: str
    title: str
    supported: bool
    reader: Reader | None
    kind: str = "3d"
    views: dict[str, View] = field(default_factory=dict)
    default_views: tuple[str, ...] = ()
    pattern: str = "*.h5"
    metadata: dict[str, Any] = field(default_factory=dict)
    layout: str = ""
    source: str = "see the dataset's site"
    licence: str = "see the dataset's site"
    note: str = ""
    flip_rows: bool = False
    dataset_names: dict[str, str] = field(default_factory=dict)
    view_name: str = "native"

    def dataset_name(self, view: str) -> str:
        """The ``dataset`` attr of files of ``view``."""
        return self.dataset_names.get(view, self.name)


# Views of (coils, kx, ky, kz) with the ISMRMRD axes of the 7T database, as in Lin & Heckel's


CONVERTERS: Registry[ConverterSpec] = Registry("dataset converter", DataError)
