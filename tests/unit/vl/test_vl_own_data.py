"""VL data and text models as users bring them, through the CLI: bad input is one line, exit 2, caught before
training (``runner.run_one`` is never reached) and nothing stored; a pandas-written VQA parquet trains with a
locally saved ELECTRA-style encoder (the second real text model next to the packaged MiniLM)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ...checks import one_line_error
from ...text_models import save_text_model
from ...vl_files import png, write_vqa_parquet

TINY_VL = ["--model", "minilm+test_vit", "--img-size", "32", "--no-pretrained", "--limit", "12", "--epochs", "1",
           "--batch-size", "6"]
QUESTIONS = [f"what is {i} ?" for i in range(20)]


def _never_trains(monkeypatch):
    from petlbench.engine import runner

    monkeypatch.setattr(runner, "run_one", lambda *a, **k: pytest.fail("reached training with bad input"))


def _bad_data(tmp_path, case):
    path = tmp_path / "vqa.parquet"
    if case == "empty answers":
        return write_vqa_parquet(path, "pandas", answers=lambda i: [] if i == 4 else ["yes" if i % 2 else "no"])
    if case == "no question":
        return write_vqa_parquet(path, "pyarrow", "record", question="caption")
    images = [{"bytes": png(10 * i)[:20] if i == 5 else png(10 * i), "path": f"{i}.png"} for i in range(20)]
    pq.write_table(pa.table({"image": images, "question": QUESTIONS, "answer": ["yes", "no"] * 10}), path)
    return path


@pytest.mark.parametrize("case, words", [
    ("empty answers", ["no answer in 'answers'", "give every question at least one answer"]),
    ("no question", ["no question/text column", "columns found: image, caption, answers", "rename"]),
    ("unreadable image", ["'what is 5 ?'", "(bytes of '5.png') is not a readable image", "replace it"]),
])
def test_bad_vl_data_exits_2_before_training_and_stores_nothing(cli, tmp_path, monkeypatch, case, words):
    _never_trains(monkeypatch)
    path = _bad_data(tmp_path, case)
    code, _, err = cli("run", "linear", "--dataset", path, *TINY_VL, "--out", tmp_path / "store")
    one_line_error(code, err, *words)
    assert not (tmp_path / "store" / "results.csv").exists()


@pytest.mark.parametrize("case, words", [
    ("no tokenizer", ["has no tokenizer files", "save_pretrained("]),
    ("distilbert", ["DistilBertModel is not a BERT-style encoder", "pick a BERT-family model"]),
])
def test_unusable_text_models_exit_2_before_training_and_store_nothing(cli, tmp_path, monkeypatch, case, words):
    _never_trains(monkeypatch)
    kind = "distilbert" if case == "distilbert" else "bert"
    model = save_text_model(tmp_path / case.replace(" ", "-"), kind, QUESTIONS, tokenizer=case != "no tokenizer")
    code, _, err = cli("run", "linear", "--dataset", "shapes-vqa", "--model", f"{model}+test_vit", "--img-size", "32",
                       "--limit", "12", "--epochs", "1", "--out", tmp_path / "store")
    one_line_error(code, err, *words)
    assert not (tmp_path / "store" / "results.csv").exists()


