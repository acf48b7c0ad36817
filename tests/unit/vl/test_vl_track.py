"""The VL track in the one loop / registry / store: VL datasets in the registry, the track derived (data kind,
model name, method kinds), prepare/batches dispatch, the task adapter (VQA score / top-1), GMACs from a real
example with the visual encoder apart, single-modality baselines, `compare` per track, `list`, `inspect`."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from petlbench import datasets as sources
from petlbench import tracks
from petlbench.data import batching
from petlbench.errors import UserError
from petlbench.registry import METHODS
from petlbench.results.aggregate import aggregate, vtab_summary
from petlbench.results.tables import markdown_pivot
from petlbench.vl.data.raw import VLRawData, VLTask, VLTorchSplit

from ...sweeps import BENCH, STALE_METER, check_committed_sweep

# the methods of each track, from the registry (what a method's ``supports`` says)
_TRACKS = {n: tracks.method_tracks(c.supports) for n, c in METHODS.all().items()}
VISION_ONLY = [n for n, t in _TRACKS.items() if t == {"vision"}]
VL_ONLY = [n for n, t in _TRACKS.items() if t == {"vl"}]
BOTH_TRACKS = [n for n, t in _TRACKS.items() if t == {"vision", "vl"}]
VL_FITS = [n for n, t in _TRACKS.items() if "vl" in t]
TINY_VL = ["--model", "minilm+test_vit", "--img-size", "32", "--no-pretrained", "--limit", "12", "--epochs", "1",
           "--batch-size", "6"]


def test_vl_datasets_are_registered_and_load_as_the_vl_track():
    for name in ("shapes-vqa", "shapes-ve", "vqav2", "gqa", "snli-ve"):
        assert name in sources.DATASETS
    raw = sources.load_data("shapes-vqa", limit=10)
    assert isinstance(raw, VLRawData) and raw.track == "vl" and raw.group == "vqa" and raw.size("train") == 10
    assert sources.load_data("shapes-loc", limit=10).track == "vision"
    rows = {name: kind for name, _track, kind, _ in sources.list_datasets()}
    assert rows["shapes-vqa"] == "built-in VL (offline)" and rows["snli-ve"] == "hub VL"


def test_track_is_derived_and_mismatches_are_one_line_errors():
    from petlbench.vl.models.text import DEFAULT_VL_MODEL

    assert tracks.resolve_model("vl", None, "adapter", METHODS.get("adapter").supports) == DEFAULT_VL_MODEL
    assert tracks.resolve_model("vision", None, "adapter", METHODS.get("adapter").supports) is None
    for method in BOTH_TRACKS:  # the track's default model, whichever track the data is on
        assert tracks.resolve_model("vl", None, method, METHODS.get(method).supports) == DEFAULT_VL_MODEL
        assert tracks.resolve_model("vision", None, method, METHODS.get(method).supports) is None
    for method in VISION_ONLY:
        with pytest.raises(UserError, match=f"method '{method}' is vision only.*use one of: {', '.join(VL_FITS)}$"):
            tracks.resolve_model("vl", None, method, METHODS.get(method).supports)
    for method in VL_ONLY:
        with pytest.raises(UserError, match="vision-language only"):
            tracks.resolve_model("vision", None, method, METHODS.get(method).supports)
    with pytest.raises(UserError, match="TEXT\\+VISION"):
        tracks.resolve_model("vl", "petl_vit_micro", "lora", METHODS.get("lora").supports)
    with pytest.raises(UserError, match="vl track but the dataset is vision"):
        tracks.resolve_model("vision", DEFAULT_VL_MODEL, "lora", METHODS.get("lora").supports)


@pytest.mark.parametrize("method", VISION_ONLY)
def test_vision_only_methods_on_a_vl_dataset_exit_2_in_one_line(cli, tmp_path, method):
    code, _, err = cli("run", method, "--dataset", "shapes-vqa", "--out", tmp_path / "s")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "vision only" in err, err
    assert not (tmp_path / "s" / "results.csv").exists()


def _vl_cfg(modality: str = "both") -> dict:
    from petlbench.vl.models.bert import create_vl_backbone

    model, _ = create_vl_backbone("minilm+test_vit", 14, pretrained=False, modality=modality, img_size=32)
    return model.data_config()


def test_prepare_and_batches_dispatch_for_vl_splits():
    raw = sources.load_data("shapes-vqa", limit=12)
    splits = raw.prepare(_vl_cfg())
    assert isinstance(splits.train, VLTorchSplit) and isinstance(splits.task, VLTask)
    assert splits.task.metric == "vqa_score" and len(splits.train) == 12
    x, y = next(batching.batches(splits.train, 5, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert x["pixel_values"].shape == (5, 3, 32, 32) and y.shape == (5, 14)
    # text columns cut to the batch's longest text; a sample is padded to the split's longest
    assert x["input_ids"].shape[1] == int(x["attention_mask"].sum(1).max()) <= splits.train.text_len
    sample, target = splits.train[0]
    assert sample["input_ids"].shape == (splits.train.text_len,) and target.shape == (14,)
    # the held-out carve of a search (Subset through a DataLoader) collates VL samples too
    rest, held = batching.split_off(splits.train, 0.25)
    hx, hy = next(batching.batches(held, 8))
    assert hy.shape == (3, 14) and hx["input_ids"].shape == (3, splits.train.text_len)
    # trainval: train + val for training, kept apart for a search; a selection run has no test split
    tv = raw.prepare(_vl_cfg(), trainval=True)
    assert len(tv.train) == 24 and tv.val is None and len(tv.search_val) == 12
    assert raw.prepare(_vl_cfg(), selection=True).test is None


def test_text_only_model_gets_no_images_and_entailment_scores_top1():
    raw = sources.load_data("shapes-ve", limit=9)
    splits = raw.prepare(_vl_cfg("text"))
    x, y = next(batching.batches(splits.test, 9))
    assert "pixel_values" not in x and y.dtype == torch.int64 and splits.task.metric == "top1"
    logits = torch.nn.functional.one_hot(y, 3).float()
    assert splits.task.score(logits, y) == 9 and splits.task.loss(logits, y) < splits.task.loss(-logits, y)


def _agg_two_tracks():
    rows = []
    for track, dataset, group, top1 in (("vision", "mnist", "natural", 90.0), ("vision", "cells", "specialized", 70.0),
                                        ("vl", "shapes-vqa", "vqa", 10.0)):
        for seed in (0, 1):
            rows.append(dict(dataset=dataset, method="lora", label="", model="m", group_hash=dataset, seed=seed,
                             status="ok", data_group=group, track=track, metric="top1", top1_pct=top1 + seed,
                             **{k: 1.0 for k in ("params_trainable", "params_trainable_excl_head", "gmacs",
                                                 "train_img_s", "infer_img_s", "peak_mem_train_mb", "time_train_s")}))
    return aggregate(pd.DataFrame(rows))


def test_vtab_means_never_include_vl_tasks():
    agg = _agg_two_tracks()
    (vision,) = vtab_summary(agg).to_dict("records")
    assert vision["tasks"] == 2 and vision["mean_of_tasks"] == pytest.approx(80.5)
    (vl,) = vtab_summary(agg, "vl").to_dict("records")
    assert vl["tasks"] == 1 and vl["mean_of_tasks"] == pytest.approx(10.5)
    tables = markdown_pivot(agg).split("\n\n")
    assert len(tables) == 2 and "shapes-vqa" not in tables[0] and "shapes-vqa" in tables[1]


def test_inspect_a_vl_pair_offline_reports_the_visual_encoder_apart(cli):
    code, out, err = cli("inspect", "adapter", "--model", "minilm+test_vit", "--img-size", "32", "--num-classes", "3",
                         "--json", "--text-len", "8")
    assert code == 0, err
    info = json.loads(out)
    assert info["text_len"] == 8 and info["input_size"] == [3, 32, 32]
    assert info["gmacs_vision"] > 0 and info["gmacs_text"] == pytest.approx(info["gmacs"] - info["gmacs_vision"])
    assert info["gmacs_text_backbone"] < info["gmacs_text"]  # the adapters' MACs, on the language model's side
    assert not math.isnan(info["gmacs_ratio"])


def test_vl_mini_suite_covers_every_vl_method_and_both_baselines():
    from petlbench.config.suites import load_suite

    _, description, runs = load_suite(str(BENCH / "vl-mini.toml"))
    assert description and {r.dataset for r in runs} == {"shapes-vqa", "shapes-ve"}
    assert all(sources.load_data(d, limit=2).track == "vl" for d in {r.dataset for r in runs})
    vl_methods = {n for n, c in METHODS.all().items() if "vl" in tracks.supported_kinds(c.supports)}
    assert {r.method for r in runs if not r.label} == vl_methods
    assert {(r.label, r.run.get("modality", "both")) for r in runs if r.label} == {
        ("adp", "both"), ("text-only", "text"), ("image-only", "image")}
    assert next(r for r in runs if r.label == "adp").overrides["variant"] == "adp"
    assert all(r.seeds == [0, 1, 2] for r in runs)


def test_committed_vl_mini_sweep_is_complete_and_is_the_readme_table(cli):
    """The README's VL results table is exactly what `compare --markdown` prints for the committed vl-mini rows,
    which are the offline VL pair in fp32 with the baselines recorded as single-modality runs."""
    from petlbench.config.suites import load_suite

    rows = check_committed_sweep(cli, "vl-mini")
    assert {(r["track"], r["model"], r["precision"]) for r in rows} == {("vl", tracks.default_model("vl"), "fp32")}
    _, _, runs = load_suite(str(BENCH / "vl-mini.toml"))  # the budget the suite asks for is the rows' budget
    budget = {(s.overrides["epochs"], s.overrides["batch_size"]) for s in runs}
    assert {(int(r["epochs"]), int(r["batch_size"])) for r in rows} == budget
    modality = {r["label"]: r["modality"] for r in rows}
    assert (modality["text-only"], modality["image-only"], modality[""]) == ("text", "image", "both")
    assert {r["metric"] for r in rows if r["dataset"] == "shapes-vqa"} == {"vqa_score"}
    # every DVP row says which layer its search chose and how far π moved (README, DVP section)
    for r in (r for r in rows if r["method"] == "dvp"):
        stats = json.loads(r["method_stats"])
        assert stats["dvp_searched"] and 0 <= stats["dvp_insert_layer"] < 6 and len(stats["dvp_pi"]) == 6
        assert stats["dvp_pi"][stats["dvp_insert_layer"]] == max(stats["dvp_pi"])  # K = argmax π




@pytest.mark.parametrize("suite, arch", [("vlp-mini", "vilt"), pytest.param("vlp-meter-mini", "meter", marks=STALE_METER)])
def test_committed_vlp_sweep_is_complete_and_is_the_results_table(cli, suite, arch):
    """Every method on a bundled micro VL-pretrained model (the micro ViLT, the micro METER) and the same model from
    random init: the rows are complete, made with the bundled weights in fp32 at vl-mini's budget, and `compare
    --markdown` of them is in docs/results.md."""
    from importlib import import_module, resources

    micro = import_module(f"petlbench.vl.models.{arch}").MICRO
    rows = check_committed_sweep(cli, suite)
    meta = json.loads(resources.files("petlbench.assets").joinpath(f"{micro}.json").read_text())
    assert {(r["track"], r["model"], r["precision"]) for r in rows} == {("vl", micro, "fp32")}
    assert {r["weights_sha256"] for r in rows if r["label"] != "random-init"} == {meta["sha256"]}
    random_parts = {p.split("=")[-1] for r in rows if r["label"] == "random-init" for p in r["weights_source"].split(";")}
    assert random_parts == {"random-init"}  # the micro METER's encoders too ('random-init;text=random-init;...')
    assert {(int(r["epochs"]), int(r["batch_size"])) for r in rows} == {(12, 32)}  # vl-mini's budget


@pytest.mark.parametrize("suite", ["vlp-mini", "vlp-meter-mini"])
def test_vlp_against_the_plm_pair_is_the_results_table(cli, suite):
    """Issue 25 item 6: each method on a micro VLP model paired over seeds with the same method on the PLM pair
    (the committed vl-mini rows and the suite's), as `compare --vs-model --markdown` prints it, is in
    docs/results.md; every method that runs on both, on both tasks, paired on 3 seeds (one row per configuration:
    the micro METER's official recipe differs by task, so each of its methods has a row per task)."""
    ref = BENCH / "reference"
    code, out, err = cli("compare", ref / "vl-mini.csv", ref / f"{suite}.csv", "--vs-model",
                         tracks.default_model("vl"), "--markdown")
    assert code == 0, err
    table = [line for line in out.splitlines() if line.startswith("|")]
    tasks = [c.strip() for c in table[0].split("|")[2:-1]]
    cells = [(row.split(" ", 2)[1], task, cell.strip()) for row in table[2:]
             for task, cell in zip(tasks, row.split("|")[2:-1], strict=True) if cell.strip() != "–"]
    methods = ["full", "linear", "bitfit", "adapter", "lora", "apt", "das"]
    assert sorted((m, t) for m, t, _ in cells) == sorted((m, t) for m in methods for t in ("shapes-ve", "shapes-vqa"))
    assert all(cell.endswith("(3)") for _, _, cell in cells)  # 3 paired seeds each
    assert "\n".join(table) in (BENCH.parent / "docs" / "results.md").read_text()
