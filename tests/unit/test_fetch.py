"""``petlbench fetch SUITE --to DIR`` (the downloads stubbed: no network in tests) and runs that take what it fetched
from that folder with the hub switched off."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from petlbench import fetch
from petlbench.data.noah import VTAB_TASKS
from petlbench.errors import UserError

from ..checks import one_line_error


def _fake_hub_cache(hub: Path, repo: str, files: dict[str, bytes]) -> Path:
    """``repo`` in the layout huggingface_hub writes (models--<org>--<name>/refs/main + snapshots/<rev>/)."""
    folder = hub / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snap = folder / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for name, blob in files.items():
        (snap / name).write_bytes(blob)
    return snap


def _stub_downloads(monkeypatch, calls: list[str]) -> None:
    """Hub models land in the cache, the VTAB-1k archive (two tasks) is unpacked as the real one would be."""

    def hub(asset, to):
        calls.append(asset.source)
        if asset.kind == "hub-model":
            _fake_hub_cache(to / fetch.HUB_DIR, asset.source, {"config.json": b"{}"})
            return
        archive = to / "downloads" / "vtab.zip"
        archive.parent.mkdir(parents=True)
        with zipfile.ZipFile(archive, "w") as z:
            for t in VTAB_TASKS[:2]:
                for f in ("train800.txt", "val200.txt", "test.txt"):
                    z.writestr(f"vtab-1k/{t}/{f}", "images/0.jpg 0\n")
        fetch._unzip(archive, to / asset.dest)

    monkeypatch.setitem(fetch.FETCHERS, "hub-model", hub)
    monkeypatch.setitem(fetch.FETCHERS, "hub-dataset", hub)
    monkeypatch.setitem(fetch.FETCHERS, "url", lambda asset, to: calls.append(asset.source))


def test_fetch_fills_one_folder_and_says_how_to_run_offline(cli, tmp_path, monkeypatch):
    calls: list[str] = []
    _stub_downloads(monkeypatch, calls)
    code, out, err = cli("fetch", "vtab-1k", "--to", tmp_path / "dl")
    assert code == 0, err
    assert calls == [a.source for a in fetch.assets("vtab-1k")]
    assert (tmp_path / "dl" / "hub" / "models--timm--vit_base_patch16_224.orig_in21k").is_dir()
    manifest = json.loads((tmp_path / "dl" / fetch.MANIFEST).read_text())
    assert manifest["suite"] == "vtab-1k" and len(manifest["fetched"]) == 2 and manifest["manual"] == []
    text = " ".join(out.split())
    assert f"petlbench suite vtab-1k --root {tmp_path / 'dl' / 'vtab-1k'}" in text  # the archive's own top folder
    assert f"HF_HUB_CACHE={tmp_path / 'dl' / 'hub'} HF_HUB_OFFLINE=1" in text
    assert not (tmp_path / "dl" / "downloads").exists()  # archives removed once unpacked


def test_fetch_names_what_is_left_by_hand_and_fails_in_one_line(cli, tmp_path, monkeypatch):
    calls: list[str] = []
    _stub_downloads(monkeypatch, calls)
    code, out, err = cli("fetch", "apt-meter", "--to", tmp_path / "dl")
    assert code == 0 and "by hand: SNLI-VE in METER's files" in " ".join(err.split()) and "write_snli.py" in err

    def offline(asset, to):
        raise ConnectionError("no route to host")

    monkeypatch.setitem(fetch.FETCHERS, "url", offline)
    code, _, err = cli("fetch", "apt-vilt", "--to", tmp_path / "dl2")
    one_line_error(code, err, "could not fetch", "ConnectionError", "run the same command again")
    code, _, err = cli("fetch", "smoke", "--to", tmp_path / "dl3")
    one_line_error(code, err, "needs nothing from the network")


def test_a_fetched_tokenizer_loads_by_its_hub_name_with_the_hub_off(tmp_path, monkeypatch):
    """METER's tokenizer is named 'roberta-base'; from a fetched folder it loads offline under that name (here the
    packaged MiniLM tokenizer's files stand in for RoBERTa's)."""
    import huggingface_hub.constants as hf_constants

    from petlbench.vl.models.text import packaged_text_dir, text_tokenizer

    files = {f.name: f.read_bytes() for f in packaged_text_dir().iterdir() if f.name.startswith(("tokenizer",
                                                                                                 "vocab", "special"))}
    _fake_hub_cache(tmp_path / "hub", "roberta-base", {**files, "config.json": b'{"model_type": "bert"}'})
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", hf_constants.HF_HUB_CACHE)  # restored after the test
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1") if var != "HF_HUB_CACHE" else monkeypatch.delenv(var, raising=False)
    text_tokenizer.cache_clear()
    fetch.use_local_hub(tmp_path / "empty")
    with pytest.raises(UserError, match="tokenizer 'roberta-base'.*petlbench fetch"):  # offline, not fetched: named
        text_tokenizer("roberta-base")
    fetch.use_local_hub(tmp_path / "hub")
    tok = text_tokenizer("roberta-base")
    text_tokenizer.cache_clear()  # later tests must not get this stand-in under RoBERTa's name
    assert tok("a red cube")["input_ids"][0] == tok.cls_token_id
