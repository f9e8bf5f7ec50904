"""A model together with its identity (what every result records about the model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mribench.api.model import ModelInfo, ReconModel, SliceMeta


@dataclass
class LoadedModel:
    """A model plus its identity. Calling it calls the model.

    Attributes:
        model: the :class:`~mribench.api.model.ReconModel`.
        info: its identity, recorded in every result.
    """

    model: ReconModel
    info: ModelInfo

    def __call__(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        return self.model(masked_kspace, mask, meta)

    def to(self, device: torch.device) -> LoadedModel:
        """Move the model to ``device`` when it is movable (nn.Module or has ``.to``)."""
        mover = getattr(self.model, "to", None)
        if callable(mover):
            moved: Any = mover(device)
            if moved is not None:
                self.model = moved
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        return self
