"""``petlbench report``: the Pareto frontier, the files, a self-contained page, and a rendered screenshot."""

from __future__ import annotations

import math
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from petlbench.errors import UserError
from petlbench.results.aggregate import aggregate
from petlbench.results.report import _pyplot, pareto_front, suite_points, write_report
from petlbench.results.store import load_frame

from ...runs_table import frame

REF = Path(__file__).resolve().parents[3] / "benchmarks" / "reference"


def test_pareto_front_hand_made_table():
    points = [
        ("F", 0.5, 40.0),  # cheapest: on the frontier however inaccurate
        ("A", 1.0, 50.0),
        ("B", 2.0, 60.0),
        ("G", 2.0, 60.0),  # exact duplicate of B: neither dominates, both stay
        ("C", 2.0, 55.0),  # equal cost, less accurate than B: dominated
        ("D", 3.0, 60.0),  # as accurate as B at a higher cost: dominated
        ("E", 3.0, 70.0),
        ("H", 5.0, 65.0),  # dearer and worse than E
        ("N", math.nan, 99.0),  # no cost measured: left out
    ]
    assert pareto_front(points) == ["F", "A", "B", "G", "E"]
    assert pareto_front([("x", 1.0, 1.0)]) == ["x"]
    assert pareto_front([]) == []


# three configurations on two tasks, two seeds; costs differ per configuration
CONFIGS = {"linear": (1_000, 1.0, 100.0, 50.0), "lora": (20_000, 1.0, 120.0, 60.0), "full": (1_000_000, 1.0, 200.0, 58.0)}


def _rows() -> list[dict]:
    rows = []
    for method, (params, gmacs, mem, acc) in CONFIGS.items():
        for task, shift in (("t1", 0.0), ("t2", 10.0)):
            for seed, noise in ((0, -1.0), (1, 1.0)):
                rows.append({"method": method, "dataset": task, "seed": seed, "top1_pct": acc + shift + noise,
                             "params_trainable": params, "gmacs": gmacs, "peak_mem_train_mb": mem + seed,
                             "data_group": "natural" if task == "t1" else "structured"})
    return rows


def test_suite_points_by_hand(tmp_path):
    df = frame(tmp_path, _rows())
    suite = suite_points(df, aggregate(df)).set_index("method")
    # lora: seed 0 -> (59 + 69)/2 = 64, seed 1 -> 66: mean 65, std sqrt(2)
    assert suite.loc["lora", "top1_pct"] == pytest.approx(65.0)
    assert suite.loc["lora", "top1_pct_std"] == pytest.approx(math.sqrt(2))
    assert suite.loc["lora", "tasks"] == 2 and suite.loc["full", "params_trainable"] == 1_000_000


