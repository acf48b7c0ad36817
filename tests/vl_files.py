"""Small VL data files as users keep them (images, a JSONL with an image folder, VQA parquet from any writer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def img(v: int):
    """A 6x6 RGB image whose red channel is ``v``."""
    from PIL import Image

    return Image.new("RGB", (6, 6), (v, 255 - v, 0))


def png(value: int) -> bytes:
    """``img(value)`` as PNG bytes."""
    import io

    buf = io.BytesIO()
    img(value).save(buf, format="PNG")
    return buf.getvalue()


def write_vqa_parquet(path: Path, writer: str = "pyarrow", image: str = "bytes", n: int = 20,
                      answers: Any = None, question: str = "question") -> Path:
    """``n`` rows: image i (red = 10 i), question "what is i ?", answers ``answers(i)`` (default: a list of three
    "yes"/"no"); images as PNG ``bytes``, ``{bytes, path}`` ``record``s or ``path``s to files next to ``path``,
    written by ``pyarrow``, ``pandas`` or ``datasets`` (no Image feature: what a plain write gives)."""
    answers = answers or (lambda i: ["yes" if i % 2 else "no"] * 3)
    if image == "path":
        for i in range(n):
            img(10 * i).save(path.parent / f"{i}.png")
    entry = {"bytes": lambda i: png(10 * i), "record": lambda i: {"bytes": png(10 * i), "path": f"{i}.png"},
             "path": lambda i: f"{i}.png"}[image]
    cols = {"image": [entry(i) for i in range(n)], question: [f"what is {i} ?" for i in range(n)],
            "answers": [answers(i) for i in range(n)]}
    if writer == "pandas":
        import pandas as pd

        pd.DataFrame(cols).to_parquet(path)
    elif writer == "datasets":
        import datasets as hfds

        hfds.Dataset.from_dict(cols).to_parquet(str(path))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(cols), path)
    return path


def jsonl_dataset(root: Path, n: int = 12) -> Path:
    """``root/qa.jsonl``: ``n`` yes/no questions on ``root/images/<i>.png``."""
    (root / "images").mkdir(parents=True)
    lines = []
    for i in range(n):
        img(i * 10).save(root / "images" / f"{i}.png")
        lines.append(json.dumps({"image": f"{i}.png", "question": f"What is {i}?", "answer": "yes" if i % 2 else "no"}))
    path = root / "qa.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- the papers' files, in their schemas

COLOURS = ("red", "green", "blue")  # the answer to "what colour is it ?" on image i is COLOURS[i % 3]
VQA_COLUMNS = ["image", "questions", "answers", "answer_labels", "answer_scores", "image_id", "question_id", "split"]


def jpeg(value: int) -> bytes:
    """A 12x12 JPEG of colour ``COLOURS[value % 3]``."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (12, 12), [(200, 20, 20), (20, 200, 20), (20, 20, 200)][value % 3]).save(buf, format="JPEG")
    return buf.getvalue()


