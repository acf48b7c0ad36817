"""Benchmark tracks: image classification ("vision") and vision-language ("vl"). Nothing declares a track twice:
a dataset's track is its kind (``data.RawData.track`` = "vision", ``vl_data.VLRawData.track`` = "vl"), a model's is
its name (``TEXT+VISION`` = "vl", ``vl.is_vl_model_name``), a method's is the backbone kinds it supports ("vl"
for VL, any other kind for vision). This module checks they agree and gives each track its default model.
"""

from __future__ import annotations

from petlbench import vl
from petlbench.errors import UserError

TRACKS = ("vision", "vl")
DEFAULT_MODELS = {"vision": None, "vl": vl.DEFAULT_VL_MODEL}  # None: the bundled ViT (backbones.DEFAULT_MODEL)


def model_track(name: str | None) -> str:
    return "vl" if vl.is_vl_model_name(name) else "vision"


def method_tracks(supports: frozenset[str]) -> set[str]:
    """The tracks a method with these backbone kinds runs on."""
    return {"vl" if kind == "vl" else "vision" for kind in supports}


def resolve_model(track: str, model: str | None, method: str, supports: frozenset[str]) -> str | None:
    """The model for a run on a ``track`` dataset (the track's default when None); UserError when the method
    or the model belongs to the other track."""
    if track not in method_tracks(supports):
        from petlbench.registry import METHODS

        fits = sorted(n for n, c in METHODS.all().items() if track in method_tracks(c.supports))
        only = "vision only" if track == "vl" else "vision-language only"
        raise UserError(f"method '{method}' is {only} (supports {', '.join(sorted(supports))} backbones); "
                        f"on a {track} dataset use one of: {', '.join(fits)}")
    if model is None:
        return DEFAULT_MODELS[track]
    if model_track(model) != track:
        want = f"a TEXT+VISION pair, e.g. {vl.DEFAULT_VL_MODEL}" if track == "vl" else "a vision model (not TEXT+VISION)"
        raise UserError(f"model '{model}' is for the {model_track(model)} track but the dataset is {track}; "
                        f"pass {want} or omit --model")
    return model
