"""Image classification data in parquet files (any writer: pyarrow, pandas, ``datasets``): image and label columns
detected, split files named by split, one unsplit file carved 70/10/20."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from petlbench.data.images import RawData
from petlbench.data.splits import flat_split, split_of
from petlbench.data.types import image_entries
from petlbench.errors import UserError

IMAGE_COLUMNS = ("image", "img", "images", "picture", "photo", "image_bytes")

LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "category", "target", "y")


def _pick_column(names: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {n.lower(): n for n in names}
    return next((lower[w] for w in wanted if w in lower), None)


def _parquet_columns(table: Any, where: str) -> tuple[str, str]:
    """(image column, label column) of a parquet table written by ``datasets``, pandas or pyarrow."""
    import pyarrow as pa

    names = table.column_names
    image = _pick_column(names, IMAGE_COLUMNS) or next(
        (f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
         or (pa.types.is_struct(f.type) and f.type.get_field_index("bytes") >= 0)), None)
    if image is None:
        raise UserError(f"parquet data '{where}' has no image column (bytes or {{bytes, path}} records named one of "
                        f"{', '.join(IMAGE_COLUMNS)}); columns: {', '.join(names)}")
    label = _pick_column([n for n in names if n != image], LABEL_COLUMNS)
    if label is None:
        raise UserError(f"parquet data '{where}' has no label column (one of {', '.join(LABEL_COLUMNS)}); "
                        f"columns: {', '.join(names)}")
    return image, label


def _hf_class_names(table: Any, label: str) -> list[str] | None:
    """ClassLabel names that ``datasets`` stores in the parquet schema metadata, if any."""
    import json

    meta = (table.schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    feat = json.loads(meta).get("info", {}).get("features", {}).get(label, {})
    return list(feat["names"]) if isinstance(feat, dict) and feat.get("names") else None


def load_parquet(path: Path, files: list[Path]) -> RawData:
    """Parquet files (``datasets``, pandas or pyarrow): an image column of bytes / ``{bytes, path}`` records and
    an integer or string label column. Files named by split (train/val/validation/dev/test) give the splits;
    a single pool is split 70/10/20 with a fixed seed."""
    import pyarrow.parquet as pq

    tables: dict[str, list[Any]] = {}
    for f in files:
        try:
            table = pq.read_table(f)
        except Exception as e:  # not parquet, truncated, unsupported encoding
            raise UserError(f"cannot read parquet file '{f}' ({type(e).__name__}); check the file") from None
        tables.setdefault(split_of(f.name) or "pool", []).append(table)
    first = next(iter(tables.values()))[0]
    image, label = _parquet_columns(first, str(path))
    raw_labels = {s: [v for t in ts for v in t.column(label).to_pylist()] for s, ts in tables.items()}
    classes, encode = _label_encoding(raw_labels, _hf_class_names(first, label), str(path))
    splits = {}
    for split, ts in tables.items():
        items = [v for t in ts for v in t.column(image).to_pylist()]
        splits[split] = (image_entries(items), encode(raw_labels[split]))
    if set(splits) == {"pool"} or "train" not in splits:
        images, labels = splits.pop("pool", next(iter(splits.values())))
        return flat_split(path.stem, images, labels, classes, f"parquet:{path}")
    return RawData(path.stem, splits, classes, f"parquet:{path}")


def _label_encoding(raw: dict[str, list[Any]], names: list[str] | None, where: str):
    """(class names, encode): integer labels as they are (names from ``datasets`` metadata if present, else
    0..max); string labels sorted into classes."""
    values = [v for vs in raw.values() for v in vs]
    if any(v is None for v in values):
        raise UserError(f"parquet data '{where}' has rows without a label; drop or fill them")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        classes = names or [str(i) for i in range(int(max(values)) + 1)]
        return classes, lambda vs: np.asarray(vs, dtype=np.int64)
    classes = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(classes)}
    return classes, lambda vs: np.asarray([index[str(v)] for v in vs], dtype=np.int64)