def write_ipc(df, path: Path) -> Path:
    """A DataFrame as the official writers store it: ``pa.Table.from_pandas`` through a ``RecordBatchFileWriter``."""
    import pyarrow as pa

    table = pa.Table.from_pandas(df)
    with pa.OSFile(str(path), "wb") as sink, pa.RecordBatchFileWriter(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def _vqa_row(i: int, split: str, q_per_image: int = 2) -> list:
    """ViLT write_vqa.py's row of image i: questions, answers / labels / scores per question (label = colour id)."""
    label = i % 3
    return [jpeg(i), [f"what colour is it {k} ?" for k in range(q_per_image)], [[COLOURS[label]]] * q_per_image,
            [[label]] * q_per_image, [[1.0]] * q_per_image, i, [i * 10 + k for k in range(q_per_image)], split]


def write_vilt_vqa(root: Path, n_train: int = 12, n_val: int = 12, rest: int = 4) -> Path:
    """``root/vqav2_{train,val,trainable_val,rest_val}.arrow`` as ViLT's write_vqa.py writes them (trainable_val /
    rest_val: val without / with its last ``rest`` rows, cut from the val file read back)."""
    import pandas as pd
    import pyarrow as pa

    root.mkdir(parents=True, exist_ok=True)
    for split, ids in (("train", range(n_train)), ("val", range(100, 100 + n_val))):
        write_ipc(pd.DataFrame([_vqa_row(i, split) for i in ids], columns=VQA_COLUMNS), root / f"vqav2_{split}.arrow")
    val = pa.ipc.RecordBatchFileReader(pa.memory_map(str(root / "vqav2_val.arrow"), "r")).read_all().to_pandas()
    write_ipc(val[:-rest], root / "vqav2_trainable_val.arrow")
    write_ipc(val[-rest:], root / "vqav2_rest_val.arrow")
    return root


def write_dvp_gqa(root: Path, n: int = 12) -> Path:
    """``root/gqa_{train,test-dev}.arrow`` as DVP's write_gqa.py writes them (string image and question ids)."""
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    for split, ids in (("train", range(n)), ("test-dev", range(100, 100 + n // 2))):
        rows = [[*r[:5], f"n{r[5]}", [str(q) for q in r[6]], r[7]] for r in (_vqa_row(i, split, 1) for i in ids)]
        write_ipc(pd.DataFrame(rows, columns=VQA_COLUMNS), root / f"gqa_{split}.arrow")
    return root


SNLI_LABELS = ("contradiction", "neutral", "entailment")  # METER's / DVP's label ids 0, 1, 2


def write_meter_snli(root: Path, n: int = 9) -> Path:
    """``root/snli_{train,dev,test}.arrow`` as METER's write_snli.py writes them: image, [premise, hypothesis]
    pairs, labels (the label of image i's hypotheses: i % 3)."""
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    for split, ids in (("train", range(n)), ("dev", range(50, 50 + n // 3 + 1)), ("test", range(80, 80 + n // 3 + 1))):
        rows = [[jpeg(i), [[f"a picture {i}", f"it is {COLOURS[i % 3]} {k}"] for k in range(2)], [i % 3] * 2]
                for i in ids]
        write_ipc(pd.DataFrame(rows, columns=["image", "sentences", "labels"]), root / f"snli_{split}.arrow")
    return root


def write_vqa_json(root: Path, n_train: int = 14, n_val: int = 16, answers_per_q: int = 10) -> Path:
    """The official VQAv2 JSON (questions + annotations) beside COCO's ``train2014/`` and ``val2014/`` folders:
    one question per image, every human answering its colour (each answer 9+ times: in the vocabulary)."""
    root.mkdir(parents=True, exist_ok=True)
    for split, ids in (("train2014", range(1, n_train + 1)), ("val2014", range(500, 500 + n_val))):
        (root / split).mkdir()
        for i in ids:
            (root / split / f"COCO_{split}_{i:012d}.jpg").write_bytes(jpeg(i))
        qs = [{"image_id": i, "question": f"what colour is picture {i} ?", "question_id": i * 1000} for i in ids]
        anns = [{"question_id": i * 1000, "image_id": i, "multiple_choice_answer": COLOURS[i % 3],
                 "answers": [{"answer": COLOURS[i % 3], "answer_confidence": "yes", "answer_id": k + 1}
                             for k in range(answers_per_q)], "question_type": "what color", "answer_type": "other"}
                for i in ids]
        (root / f"v2_OpenEnded_mscoco_{split}_questions.json").write_text(json.dumps({"questions": qs}))
        (root / f"v2_mscoco_{split}_annotations.json").write_text(json.dumps({"annotations": anns}))
    return root


def write_dvp_snli(root: Path, n: int = 9) -> Path:
    """``root/snli_ve_{train,dev,test}.arrow`` as DVP's write_snli_ve.py writes them: image, questions (hypotheses),
    answers (label names), identifier (the Flickr30K image id)."""
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    for split, ids in (("train", range(n)), ("dev", range(50, 50 + n // 3 + 1)), ("test", range(80, 80 + n // 3 + 1))):
        rows = [[jpeg(i), [f"it is {COLOURS[i % 3]} {k}" for k in range(2)], [SNLI_LABELS[i % 3]] * 2, 1000 + i]
                for i in ids]
        write_ipc(pd.DataFrame(rows, columns=["image", "questions", "answers", "identifier"]),
                  root / f"snli_ve_{split}.arrow")
    return root