class _Refs(HTMLParser):
    """Collects tags and every attribute value that could load something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "data", "poster", "action")]


@pytest.mark.heavy
def test_report_files_and_self_contained_page(tmp_path):
    df = frame(tmp_path / "store", _rows())
    page, md = write_report(df, tmp_path / "rep")
    assert page.exists() and md.exists()
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert pngs == sorted([f"{scope}_{c}.png" for scope in ("suite", "tasks")
                           for c in ("gmacs", "params_trainable", "peak_mem_train_mb")] + ["cd_ranks.png"])
    text = md.read_text()
    for name in pngs:
        assert f"]({name})" in text
    # frontier vs trainable parameters on the suite mean: linear (cheapest) and lora (more accurate); full is
    # dearer and less accurate than lora
    assert "| suite mean | linear (1,000, 55.0%), lora (20.0k, 65.0%) |" in text
    assert "| t1 | linear" in text and "full" in text.split("## Cost")[0]
    html = page.read_text()
    parser = _Refs()
    parser.feed(html)
    assert parser.refs and all(r.startswith("data:image/png;base64,") for r in parser.refs)
    assert parser.tags.count("img") == 7 and not {"link", "script", "iframe", "object"} & set(parser.tags)
    assert "http://" not in html and "https://" not in html and "url(" not in html and "@import" not in html


def test_missing_matplotlib_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(UserError, match=r"pip install 'petlbench\[report\]'"):
        _pyplot()


@pytest.mark.integration  # the report command end to end (figures rendered)
def test_report_cli_on_part_of_the_committed_sweep(cli, tmp_path):
    lines = (REF / "mini-vtab.csv").read_text().splitlines(keepends=True)
    part = tmp_path / "part.csv"  # two tasks keep the test quick; the slow test renders all eight
    part.write_text(lines[0] + "".join(ln for ln in lines[1:] if ",cells," in ln or ",shapes-ori," in ln))
    code, out, err = cli("report", str(part), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    assert (tmp_path / "rep" / "index.html").exists() and "report written" in out
    assert "linear [random-init]" in (tmp_path / "rep" / "report.md").read_text()
    code, _, err = cli("report", str(tmp_path / "missing"), "--out", str(tmp_path / "rep2"))
    assert code == 2 and "no results at" in err


def _browser() -> str | None:
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def _committed(tmp_path, names: list[str], datasets: tuple[str, ...] = ()) -> Path:
    """Committed reference rows (of ``datasets`` only, if given) in one CSV."""
    lines = []
    for name in names:
        text = (REF / name).read_text().splitlines(keepends=True)
        lines += [text[0]] if not lines else []
        lines += [ln for ln in text[1:] if not datasets or any(f",{d}," in ln for d in datasets)]
    frame_csv = tmp_path / "rows.csv"
    frame_csv.write_text("".join(lines))
    return frame_csv


@pytest.mark.heavy
def test_report_keeps_tracks_apart_names_memory_kinds_and_keeps_baselines_off_frontiers(tmp_path):
    # smoke (vision) + vl-mini (VL, with text-only / image-only baselines): the vision rows have no VL columns
    df = load_frame([REF / "smoke.csv", _committed(tmp_path, ["vl-mini.csv"], ("shapes-vqa",))])
    _, md = write_report(df, tmp_path / "rep")
    text = md.read_text()
    vision, vl = text.split("## Vision-language track")
    assert "## Vision track" in vision and "shapes-vqa" not in vision and "animal-mnist" not in vl
    assert "VQA score %" in vl and "cpu_peak_rss" not in text and "CPU peak RSS during the run" in text
    frontiers = vl.split("### Pareto frontiers")[1].split("### Figures")[0]
    assert "full [text-only]" not in frontiers and "full [image-only]" not in frontiers
    assert "| full [text-only] |" in vl  # drawn and tabled, only kept off the frontier
    pngs = {p.name for p in (tmp_path / "rep").glob("*.png")}
    assert {"suite_vision_params_trainable.png", "tasks_vl_peak_mem_train_mb.png"} <= pngs


@pytest.mark.heavy
def test_memory_kinds_are_never_mixed_on_one_axis(tmp_path):
    df = load_frame([_committed(tmp_path, ["mini-vtab.csv"], ("cells", "shapes-ori"))])  # two kinds of memory
    _, md = write_report(df, tmp_path / "rep")
    text = md.read_text()
    pngs = {p.name for p in (tmp_path / "rep").glob("tasks_peak_mem*.png")}
    assert pngs == {"tasks_peak_mem_train_mb_cpu_peak_rss.png", "tasks_peak_mem_train_mb_cpu_peak_rss_run.png"}
    assert "frontier: peak memory (CPU peak RSS during the run)" in text
    assert "frontier: peak memory (CPU peak RSS of the whole process (before 0.2))" in text


@pytest.mark.heavy
def test_one_task_store_figures_keep_every_legend_entry_and_the_title(tmp_path, monkeypatch):
    """The smoke store: one task, ten methods. Every saved PNG is as large as everything drawn (all ten legend
    entries and the title), so nothing is clipped at the figure's edge."""
    from PIL import Image

    from petlbench.results import report

    drawn, save = {}, report._save

    def keep(fig, plt, path, dpi):
        fig.canvas.draw()  # lay the texts out
        legends = [*fig.legends, *[ax.get_legend() for ax in fig.axes if ax.get_legend()]]
        box = fig.get_tightbbox(fig.canvas.get_renderer())  # every artist, legends and titles included (inches)
        drawn[path.name] = (sum(len(leg.get_texts()) for leg in legends), box.width * dpi, box.height * dpi)
        save(fig, plt, path, dpi)

    monkeypatch.setattr(report, "_save", keep)
    write_report(load_frame([REF / "smoke.csv"]), tmp_path / "rep")
    assert len(drawn) == 6
    for name, (entries, width, height) in drawn.items():
        png = Image.open(tmp_path / "rep" / name)
        assert entries == 10 and png.width >= width - 1 and png.height >= height - 1, (name, png.size, width, height)


