"""The metric registry contract used by the evaluator, and the ``weights`` / ``metrics`` CLI sub-apps."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mribench.cli.metrics import metrics_app, weights_app
from mribench.errors import MetricError
from mribench.metrics import METRICS, MetricSpec, explain, get_metric, list_metrics, profile_ids, ssim

BUILTIN = [
    "dists",
    "laplacian_variance",
    "lpips_alex",
    "lpips_vgg",
    "nmse",
    "psnr",
    "region_ssim",
    "region_ssim_large",
    "region_ssim_small",
    "ssim",
]


def test_builtin_metrics_and_flags() -> None:
    assert set(BUILTIN) <= set(list_metrics())
    for name in BUILTIN:
        spec = get_metric(name)
        assert isinstance(spec, MetricSpec) and spec.name == name and spec.profile.startswith(name + "@")
        assert spec.needs_weights == (name in ("lpips_vgg", "lpips_alex", "dists"))
        assert spec.needs_boxes == name.startswith("region_ssim")
        assert spec.higher_is_better == (name in ("ssim", "psnr") or name.startswith("region_ssim"))
        assert spec.description and "\n" not in spec.description
    with pytest.raises(MetricError, match="did you mean 'ssim'"):
        get_metric("ssmi")


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 32, 24, generator=g) * 1e-4
    recon = (target + 1e-5 * torch.randn(3, 32, 24, generator=g)).abs()
    return target, recon, torch.full((3,), float(target.max()), dtype=torch.float64)


@pytest.mark.parametrize("name", ["ssim", "psnr", "nmse", "laplacian_variance"])
def test_compute_returns_float64_cpu_per_slice(name: str) -> None:
    target, recon, dr = _batch()
    out = get_metric(name).compute(target, recon, data_range=dr)
    assert out.shape == (3,) and out.dtype == torch.float64 and out.device.type == "cpu"
    assert bool(torch.isfinite(out).all())
    if name == "ssim":
        torch.testing.assert_close(out, ssim(target, recon, dr))


def test_region_metrics_need_boxes() -> None:
    target, recon, dr = _batch()
    spec = get_metric("region_ssim")
    with pytest.raises(ValueError, match="boxes"):
        spec.compute(target, recon, data_range=dr)
    out = spec.compute(target, recon, data_range=dr, boxes=[[(2, 3, 10, 10)], [], [(0, 0, 2, 2)]])
    assert not math.isnan(float(out[0])) and math.isnan(float(out[1]))
    small = get_metric("region_ssim_small").compute(
        target, recon, data_range=dr, boxes=[[(2, 3, 10, 10)], [], [(0, 0, 2, 2)]]
    )
    assert math.isnan(float(small[0])) and not math.isnan(float(small[2]))  # 100 px > 1% of 768 px; 4 px <= 1%


def test_compute_rejects_bad_shapes() -> None:
    target, recon, dr = _batch()
    with pytest.raises(ValueError, match="expected"):
        get_metric("ssim").compute(target[0], recon[0], data_range=dr[:1])
    with pytest.raises(ValueError, match="data_range"):
        get_metric("ssim").compute(target, recon, data_range=dr[:2])


def test_profile_ids_hash_the_json_definition() -> None:
    ids = profile_ids(["ssim", "dists"])
    spec = get_metric("ssim")
    expected = hashlib.sha256(json.dumps(spec.definition(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert ids["ssim"] == {"profile": "ssim@fastmri-v1", "hash": expected}
    assert ids["dists"]["profile"] == "dists@dists0.1-p99.9-v2" and len(ids["dists"]["hash"]) == 64
    d = spec.definition()
    assert d["window"] == "7x7 uniform" and d["K1"] == 0.01 and d["K2"] == 0.03 and "volume" in d["data_range"]
    json.dumps([get_metric(n).definition() for n in BUILTIN])  # all JSON-able


def test_explain_mentions_definition_and_caveats() -> None:
    text = explain("ssim")
    assert "ssim@fastmri-v1" in text and "7x7" in text and "why SSIM numbers differ" in text and "volume" in text
    assert "99.9th percentile" in explain("lpips_vgg")


def test_plugin_registration_is_used() -> None:
    spec = MetricSpec(
        "mean_abs_error_test",
        "mean_abs_error_test@v1",
        False,
        False,
        True,
        False,
        "test metric",
        lambda t, r, *, data_range, boxes: (t - r).abs().mean(dim=(-2, -1)),
    )
    METRICS.register(spec.name, spec)
    try:
        target, recon, dr = _batch()
        assert get_metric(spec.name).compute(target, recon, data_range=dr).shape == (3,)
        assert spec.name in list_metrics()
    finally:
        METRICS._items.pop(spec.name)


runner = CliRunner()


def test_cli_metrics_list_and_explain() -> None:
    res = runner.invoke(metrics_app, ["list"])
    assert res.exit_code == 0 and "ssim@fastmri-v1" in res.output and "lpips_vgg" in res.output
    res = runner.invoke(metrics_app, ["explain", "ssim"])
    assert res.exit_code == 0 and "K1" in res.output
    res = runner.invoke(metrics_app, ["explain", "ssmi"])
    assert res.exit_code == 2 and "did you mean" in res.output


def test_cli_weights_status_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MRIBENCH_WEIGHTS", str(tmp_path / "none"))
    res = runner.invoke(weights_app, ["status"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "missing" in res.output and "mribench weights fetch" in res.output
    res = runner.invoke(weights_app, ["fetch", "nope"])
    assert res.exit_code == 2 and "expected a weights or metric name" in res.output


def test_ssim_d22_is_skimage_after_the_papers_normalisation() -> None:
    """D22's notebooks: ``normalize(gt, pred)`` (pred to gt's mean and numpy std) then
    ``compare_ssim(gt, pred, data_range=gt.max())``; the volume max passed in is not used."""
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 48, 40, generator=g, dtype=torch.float64) * 3e-4
    recon = 1.7 * target + 1e-4 * torch.rand(3, 48, 40, generator=g, dtype=torch.float64) + 2e-5
    spec = get_metric("ssim_d22")
    assert spec.profile == "ssim@darestani-v1" and spec.higher_is_better
    got = spec.compute(target.float(), recon.float(), data_range=torch.full((3,), 123.0))
    for i in range(3):
        gt, pred = target[i].float().double().numpy(), recon[i].float().double().numpy()
        pred = (pred - pred.mean()) / pred.std() * gt.std() + gt.mean()
        want = structural_similarity(gt, pred, data_range=gt.max())
        assert abs(float(got[i]) - want) < 1e-6
    # scale-free: the normalisation removes a gain and an offset of the reconstruction
    again = spec.compute(target, 5.0 * recon + 1.0, data_range=torch.ones(3))
    assert torch.allclose(again, spec.compute(target, recon, data_range=torch.ones(3)), atol=1e-9)


def test_metric_names_tasks_may_list_are_the_registrys() -> None:
    from mribench.api.metric_names import BUILTIN_METRICS, known_metric_names
    from mribench.metrics import definitions
    from mribench.metrics.registry import MetricSpec as Spec

    assert sorted(s.name for s in definitions.builtin_specs(Spec)) == list(BUILTIN_METRICS)
    assert set(BUILTIN_METRICS) <= set(known_metric_names())
