"""Patch extraction, blockwise nearest-neighbour similarity and the embedding cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mribench.analysis import (
    BackgroundRule,
    EmbeddingCache,
    SliceItem,
    clip_similarity,
    extract_patches,
    nearest_neighbour_similarity,
)


def _image(seed: int, n: int = 160) -> np.ndarray:
    """Bright random ellipses in the middle of a black background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    img = np.zeros((n, n), np.float32)
    for _ in range(5):
        cx, cy = rng.uniform(-0.3, 0.3, 2)
        a, b = rng.uniform(0.2, 0.5, 2)
        img += rng.uniform(0.2, 1.0) * (((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 < 1)
    return img * 1e-4  # fastMRI-like tiny intensities: the rule must be scale-invariant


class FakeEmbedder:
    """Deterministic stand-in for CLIP: 8x8 average pooling, flattened, centred, L2-normalised."""

    def __init__(self) -> None:
        self.calls = 0
        self.patches = 0

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        assert patches.dtype == torch.float32 and patches.ndim == 3
        assert float(patches.min()) >= 0.0 and float(patches.max()) <= 1.0
        self.calls += 1
        self.patches += len(patches)
        pooled = torch.nn.functional.adaptive_avg_pool2d(patches[:, None], 8).flatten(1)
        return torch.nn.functional.normalize(pooled - 0.3, dim=1)


def test_extract_patches_shapes_range_and_background_rule() -> None:
    images = [_image(i) for i in range(4)] + [np.zeros((160, 160), np.float32)]
    patches, prov = extract_patches(images, size=40, per_image=6, seed=1)
    assert patches.shape == (len(prov), 40, 40) and patches.dtype == np.float32
    assert 0.0 <= patches.min() and patches.max() <= 1.0
    assert {p.slice for p in prov} == {0, 1, 2, 3}  # the empty image yields nothing
    assert all(sum(p.slice == i for p in prov) == 6 for i in range(4))
    for rec, patch in zip(prov, patches, strict=True):
        img = images[rec.slice]
        np.testing.assert_allclose(
            patch * np.percentile(img, 99.9),
            np.minimum(img[rec.top : rec.top + 40, rec.left : rec.left + 40], np.percentile(img, 99.9)),
            rtol=1e-5,
        )
        window = img[rec.top : rec.top + 40, rec.left : rec.left + 40]
        assert (window > 0.1 * np.percentile(img, 99)).mean() >= 0.5


def test_extract_patches_seeded_by_stable_ids() -> None:
    imgs = [_image(0), _image(1)]
    _, a = extract_patches(imgs, size=32, per_image=3, seed=0, ids=[("f1.h5", 4), ("f2.h5", 0)])
    _, b = extract_patches(imgs[1:], size=32, per_image=3, seed=0, ids=[("f2.h5", 0)])
    assert a[3:] == b  # an image's patches do not depend on the other images
    _, c = extract_patches(imgs, size=32, per_image=3, seed=1, ids=[("f1.h5", 4), ("f2.h5", 0)])
    assert a != c
    strict = BackgroundRule(min_foreground=1.0)
    _, d = extract_patches(imgs, size=32, per_image=3, rule=strict)
    assert all(
        (imgs[r.slice][r.top : r.top + 32, r.left : r.left + 32] > 0.1 * np.percentile(imgs[r.slice], 99)).all()
        for r in d
    )


def test_extract_patches_rejects_small_or_complex_images() -> None:
    with pytest.raises(ValueError, match="at least 80x80"):
        extract_patches([np.ones((64, 64))])
    with pytest.raises(ValueError, match="real"):
        extract_patches([np.ones((96, 96), complex)])


def test_blockwise_equals_dense() -> None:
    rng = np.random.default_rng(0)
    test, train = rng.normal(size=(50, 16)), rng.normal(size=(123, 16))
    tn = test / np.linalg.norm(test, axis=1, keepdims=True)
    rn = train / np.linalg.norm(train, axis=1, keepdims=True)
    dense = (tn @ rn.T).max(axis=1)
    for block in (1, 7, 50, 4096):
        np.testing.assert_allclose(nearest_neighbour_similarity(test, train, block=block), dense, rtol=1e-12)
    f32 = nearest_neighbour_similarity(torch.from_numpy(test).float(), torch.from_numpy(train).float(), block=16)
    np.testing.assert_allclose(f32, dense, atol=1e-5)
    with pytest.raises(ValueError, match="equal size"):
        nearest_neighbour_similarity(test, train[:, :8])


def _items(seeds, prefix: str, loads: list | None = None) -> list[SliceItem]:
    def loader(s: int):
        def load() -> np.ndarray:
            if loads is not None:
                loads.append(s)
            return _image(s)

        return load

    return [SliceItem(f"{prefix}{s // 2}.h5", s % 2, loader(s)) for s in seeds]


def test_clip_similarity_caches_embeddings_and_positions(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "emb")
    kw = dict(cache=cache, model_name="fake/clip", weights_hash="abc123", size=48, per_image=4, batch_size=5)
    embed = FakeEmbedder()
    first = clip_similarity(_items(range(6), "train"), _items(range(6, 10), "test"), embed, **kw)
    assert first.n_embedded == embed.patches == 40 and first.n_cached == 0
    assert len(first.values) == 16 and first.n_train_patches == 24
    assert first.counts.sum() == 16 and len(first.edges) == 51
    assert first.mean == pytest.approx(first.values.mean()) and first.histogram[0] is first.counts

    again, loads = FakeEmbedder(), []
    second = clip_similarity(_items(range(6), "train", loads), _items(range(6, 10), "test", loads), again, **kw)
    assert again.calls == 0 and second.n_embedded == 0 and second.n_cached == 40
    assert loads == []  # cached positions: images were not even loaded
    np.testing.assert_array_equal(second.values, first.values)
    assert second.test_patches == first.test_patches

    more = FakeEmbedder()
    third = clip_similarity(_items(range(7), "train"), _items(range(6, 10), "test"), more, **kw)
    assert more.patches == 4 and third.n_cached == 40  # only the new slice is embedded
    other_model = FakeEmbedder()
    clip_similarity(
        _items(range(6), "train"), _items(range(6, 10), "test"), other_model, **{**kw, "weights_hash": "zzz"}
    )
    assert other_model.patches == 40  # a different weights hash is a different cache entry

    files = sorted(p.name for p in (tmp_path / "emb").rglob("*") if p.is_file())
    assert not [f for f in files if ".tmp" in f]
    index = [p for p in (tmp_path / "emb").rglob("train0.h5-*.json")]
    meta = json.loads(index[0].read_text())
    assert meta["file"] == "train0.h5" and len(meta["keys"]) == 8 and (index[0].parent / meta["array"]).exists()


def test_clip_similarity_without_cache_and_with_identical_sets() -> None:
    items = _items(range(4), "vol")
    res = clip_similarity(items, items, FakeEmbedder(), size=48, per_image=3)
    np.testing.assert_allclose(res.values, 1.0, atol=1e-6)
    assert set(res.by_slice()) == {("vol0.h5", 0), ("vol0.h5", 1), ("vol1.h5", 0), ("vol1.h5", 1)}


def test_corrupt_cache_entry_is_a_miss(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    kw = dict(cache=cache, model_name="m", weights_hash="h", size=48, per_image=2)
    clip_similarity(_items([0], "a"), _items([1], "a"), FakeEmbedder(), **kw)
    for p in tmp_path.rglob("*.json"):
        p.write_text("{not json")
    embed = FakeEmbedder()
    res = clip_similarity(_items([0], "a"), _items([1], "a"), embed, **kw)
    assert embed.patches == 4 and res.n_cached == 0


def test_cache_requires_model_identity(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_name and weights_hash"):
        clip_similarity(_items([0], "a"), _items([1], "a"), FakeEmbedder(), cache=EmbeddingCache(tmp_path), size=48)


def test_embed_fn_output_is_validated() -> None:
    with pytest.raises(ValueError, match="embed_fn"):
        clip_similarity(_items([0], "a"), _items([1], "a"), lambda x: x[:1].flatten(1), size=48)


def test_default_cache_root_follows_mribench_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MRIBENCH_CACHE", str(tmp_path / "c"))
    assert EmbeddingCache().root == tmp_path / "c" / "embeddings"


def test_embed_items_reports_counts_and_leaves_global_rng_untouched(tmp_path: Path) -> None:
    from mribench.analysis import PatchSpec, embed_items

    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    spec = PatchSpec(size=48, per_image=2)
    out = embed_items(_items(range(3), "v"), FakeEmbedder(), spec, EmbeddingCache(tmp_path), "m", "h")
    assert out.embeddings.shape == (6, 64) and len(out.records) == 6 and (out.n_embedded, out.n_cached) == (6, 0)
    stack = torch.from_numpy(np.stack([_image(0), _image(1)]))
    patches, prov = extract_patches(stack, size=48, per_image=2)
    assert patches.shape == (4, 48, 48) and [p.patch_index for p in prov] == [0, 1, 0, 1]
    assert (np.random.get_state()[1] == np_state[1]).all() and torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_blockwise_on_cuda_equals_cpu() -> None:
    g = torch.Generator().manual_seed(0)
    test, train = torch.randn(3000, 64, generator=g), torch.randn(5000, 64, generator=g)
    cpu = nearest_neighbour_similarity(test, train, block=1024)
    gpu = nearest_neighbour_similarity(test.cuda(), train.cuda(), block=1024)
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)  # TF32 matmuls may be enabled on the GPU
