"""Rendering of generated images (32×32 grey shape, land-cover, cell and structured-task images; shapes anti-aliased
by supersampling), shared by the built-in vision tasks and the VL shape scenes."""

from __future__ import annotations

import numpy as np

GEN_SIZE = 32  # generated images are 32×32 grey


SS = 2  # supersampling factor for anti-aliased shape rendering


def shape_mask(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
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


def draw(img: np.ndarray, kind: str, cx: float, cy: float, r: float, theta: float, value: float,
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
    cover = shape_mask(kind, u, v).reshape(y1 - y0, SS, x1 - x0, SS).mean(axis=(1, 3))
    region = img[y0:y1, x0:x1]
    region += cover * (value - region)  # "over" compositing with coverage as alpha


def finish(img: np.ndarray, rng: np.random.Generator, noise: float = 6.0) -> np.ndarray:
    """Add sensor noise and quantise to uint8."""
    img = img + rng.normal(0.0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
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


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a cells×cells random grid upsampled bilinearly to size×size."""
    grid = rng.random((cells + 1, cells + 1))
    t = np.linspace(0, cells, size, endpoint=False) + cells / size / 2
    i = np.minimum(t.astype(int), cells - 1)
    f = t - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


LAND_CLASSES = ["annual-crop", "orchard", "forest", "pasture", "residential", "industrial", "highway", "river"]


def land_cover_image(label: int, rng: np.random.Generator) -> np.ndarray:
    n = GEN_SIZE
    base = rng.uniform(60, 150)
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    theta = rng.uniform(0, np.pi)
    proj = xx * np.cos(theta) + yy * np.sin(theta)
    img = base + 25 * (smooth_noise(rng, n, 3) - 0.5)  # illumination / soil variation
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
        img = base - 30 + 90 * smooth_noise(rng, n, 10) * smooth_noise(rng, n, 7)
    elif label == 3:  # pasture: smooth, low-contrast
        img = base + 20 * (smooth_noise(rng, n, 4) - 0.5)
    elif label in (4, 5):  # residential (many small houses) / industrial (few large halls)
        count, (lo, hi) = ((int(rng.integers(10, 18)), (2.0, 3.5)) if label == 4
                           else (int(rng.integers(2, 5)), (5.0, 9.0)))
        for _ in range(count):
            r = rng.uniform(lo, hi)
            draw(img, "square", rng.uniform(0, n), rng.uniform(0, n), r, theta, rng.uniform(170, 250),
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
    return finish(blur(img, rng.uniform(0.0, 0.7)), rng, noise=rng.uniform(3, 10))


CELL_CLASSES = ["round", "elongated", "dividing", "lobed-nucleus"]


def cells_image(label: int, rng: np.random.Generator) -> np.ndarray:
    n = GEN_SIZE
    img = rng.uniform(20, 60) + 20 * smooth_noise(rng, n, 4)  # dark-field background
    for _ in range(int(rng.integers(1, 4))):
        cx, cy, r, th = rng.uniform(7, n - 7), rng.uniform(7, n - 7), rng.uniform(3.5, 5.5), rng.uniform(0, 6.3)
        cyto, nuc = rng.uniform(120, 190), rng.uniform(200, 255)
        if label == 0:  # round cell, one round nucleus
            draw(img, "circle", cx, cy, r, th, cyto)
            draw(img, "circle", cx, cy, r * 0.45, th, nuc)
        elif label == 1:  # elongated cell
            draw(img, "circle", cx, cy, r, th, cyto, sx=1.5, sy=0.6)
            draw(img, "circle", cx, cy, r * 0.4, th, nuc, sx=1.3, sy=0.8)
        elif label == 2:  # dividing: two touching daughter cells
            d = r * 0.75
            for sgn in (-1, 1):
                px, py = cx + sgn * d * np.cos(th), cy - sgn * d * np.sin(th)
                draw(img, "circle", px, py, r * 0.8, th, cyto)
                draw(img, "circle", px, py, r * 0.32, th, nuc)
        else:  # round cell with a lobed (segmented) nucleus: 3 small lobes
            draw(img, "circle", cx, cy, r, th, cyto)
            for j in range(3):
                a = th + 2 * np.pi * j / 3
                draw(img, "circle", cx + 0.4 * r * np.cos(a), cy - 0.4 * r * np.sin(a), r * 0.25, th, nuc)
    for _ in range(int(rng.integers(0, 4))):  # debris
        draw(img, "circle", rng.uniform(0, n), rng.uniform(0, n), rng.uniform(0.6, 1.4), 0.0, rng.uniform(90, 200))
    return finish(blur(img, rng.uniform(0.4, 1.0)), rng, noise=rng.uniform(4, 12))


def background(rng: np.random.Generator) -> np.ndarray:
    return np.full((GEN_SIZE, GEN_SIZE), rng.uniform(0, 50)) + 15 * smooth_noise(rng, GEN_SIZE, 3)


LOC_BINS = 8
LOC_LO, LOC_HI = 4.0, 28.0  # shape centres span x in [4, 28): 8 bins of 3 px


def loc_image(label: int, rng: np.random.Generator) -> np.ndarray:
    img = background(rng)
    w = (LOC_HI - LOC_LO) / LOC_BINS
    cx = LOC_LO + w * (label + rng.uniform(0.1, 0.9))  # keep off the exact bin edges
    draw(img, str(rng.choice(SHAPES)), cx, rng.uniform(5, GEN_SIZE - 5), rng.uniform(2.5, 4.5),
          rng.uniform(0, 2 * np.pi), rng.uniform(150, 255))
    return finish(img, rng)


ORI_BINS = 8


def ori_image(label: int, rng: np.random.Generator) -> np.ndarray:
    img = background(rng)
    theta = np.deg2rad(label * 360 / ORI_BINS + rng.uniform(-15, 15))  # bin centre ± 15° of a 45° bin
    draw(img, "wedge", rng.uniform(10, GEN_SIZE - 10), rng.uniform(10, GEN_SIZE - 10), rng.uniform(5, 8),
          theta, rng.uniform(150, 255))
    return finish(img, rng)


def place(rng: np.random.Generator, radii: list[float], margin: float = 1.0, tries: int = 200) -> list[tuple]:
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


def count_image(label: int, rng: np.random.Generator) -> np.ndarray:
    img = background(rng)
    radii = list(rng.uniform(1.8, 3.2, size=label + 1))
    for x, y, r in place(rng, radii):
        draw(img, str(rng.choice(SHAPES)), x, y, r, rng.uniform(0, 2 * np.pi), rng.uniform(130, 255))
    return finish(img, rng)


DIST_EDGES = (5.0, 9.0, 13.0, 17.0, 21.0, 25.0)  # centre distance bins in pixels (5 classes)


def dist_image(label: int, rng: np.random.Generator) -> np.ndarray:
    img = background(rng)
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
        draw(img, str(rng.choice(SHAPES)), x, y, r, rng.uniform(0, 2 * np.pi), rng.uniform(150, 255))
    return finish(img, rng)
