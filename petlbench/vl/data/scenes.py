"""The scene prior of the built-in VL tasks (``vl.data.tasks``) and of the scenes the bundled VL models were
pretrained on (``pretrain.scenes``, ``pretrain.captions``): 32×32 RGB, 2–5 non-overlapping objects on a dark noisy
background; each object has one of 4 shapes (circle, square, triangle, cross) and one of 4 colours (red, green, blue,
yellow; the colours also differ in luminance, so a grey-pretrained encoder can tell them apart), radius 3–4.2 px, a
small random tilt and RGB jitter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from petlbench.data import render as shapes
from petlbench.data.render import SHAPES, draw, place, smooth_noise

IMG = shapes.GEN_SIZE  # 32×32, the bundled micro ViT's input size
COLOURS = {"red": (230, 50, 40), "green": (50, 200, 60), "blue": (30, 60, 220), "yellow": (240, 230, 60)}
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
RELATIONS = ("left of", "right of", "above", "below")
MARGIN = 4.0  # px: relation questions need the two centres this far apart on the asked axis
__all__ = ["COLOURS", "IMG", "MARGIN", "PLURAL", "RELATIONS", "SHAPES", "Obj", "draw_scenes", "relation", "render",
           "render_with_covers", "sample_scene"]


class Obj(NamedTuple):
    shape: str
    colour: str
    x: float  # centre, px (x right, y down)
    y: float
    r: float


def sample_scene(rng: np.random.Generator) -> list[Obj]:
    """The scene prior: 2–5 objects, uniform shapes and colours, non-overlapping."""
    n = int(rng.integers(2, 6))
    shapes = rng.integers(0, len(SHAPES), n)
    colours = rng.integers(0, len(COLOURS), n)
    spots = place(rng, list(rng.uniform(3.0, 4.2, n)), margin=1.5)
    names = list(COLOURS)
    return [Obj(SHAPES[s], names[c], x, y, r) for s, c, (x, y, r) in zip(shapes, colours, spots, strict=True)]


def render(scene: list[Obj], rng: np.random.Generator) -> np.ndarray:
    """uint8 IMG×IMG×3 image of ``scene``: grey background, coloured anti-aliased shapes, sensor noise."""
    return render_with_covers(scene, rng)[0]


def render_with_covers(scene: list[Obj], rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """``render``'s image and each object's coverage map (IMG×IMG in [0, 1], in ``scene`` order)."""
    bg = rng.uniform(15, 45) + 12 * smooth_noise(rng, IMG, 3)
    img = np.repeat(bg[:, :, None], 3, axis=2)
    covers = []
    for o in scene:
        cover = np.zeros((IMG, IMG))
        draw(cover, o.shape, o.x, o.y, o.r, rng.uniform(-0.2, 0.2), 1.0)  # coverage in [0, 1]
        colour = np.asarray(COLOURS[o.colour], dtype=float) + rng.normal(0, 10, 3)
        img += cover[:, :, None] * (colour - img)
        covers.append(cover)
    img += rng.normal(0, 5.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), covers


def relation(a: Obj, b: Obj, rel: str) -> bool | None:
    """Whether ``a`` is ``rel`` ``b``; None when the centres are closer than MARGIN on that axis."""
    d = (a.x - b.x) if rel in ("left of", "right of") else (a.y - b.y)
    if abs(d) < MARGIN:
        return None
    return d < 0 if rel in ("left of", "above") else d > 0


def draw_scenes(n: int, rng: np.random.Generator) -> Iterator[tuple[list[Obj], np.ndarray, list[np.ndarray]]]:
    """``n`` scenes of the prior, each with its image and its objects' coverage maps (``render_with_covers``),
    drawn one at a time from ``rng`` (a consumer may draw from it between scenes)."""
    for _ in range(n):
        scene = sample_scene(rng)
        image, covers = render_with_covers(scene, rng)
        yield scene, image, covers
