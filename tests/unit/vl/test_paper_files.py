"""The papers' own VL files (ViLT-format arrow of VQAv2 / SNLI-VE / GQA, the official VQAv2 JSON + COCO folders),
written here in exactly the official writers' schemas: the splits and vocabulary they give, and bad or partial copies
as one line, exit 2, nothing stored (a method trains on each format in tests/integration/test_paper_suites.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from petlbench.vl.data.arrow import load_arrow
from petlbench.vl.data.vqa_json import load_vqa_json, targets, vocabulary

from ...checks import one_line_error
from ...vl_files import write_dvp_snli, write_ipc, write_meter_snli, write_vilt_vqa, write_vqa_json

TINY = ["--epochs", "1", "--batch-size", "6", "--precision", "fp32"]  # no --limit: every image is checked


def test_vqav2_arrow_trains_on_train_and_trainable_val_and_tests_on_rest_val(tmp_path):
    raw = load_arrow(write_vilt_vqa(tmp_path / "vqa", n_train=12, n_val=12, rest=4))
    sizes = {s: len(sp) for s, sp in raw.splits.items()}
    # 2 questions per image: train 12 + trainable_val 8 images, of which the last 2 (a quarter) are our val
    assert sizes == {"train": 2 * (12 + 6), "val": 2 * 2, "test": 2 * 4}
    assert raw.task.metric == "vqa_score" and raw.task.answers == ("red", "green", "blue")
    # rest_val = images 108..111 (the last 4 val rows), each question's target its colour id at score 1.0
    assert [raw.splits["test"].soft[i] for i in range(0, 8, 2)] == [[(0, 1.0)], [(1, 1.0)], [(2, 1.0)], [(0, 1.0)]]


def test_vocabulary_is_rebuilt_from_the_files_answers_and_labels(tmp_path):
    """ViLT's datamodule: answer -> label from the (answer, label) pairs; an id no pair names is 'unknown'."""
    root = write_vilt_vqa(tmp_path / "vqa")
    rest = pd.read_feather(root / "vqav2_rest_val.arrow")
    rest["answer_labels"] = [[[5]] * len(q) for q in rest["questions"]]
    rest["answers"] = [[["purple"]] * len(q) for q in rest["questions"]]
    write_ipc(rest, root / "vqav2_rest_val.arrow")
    assert load_arrow(root).task.answers == ("red", "green", "blue", "unknown", "unknown", "purple")


def test_the_official_json_gives_vilts_vocabulary_and_scores():
    anns = {"train2014": [{"multiple_choice_answer": "Two", "answers": []}] * 9 +
            [{"multiple_choice_answer": "yes", "answers": []}] * 8,
            "val2014": [{"multiple_choice_answer": "yes", "answers": []}, {"multiple_choice_answer": "no",
                                                                          "answers": []}]}
    assert vocabulary(anns) == {"2": 0, "yes": 1}  # normalised, 9+ times, in order of first occurrence
    humans = [{"answer": a} for a in ["yes"] * 1 + ["2"] * 2 + ["Yes"] * 3 + ["no"] * 4]
    # counted as typed ('Yes' is not 'yes'), scored 0.3 / 0.6 / 0.9 / 1.0 by count, out-of-vocabulary dropped
    assert targets(humans, {"yes": 0, "2": 1, "Yes": 2, "no": 3}) == ([0, 1, 2, 3], [0.3, 0.6, 0.9, 1.0])
    assert targets(humans, {"maybe": 0}) == ([], [])


def test_json_release_holds_out_val_images_by_the_fixed_seed(tmp_path):
    raw = load_vqa_json(write_vqa_json(tmp_path / "json", n_train=10, n_val=20))
    # val2014's 20 images: 5 (a quarter) held out as the test split, then 3 of the other 15 as our val
    assert {s: len(sp) for s, sp in raw.splits.items()} == {"train": 10 + 12, "val": 3, "test": 5}
    assert raw.name == "vqav2" and raw.fingerprint() == load_vqa_json(tmp_path / "json").fingerprint()


