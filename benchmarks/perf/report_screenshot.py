"""Render ``petlbench report`` pages to PNG in headless Chromium, to look at what a reader gets.

    python benchmarks/perf/report_screenshot.py OUT_DIR [RESULTS ...]

With no RESULTS it renders the committed stores: the smoke suite (one task, ten methods), mini-vtab (eight
tasks, two memory kinds), vl-mini (two VL tasks, text-only / image-only baselines), vlp-meter-mini (the micro
METER), one store holding both vision and VL rows (smoke + smoke-vl) and one with two VL models next to the vision
sweep (vl-mini + vlp-meter-mini + mini-vtab: a section per model). For each it writes
``OUT_DIR/<name>/index.html`` (and the report's PNGs) and ``OUT_DIR/<name>.png``, a full-page screenshot 1400 px
wide. OUT_DIR may be relative (to the current directory). Needs Chromium (Debian: ``apt-get
install chromium``) and matplotlib; no network. The tests never need Chromium (``tests/integration/test_report_page.py``
renders the page there only where one is installed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from petlbench.results.report import write_report
from petlbench.results.store import load_frame

REF = Path(__file__).resolve().parents[1] / "reference"
STORES = {"smoke": ["smoke.csv"], "mini-vtab": ["mini-vtab.csv"], "vl-mini": ["vl-mini.csv"],
          "vlp-meter-mini": ["vlp-meter-mini.csv"], "vision-and-vl": ["smoke.csv", "smoke-vl.csv"],
          "two-vl-models-and-vision": ["vl-mini.csv", "vlp-meter-mini.csv", "mini-vtab.csv"]}


def browser() -> str:
    found = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if found is None:
        sys.exit("no Chromium on PATH (Debian: apt-get install chromium)")
    return found


def page_height(page: Path) -> int:
    """A height that holds the whole page: ~900 px per figure plus the text (Chromium cannot measure it here)."""
    text = page.read_text()
    return 1200 + 700 * text.count("<img") + 24 * text.count("<tr>")


def screenshot(page: Path, shot: Path, width: int = 1400) -> None:
    profile = shot.with_suffix(".profile")
    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--hide-scrollbars", f"--window-size={width},{page_height(page)}",
           f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    out = Path(argv[0]).resolve()  # Chromium takes the page as a file:// URI, which needs an absolute path
    stores = {Path(p).stem: [p] for p in argv[1:]} or {k: [REF / f for f in v] for k, v in STORES.items()}
    for name, paths in stores.items():
        page, _ = write_report(load_frame(paths), out / name)
        screenshot(page, out / f"{name}.png")
        print(f"{name}: {out / name / 'index.html'} -> {out / name}.png")


if __name__ == "__main__":
    main(sys.argv[1:])