@pytest.mark.heavy
def test_vl_stores_page_structure(tmp_path, monkeypatch):
    """Two VL models (the PLM pair in vl-mini, the micro METER in vlp-meter-mini) together: a section per model,
    every table in a box that scrolls instead of widening the 1400 px page, every configuration in its section's
    plots, no legend over 12 entries, no plot without data, a critical-difference diagram per ranked section.
    Figures are drawn but neither laid out nor rasterised (the slow part; the page only embeds them)."""
    from matplotlib.figure import Figure

    from petlbench.results import report

    monkeypatch.setattr(Figure, "tight_layout", lambda self, *a, **k: None)
    drawn: dict[str, tuple[list[str], int]] = {}

    def record(fig, plt, path, dpi):
        legends = [*fig.legends, *[ax.get_legend() for ax in fig.axes if ax.get_legend()]]
        points = sum(len(ln.get_xdata()) for ax in fig.axes for ln in ax.get_lines() if ln.get_marker() not in
                     ("None", "", None))
        drawn[path.name] = ([t.get_text() for leg in legends for t in leg.get_texts()], points)
        path.write_bytes(b"\x89PNG")
        plt.close(fig)

    monkeypatch.setattr(report, "_save", record)
    df = load_frame([REF / "vl-mini.csv", REF / "vlp-meter-mini.csv"])
    page, md = write_report(df, tmp_path / "rep")
    html = page.read_text()
    assert "max-width:1400px" in html and html.count("<table") == html.count("<div class='scroll'><table")
    text = md.read_text()
    assert text.count("### Model ") == 2 and "### Model petl_meter_micro_scenes" in text
    for name, (entries, points) in drawn.items():
        assert len(entries) <= 12 and (points > 0 or name.startswith("cd_")), name  # no plot without data
    assert len(drawn) == 2 * 6 + 2  # per model: suite and tasks × (params, GMACs, memory); a CD diagram each
    agg = aggregate(df)
    for model, slug in (("minilm+petl_vit_micro_scenes", "minilm_petl_vit_micro_scenes_"),
                        ("petl_meter_micro_scenes", "petl_meter_micro_scenes_")):
        legend = {e.removesuffix(" (frontier)").removesuffix(" (baseline)") for n, (es, _) in drawn.items()
                  if n.startswith(f"suite_{slug}") for e in es}
        assert legend == set(agg.loc[agg["model"] == model, "name"])  # every configuration in the suite plots
    assert {n for n in drawn if n.startswith("cd_")} == {
        "cd_minilm_petl_vit_micro_scenes_ranks.png", "cd_petl_meter_micro_scenes_ranks.png"}
    assert "What is real in this ranking" in text and "(weights" not in text


def test_plots_split_by_method_family_beyond_twelve_configurations():
    from petlbench.results.report import LEGEND_MAX, parts

    rows = [{"name": f"{m} (lr {i})", "method": m, "top1_pct": 50.0 - i} for m in ("lora", "vpt", "bitfit")
            for i in range(6)]
    groups = parts(pd.DataFrame(rows))
    assert [len(g) for g in groups] == [12, 6] and all(len(g) <= LEGEND_MAX for g in groups)
    assert {n.split()[0] for n in groups[0]} == {"lora", "vpt"} and {n.split()[0] for n in groups[1]} == {"bitfit"}
