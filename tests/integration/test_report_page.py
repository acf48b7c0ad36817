"""The report page rendered in headless Chromium (a spawned browser)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from petlbench.results.report import write_report
from petlbench.results.store import load_frame

pytestmark = pytest.mark.integration

REF = Path(__file__).resolve().parents[2] / "benchmarks" / "reference"


def _browser() -> str | None:
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.slow
@pytest.mark.skipif(_browser() is None, reason="no headless Chromium installed (Debian: apt-get install chromium)")
def test_page_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    page, _ = write_report(load_frame([REF / "mini-vtab.csv"]), tmp_path / "rep")  # what a reader gets
    shot = tmp_path / "shot.png"
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1280,2400",
           f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2400, 1280)
    dark = (img < 128).mean()  # text, table borders, plot lines
    assert 0.005 < dark < 0.5, f"screenshot looks blank or broken: {dark:.4f} dark pixels"
    assert len(np.unique(img)) > 32  # anti-aliased text and plots, not a flat page


def test_screenshot_script_takes_a_relative_out_dir(tmp_path, monkeypatch):
    """``python benchmarks/perf/report_screenshot.py OUT`` with a relative OUT: the page handed to Chromium is an
    absolute file:// URI (a relative path raised ValueError in ``Path.as_uri``). Chromium itself is not needed."""
    import runpy

    script = runpy.run_path(str(REF.parents[0] / "perf" / "report_screenshot.py"))
    main = script["main"]
    uris = []
    monkeypatch.setitem(main.__globals__, "write_report", lambda df, out: ((out / "index.html"), None))
    monkeypatch.setitem(main.__globals__, "screenshot", lambda page, shot: uris.append(page.as_uri()))
    monkeypatch.chdir(tmp_path)
    main(["shots", str(REF / "smoke.csv")])
    assert uris == [(tmp_path / "shots" / "smoke" / "index.html").as_uri()]
    assert set(script["STORES"]) >= {"vlp-meter-mini", "two-vl-models-and-vision"}
