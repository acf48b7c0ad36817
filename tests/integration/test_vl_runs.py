"""VL runs end to end through the CLI: VL rows and single-modality baselines, local VL data, a pandas VQA
parquet with a local ELECTRA-style encoder."""

from __future__ import annotations

import pytest

from petlbench import datasets as sources
from petlbench.results.store import read_rows
from petlbench.vl.data.raw import VLRawData

from ..text_models import save_text_model
from ..vl_files import jsonl_dataset, write_vqa_parquet

pytestmark = pytest.mark.integration

TINY_VL = ["--model", "minilm+test_vit", "--img-size", "32", "--no-pretrained", "--limit", "12", "--epochs", "1",
           "--batch-size", "6"]
QUESTIONS = [f"what is {i} ?" for i in range(20)]


def test_run_stores_vl_rows_and_baselines_and_compare_keeps_tracks_apart(cli, tmp_path):
    out = tmp_path / "store"
    for extra in ([], ["--modality", "text"], ["--modality", "image"]):
        code, _, err = cli("run", "adapter", "--dataset", "shapes-vqa", *TINY_VL, *extra, "--out", out)
        assert code == 0, err
    code, _, err = cli("run", "linear", "--dataset", "shapes-ve", *TINY_VL, "--out", out)
    assert code == 0, err
    rows = read_rows(out / "results.csv")
    assert [r["modality"] for r in rows] == ["both", "text", "image", "both"]
    assert {r["track"] for r in rows} == {"vl"} and [r["metric"] for r in rows] == ["vqa_score"] * 3 + ["top1"]
    assert len({r["config_hash"] for r in rows}) == 4 and all(r["status"] == "ok" for r in rows)
    both, text, image, _ = rows
    # GMACs of a real example: text + visual tokens in the LM, the frozen visual encoder included and apart
    assert 0 < float(both["gmacs_vision"]) < float(both["gmacs"])
    assert max(float(text["gmacs"]), float(image["gmacs"])) < float(both["gmacs"])
    assert text["gmacs_vision"] in ("", "nan") and float(image["gmacs_vision"]) == float(both["gmacs_vision"])
    assert float(both["gmacs"]) == pytest.approx(float(both["gmacs_backbone"]), rel=0.05)  # adapters are small
    assert "text=" in both["weights_source"] and "vision=" in both["weights_source"]
    code, printed, err = cli("compare", out)
    assert code == 0 and "vl track: summary" in printed and "VTAB-style" not in printed, err
    assert "VQA score" in printed


def test_local_vl_data_is_recognised_by_the_one_loader_and_trains(tmp_path, cli):
    """A JSONL + image folder given as --dataset goes to the VL loader (not the image-folder one) and runs."""
    path = jsonl_dataset(tmp_path / "qa", n=20)
    raw = sources.load_data(str(path))
    assert isinstance(raw, VLRawData) and raw.track == "vl" and raw.note
    code, _, err = cli("run", "linear", "--dataset", path, *TINY_VL, "--out", tmp_path / "s")
    assert code == 0, err
    (row,) = read_rows(tmp_path / "s" / "results.csv")
    assert row["track"] == "vl" and row["data_source"].startswith("local:") and row["status"] == "ok"


def test_pandas_vqa_parquet_trains_with_a_local_electra_encoder(cli, tmp_path):
    data = write_vqa_parquet(tmp_path / "vqa.parquet", "pandas", "record")
    model = save_text_model(tmp_path / "tiny-electra", "electra", QUESTIONS)
    code, out, err = cli("run", "lora", "--dataset", data, "--model", f"{model}+petl_vit_micro", "--epochs", "1",
                         "--batch-size", "8", "--out", tmp_path / "store")
    assert code == 0, err
    (row,) = read_rows(tmp_path / "store" / "results.csv")
    assert row["status"] == "ok" and row["track"] == "vl" and row["metric"] == "vqa_score"
    assert row["weights_source"].startswith("text=dir:tiny-electra;vision=file:petl_vit_micro")
    assert int(row["n_train"]) + int(row["n_val"]) + int(row["n_test"]) == 20