def _break(root, case: str):
    if case == "missing split file":
        (root / "vqav2_rest_val.arrow").unlink()
    elif case == "vocabulary mismatch":
        rest = pd.read_feather(root / "vqav2_rest_val.arrow")
        rest["answer_labels"] = [[[(lab[0] + 1) % 3] for lab in labs] for labs in rest["answer_labels"]]
        write_ipc(rest, root / "vqav2_rest_val.arrow")
    elif case == "undecodable image":
        train = pd.read_feather(root / "vqav2_train.arrow")
        train.at[3, "image"] = train.at[3, "image"][:40]
        write_ipc(train, root / "vqav2_train.arrow")
    elif case == "not arrow":
        (root / "vqav2_train.arrow").write_bytes(b"PAR1 not an arrow file")
    elif case == "two tasks":
        write_meter_snli(root)
    return root


@pytest.mark.parametrize("case, words", [
    ("missing split file", ["lacks the split file vqav2_rest_val.arrow", "write_vqa.py"]),
    ("vocabulary mismatch", ["vocabulary mismatch", "vqav2_rest_val.arrow", "write them again"]),
    ("undecodable image", ["vqav2_train.arrow row 3", "does not decode"]),
    ("not arrow", ["cannot read", "vqav2_train.arrow", "arrow ipc"]),
    ("two tasks", ["several tasks", "vqav2", "snli-ve", "pass one file"]),
])
def test_bad_or_partial_arrow_copies_exit_2_and_store_nothing(cli, tmp_path, case, words):
    data = _break(write_vilt_vqa(tmp_path / "vqa"), case)
    code, _, err = cli("run", "linear", "--dataset", data, "--model", "minilm+test_vit", "--img-size", "32",
                       "--no-pretrained", *TINY, "--out", tmp_path / "s")
    one_line_error(code, err, *words)
    assert not (tmp_path / "s" / "results.csv").exists()


def test_dvps_snli_ve_files_name_their_labels(tmp_path):
    raw = load_arrow(write_dvp_snli(tmp_path / "snli-ve"))
    assert raw.task.answers == ("contradiction", "neutral", "entailment") and len(raw.splits["train"]) == 18
    assert raw.splits["train"].labels[:4].tolist() == [0, 0, 1, 1]  # image i's hypotheses: label i % 3
    assert raw.splits["train"].texts[0] == "it is red 0"


def test_one_file_names_its_task_in_a_folder_of_several(tmp_path):
    root = write_meter_snli(write_vilt_vqa(tmp_path / "all"))
    assert load_arrow(root / "snli_train.arrow").name == "snli-ve"
    assert load_arrow(root / "vqav2_train.arrow").name == "vqav2"


@pytest.mark.parametrize("case, words", [
    ("missing image", ["COCO_val2014_000000000503.jpg", "is missing", "val2014"]),
    ("missing annotations", ["lacks v2_mscoco_val2014_annotations.json", "visualqa.org"]),
    ("bad json", ["not the official vqav2 json", "'questions'"]),
])
def test_partial_json_releases_exit_2(cli, tmp_path, case, words):
    root = write_vqa_json(tmp_path / "json")
    if case == "missing image":
        (root / "val2014" / "COCO_val2014_000000000503.jpg").unlink()
    elif case == "missing annotations":
        (root / "v2_mscoco_val2014_annotations.json").unlink()
    else:
        (root / "v2_OpenEnded_mscoco_train2014_questions.json").write_text(json.dumps({"q": []}))
    code, _, err = cli("run", "linear", "--dataset", root, "--model", "minilm+test_vit", "--img-size", "32",
                       "--no-pretrained", *TINY, "--out", tmp_path / "s")
    one_line_error(code, err, *words)
    assert not (tmp_path / "s" / "results.csv").exists()
