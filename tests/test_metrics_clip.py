"""CLIP loading from a local checkpoint (tiny open_clip config, random weights) and embeddings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_CLIP as TINY  # noqa: E402

from mribench.analysis.similarity import nearest_neighbour_similarity
from mribench.errors import WeightsMissingError
from mribench.metrics.clip import embed_images, load_clip, resolve_checkpoint


def test_load_clip_from_explicit_checkpoint_and_embed(tiny_checkpoint: Path) -> None:
    state = torch.random.get_rng_state()
    model = load_clip(tiny_checkpoint, model_name=TINY)
    assert torch.equal(state, torch.random.get_rng_state())
    g = torch.Generator().manual_seed(1)
    images = torch.rand(5, 80, 80, generator=g)
    emb = embed_images(model, images, batch_size=2)
    assert emb.shape == (5, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(embed_images(model, images[:1]), emb[:1], rtol=1e-4, atol=1e-5)
    sim = torch.from_numpy(nearest_neighbour_similarity(emb[:2], emb))
    torch.testing.assert_close(
        sim, torch.ones(2, dtype=torch.float64), rtol=1e-4, atol=1e-5
    )  # each query is among the references
    assert embed_images(model, torch.rand(3, 40, 100, generator=g)).shape == (3, 16)  # non-square: crop


def test_checkpoint_lookup_order(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MRIBENCH_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.delenv("MRIBENCH_CLIP_CHECKPOINT", raising=False)
    with pytest.raises(WeightsMissingError, match="huggingface-cli download laion/CLIP-ViT-B-16-DataComp"):
        resolve_checkpoint()
    monkeypatch.setenv("MRIBENCH_CLIP_CHECKPOINT", str(tiny_checkpoint))
    assert resolve_checkpoint(model_name=TINY) == tiny_checkpoint
    assert load_clip(model_name=TINY) is not None
    monkeypatch.setenv("MRIBENCH_CLIP_CHECKPOINT", str(tmp_path / "missing.pt"))
    with pytest.raises(WeightsMissingError, match="does not exist"):
        resolve_checkpoint()
    monkeypatch.delenv("MRIBENCH_CLIP_CHECKPOINT")
    folder = tmp_path / "w" / f"clip-{TINY}"
    folder.mkdir(parents=True)
    (folder / "open_clip_pytorch_model.bin").write_bytes(tiny_checkpoint.read_bytes())
    assert resolve_checkpoint(model_name=TINY) == folder / "open_clip_pytorch_model.bin"


def test_wrong_checkpoint_is_reported(tiny_checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"nonsense": torch.zeros(1)}, bad)
    with pytest.raises(WeightsMissingError, match="does not load"):
        load_clip(bad, model_name=TINY)
