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
