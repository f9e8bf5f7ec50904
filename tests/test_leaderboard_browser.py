"""Headless Chromium loads the built leaderboard site from file:// and sorts a table.

Uses Debian's chromium + chromium-driver (``/usr/bin/chromedriver``) through selenium; never a
downloaded browser or driver. Skipped cleanly when any of them is missing
(``leaderboard/ci-browser.sh`` installs them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mribench.api.run import parse_run_config
from mribench.results import SliceStore, load_run, write_config
from mribench.tasks import manifest_hash, parse_task
from mribench.workflows.leaderboard import build_entry, build_site, validate_leaderboard, write_entry

pytestmark = pytest.mark.browser

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = next((Path(p) for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)

TASKS = {
    name: parse_task(
        {
            "version": 1,
            "source": {"filter": {"anatomy": "knee"}},
            "target": {"filter": {"anatomy": "brain"}},
            "metrics": ["ssim", "psnr", "nmse", "lpips_vgg"],
        },
        name,
    )
    for name in ("browser-anatomy", "browser-contrast")
}


def _run(run_dir: Path, task: str, model: str, quality: float, seed: int) -> Path:
    """A small run directory written through the result store (per-slice records + run.json)."""
    rng = np.random.default_rng(seed)
    spec = TASKS[task]
    records, splits = [], {}
    for sp, shift in (("test_P", 0.0), ("test_Q", -0.08 - 0.1 * (1 - quality))):
        rows = [(f"file_{sp}_{v:02d}.h5", s) for v in range(4) for s in range(2)]
        for f, s in rows:
            q = quality + shift + 0.01 * rng.standard_normal()
            records.append(
                {
                    "split": sp,
                    "file": f,
                    "slice": s,
                    "status": "ok",
                    "error": None,
                    "seconds": 0.02 + 0.05 * quality + 0.001 * rng.random(),
                    "metrics": {"ssim": q, "psnr": 20 + 15 * q, "nmse": 0.1 * (1 - q), "lpips_vgg": 0.4 * (1 - q)},
                }
            )
        m = manifest_hash(rows)
        splits[sp] = {"manifest": m, "evaluated_manifest": m, "n_slices": len(rows), "n_volumes": 4}
    write_config(
        run_dir,
        parse_run_config(
            {
                "schema_version": 1,
                "task": {"name": spec.name, "version": spec.version, "sha256": spec.sha256},
                "model": {"name": model, "kind": "user", "sha256": "0" * 64},
                "metrics": ["ssim", "psnr", "nmse", "lpips_vgg"],
                "higher_is_better": {"ssim": True, "psnr": True, "nmse": False, "lpips_vgg": False},
                "metric_profiles": {},
                "splits": splits,
                "options": {"limit": None},
                "provenance": {"mribench": "0.1.0", "device": "cpu", "created": "2025-01-01T00:00:00+00:00"},
            }
        ),
    )
    SliceStore(run_dir).append(records)
    return run_dir


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("lb")
    root = tmp / "leaderboard"
    for task in TASKS:
        for i, (model, q) in enumerate([("zero-filled", 0.55), ("unet", 0.82), ("varnet", 0.9), ("unet-ttt", 0.8)]):
            rd = _run(tmp / "runs" / task / model, task, model, q, seed=i)
            e = build_entry(
                rd,
                name=model,
                display_name=f"{model} <b>bold</b>",
                authors=["Doe, J."],
                paper="https://example.org/paper",
            )
            write_entry(e, load_run(rd).slices, root)
    assert validate_leaderboard(root, tasks=TASKS) == []
    build_site(root)
    return root / "site"


def _driver():  # noqa: ANN202
    webdriver = pytest.importorskip("selenium.webdriver")
    if CHROMIUM is None or not CHROMEDRIVER.exists():
        pytest.skip("chromium / chromium-driver not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download anything
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for a in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1280,1400",
    ):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)


def test_site_tables_plots_and_sorting(site: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = _driver()
    try:
        driver.get(site.joinpath("index.html").as_uri())
        links = driver.find_elements(By.CSS_SELECTOR, "#tasks-table tbody a")
        assert sorted(a.text for a in links) == sorted(TASKS)
        for task in TASKS:
            driver.get(site.joinpath("tasks", f"{task}.html").as_uri())
            table = driver.find_element(By.ID, "evaluated-table")
            rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
            assert len(rows) == 4
            plot = driver.find_element(By.CSS_SELECTOR, "svg.er-plot")
            assert len(plot.find_elements(By.CSS_SELECTOR, "circle.point")) == 4
            assert plot.find_elements(By.CSS_SELECTOR, "line.fit")
            # text from entries is shown as text, never parsed as markup
            assert not table.find_elements(By.TAG_NAME, "b")
            assert "<b>bold</b>" in rows[0].text

        def order() -> list[str]:
            return [
                r.get_attribute("data-model")
                for r in driver.find_elements(By.CSS_SELECTOR, "#evaluated-table tbody tr")
            ]

        before = order()
        assert before == ["varnet", "unet", "unet-ttt", "zero-filled"]  # best OOD SSIM first
        driver.find_element(By.CSS_SELECTOR, '#evaluated-table th[data-col="model"] button').click()
        after = order()
        assert after != before and after == sorted(before)
        header = driver.find_element(By.CSS_SELECTOR, '#evaluated-table th[data-col="model"]')
        assert header.get_attribute("aria-sort") == "ascending"
        driver.find_element(By.CSS_SELECTOR, '#evaluated-table th[data-col="cost"] button').click()
        assert order() == ["varnet", "unet", "unet-ttt", "zero-filled"]  # slowest first (descending)
        shot = tmp_path / "leaderboard.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        keep = os.environ.get("MRIBENCH_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)
        driver.get(site.joinpath("entries", "browser-anatomy", "unet.html").as_uri())
        assert "unet <b>bold</b>" in driver.find_element(By.TAG_NAME, "h1").text
        assert driver.find_element(By.LINK_TEXT, "https://example.org/paper")
    finally:
        driver.quit()
