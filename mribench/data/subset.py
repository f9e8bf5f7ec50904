"""Which volumes a limited evaluation takes (``--limit N``): whole volumes, spread over the split.

Rule (documented; the leaderboard recomputes it): the volumes of a split are ordered by the
sha256 hex digest of ``"<seed>:<file name>"`` (ties by name) and the first ``N`` are kept, with
every one of their slices in the split. The order depends only on the seed and each volume's own
name, so it is a random-looking spread over the split that is the same on every machine and for
every split composition, and a larger ``N`` keeps the volumes of a smaller one (a check can add
volumes to a run until it decides). Volumes, not slices, because slices of one volume are
correlated: statistics over volumes need whole volumes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pandas as pd

DEFAULT_SEED = 0


def volume_order(files: Iterable[str], seed: int = DEFAULT_SEED) -> list[str]:
    """Distinct volume names in selection order: by sha256 of ``"<seed>:<name>"``, ties by name."""
    names = {str(f) for f in files}
    return sorted(names, key=lambda f: (hashlib.sha256(f"{seed}:{f}".encode()).hexdigest(), f))


def select_volumes(rows: pd.DataFrame, n_volumes: int | None, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """The rows of the first ``n_volumes`` volumes in :func:`volume_order` (all rows when None).

    Args:
        rows: a split's slice rows (with a ``file`` column), in any order.
        n_volumes: volumes to keep (>= 1), or None for all.
        seed: the selection seed (recorded with the run as ``options.limit_seed``).

    Returns:
        The kept rows in their original order (index reset), or ``rows`` itself when None.
    """
    if n_volumes is None:
        return rows
    if n_volumes < 1:
        raise ValueError(f"expected a number of volumes >= 1, got {n_volumes}")
    keep = set(volume_order(rows["file"].tolist(), seed)[:n_volumes])
    return rows[rows["file"].isin(keep)].reset_index(drop=True)


__all__ = ["DEFAULT_SEED", "select_volumes", "volume_order"]
