"""The model zoo: the shipped table, fetch from a local HTTP server (pinned sha256), add, offline errors."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastmri.models import VarNet
from typer.testing import CliRunner

from mribench.errors import ModelError
from mribench.models import load_model, zoo
from mribench.models.architectures import architecture_names
from mribench.models.loader import MODELS

NAME = "varnet-knee-fastmri"
TINY = {"num_cascades": 1, "sens_chans": 2, "sens_pools": 1, "chans": 2, "pools": 1}


def test_shipped_table_is_complete() -> None:
    entries = zoo.zoo_entries()
    names = [e.name for e in entries]
    assert {
        "unet-knee-sc-fastmri",
        "unet-knee-mc-fastmri",
        "unet-brain-fastmri",
        "varnet-knee-fastmri",
        "varnet-brain-fastmri",
        "unet-d22-knee",
    } <= set(names)
    for e in entries:
        assert e.arch in architecture_names() and e.name in MODELS
        assert e.url.startswith("https://") and e.source.startswith("https://") and e.licence and e.paper
    varnet = zoo.zoo_entry(NAME)
    assert varnet.config == {"num_cascades": 12, "sens_chans": 8, "sens_pools": 4, "chans": 18, "pools": 4}
    assert varnet.url == "https://dl.fbaipublicfiles.com/fastMRI/trained_models/varnet/knee_leaderboard_state_dict.pt"
    with pytest.raises(ModelError, match="did you mean 'varnet-knee-fastmri'"):
        zoo.zoo_entry("varnet-knee-fastmr")


def test_bad_tables_are_refused() -> None:
    good = {"name": "a", "arch": "unet", "config": {}, "url": "https://x/a.pt", "file": "a.pt"}
    good |= {"training_data": "d", "paper": "p", "source": "s", "licence": "MIT"}
    assert zoo.parse_zoo({"models": [good]})[0].download == "http"
    with pytest.raises(ModelError, match="twice"):
        zoo.parse_zoo({"models": [good, good]})
    with pytest.raises(ModelError, match="missing \\['licence'\\]"):
        zoo.parse_zoo({"models": [{k: v for k, v in good.items() if k != "licence"}]})
    with pytest.raises(ModelError, match="sha256"):
        zoo.parse_zoo({"models": [{**good, "sha256": "abc"}]})


class _Server:
    """A local HTTP server on 127.0.0.1 (ephemeral port) serving one folder, counting GET requests."""

    def __init__(self, root: Path) -> None:
        self.root, self.gets = root, 0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a: Any, **k: Any) -> None:
                super().__init__(*a, directory=str(root), **k)

            def do_GET(self) -> None:  # noqa: N802
                server.gets += 1
                super().do_GET()

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[_Server]:
    (tmp_path / "www").mkdir()
    s = _Server(tmp_path / "www")
    yield s
    s.stop()


def _publish(path: Path, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VarNet(**TINY)
    torch.save(net.state_dict(), path)
    return net


@pytest.fixture()
def local_zoo(server: _Server, monkeypatch: pytest.MonkeyPatch) -> zoo.ZooEntry:
    """The real varnet-knee-fastmri entry, pointed at the local server and shrunk to a tiny VarNet."""
    monkeypatch.delenv("MRIBENCH_MODELS", raising=False)
    entry = dataclasses.replace(zoo.zoo_entry(NAME), url=f"{server.url}/knee_leaderboard_state_dict.pt", config=TINY)
    monkeypatch.setattr(zoo, "_shipped_zoo", lambda: (entry,))
    return entry


def test_fetch_downloads_once_pins_and_loads_like_a_builtin(server: _Server, local_zoo: zoo.ZooEntry) -> None:
    net = _publish(server.root / "knee_leaderboard_state_dict.pt", seed=0)
    with pytest.raises(ModelError, match=f"models fetch {NAME}.*{server.url}.*models add {NAME} FILE"):
        load_model(NAME)  # not fetched yet: says how, naming the URL
    first = zoo.fetch_model(NAME)
    assert first.downloaded and first.pinned_now and server.gets == 1
    assert "fastMRI VarNet" in first.inferred and zoo.read_pins()[NAME]["sha256"] == first.sha256
    again = zoo.fetch_model(NAME)
    assert not again.downloaded and again.sha256 == first.sha256 and server.gets == 1

    lm = load_model(NAME)
    assert lm.info.kind == "zoo" and lm.info.name == NAME and lm.info.sha256 == first.sha256
    assert lm.info.details["url"] == local_zoo.url and lm.info.details["config"] == TINY
    assert lm.info.details["paper"].startswith("Sriram") and "inferred" in lm.info.details
    for (k, v), (k2, v2) in zip(net.state_dict().items(), lm.model.varnet.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with pytest.raises(ModelError, match="no checkpoint for the zoo model") as e:
        load_model(NAME, checkpoint="x.pt")
    assert "load_model('varnet', checkpoint)" in str(e.value)  # Python words; the CLI's name flags
    assert "--model varnet --checkpoint FILE" in e.value.for_cli()


def test_a_changed_file_is_refused(server: _Server, local_zoo: zoo.ZooEntry) -> None:
    _publish(server.root / "knee_leaderboard_state_dict.pt", seed=0)
    pinned = zoo.fetch_model(NAME).sha256
    zoo.zoo_path(local_zoo).unlink()  # lost from the cache; the publisher replaced the file meanwhile
    _publish(server.root / "knee_leaderboard_state_dict.pt", seed=1)
    with pytest.raises(ModelError, match=f"refusing .*expected sha256 {pinned}.*models remove {NAME}"):
        zoo.fetch_model(NAME)
    assert not zoo.zoo_path(local_zoo).exists() and zoo.read_pins()[NAME]["sha256"] == pinned
    assert not list(zoo.zoo_path(local_zoo).parent.glob(".*part*"))  # no partial download left behind
    # a cached file changed on disk is refused at load time too
    _publish(zoo.zoo_path(local_zoo), seed=2)
    with pytest.raises(ModelError, match="cached file changed"):
        load_model(NAME)
    # removing forgets the pin; the next fetch pins the new file
    assert zoo.remove_model(NAME)
    assert zoo.fetch_model(NAME).pinned_now


def test_wrong_architecture_is_not_pinned(
    server: _Server, local_zoo: zoo.ZooEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish(server.root / "knee_leaderboard_state_dict.pt", seed=0)
    wrong = dataclasses.replace(local_zoo, config={**TINY, "num_cascades": 12})
    monkeypatch.setattr(zoo, "_shipped_zoo", lambda: (wrong,))
    with pytest.raises(ModelError, match="num_cascades: table 12, file 1"):
        zoo.fetch_model(NAME)
    assert zoo.read_pins() == {} and not zoo.zoo_path(wrong).exists()


def test_offline_names_the_url_and_models_add(server: _Server, local_zoo: zoo.ZooEntry, tmp_path: Path) -> None:
    _publish(tmp_path / "copy.pt", seed=0)
    server.stop()
    with pytest.raises(ModelError, match=f"from {local_zoo.url}.*offline.*mribench models add {NAME} FILE"):
        zoo.fetch_model(NAME, timeout=5)
    # the offline route: a copy obtained elsewhere
    added = zoo.add_model(NAME, tmp_path / "copy.pt")
    assert added.pinned_now and zoo.read_pins()[NAME]["how"] == "add"
    assert load_model(NAME).info.sha256 == added.sha256
    _publish(tmp_path / "other.pt", seed=3)
    with pytest.raises(ModelError, match="refusing"):
        zoo.add_model(NAME, tmp_path / "other.pt")


def test_manual_entries_say_how_to_add() -> None:
    with pytest.raises(ModelError, match="models add unet-d22-knee"):
        zoo.fetch_model("unet-d22-knee")


def test_cli_list_fetch_add_inspect(
    server: _Server, local_zoo: zoo.ZooEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mribench.cli import models as models_cli
    from mribench.cli.app import app

    monkeypatch.setattr(models_cli.console, "width", 400)
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and NAME in listed.output and local_zoo.url in listed.output
    assert "not fetched" in listed.output and "zero-filled" in listed.output and "cs-l1wavelet" in listed.output
    _publish(server.root / "knee_leaderboard_state_dict.pt", seed=0)
    fetched = runner.invoke(app, ["models", "fetch", NAME])
    assert fetched.exit_code == 0 and "downloaded" in fetched.output and "pinned now" in fetched.output
    assert "cached" in runner.invoke(app, ["models", "fetch", NAME]).output
    shown = runner.invoke(app, ["models", "inspect", NAME])
    assert shown.exit_code == 0 and "inferred: fastMRI VarNet, bare state dict" in shown.output
    assert "ready" in runner.invoke(app, ["models", "list"]).output
    _publish(tmp_path / "other.pt", seed=5)
    refused = runner.invoke(app, ["models", "add", NAME, str(tmp_path / "other.pt")])
    assert refused.exit_code != 0 and isinstance(refused.exception, ModelError)
