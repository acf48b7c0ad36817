"""Which backbone? The router between ``--model`` names and backbone families, and the tracks they belong to.

Benchmark tracks are image classification ("vision") and vision-language ("vl"). Nothing declares a track twice:
a dataset's track is its ``Data.track``, a model's is its family's (``models.family.BackboneFamily``), a method's
follows from the backbone kinds it supports (each kind belongs to one family). This module holds the families
(``FAMILIES``), builds a named model through its family, checks that method, model and data agree on a track,
and gives each track its default model. It is one of the two modules that know both tracks (with ``datasets``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from petlbench.errors import UserError
from petlbench.models.backbones import VISION
from petlbench.models.family import BackboneFamily
from petlbench.registry import Registry
from petlbench.vl.models.family import VL_PAIRS, VLP

TRACK_NAMES = {"vision": "vision", "vl": "vision-language"}  # how messages name each track
FAMILIES: Registry[BackboneFamily] = Registry("backbone family", "run 'petlbench list models'")
FAMILIES.add(VISION.name, VISION)  # the fallback: owns every name no other family owns
FAMILIES.add(VL_PAIRS.name, VL_PAIRS)
FAMILIES.add(VLP.name, VLP)


def family(model: str | None) -> BackboneFamily:
    """The family that owns ``--model``: the one family other than the vision fallback that claims it, else the
    vision family (bundled and timm names)."""
    owners = [f for f in FAMILIES.all().values() if f is not VISION and f.owns(model)]
    if len(owners) > 1:
        raise UserError(f"model '{model}' is claimed by several backbone families ({', '.join(f.name for f in owners)})")
    return owners[0] if owners else VISION


def create_backbone(name: str | None, num_classes: int, **kwargs: Any) -> tuple[nn.Module, dict[str, Any], BackboneFamily]:
    """``name`` built by its family (see ``BackboneFamily.create``), with the family."""
    fam = family(name)
    model, info = fam.create(name, num_classes, **kwargs)
    return model, info, fam


def model_track(name: str | None) -> str:
    return family(name).track


def supported_kinds(needs: frozenset[str]) -> list[str]:
    """The backbone kinds whose insertion points offer what a method needs (``Method.supports``)."""
    return sorted(k for f in FAMILIES.all().values() for k, layout in f.layouts.items() if not layout.missing(needs))


def method_tracks(needs: frozenset[str]) -> set[str]:
    """The tracks a method with these needs runs on."""
    return {f.track for f in FAMILIES.all().values() for layout in f.layouts.values() if not layout.missing(needs)}


def family_of(model: nn.Module) -> BackboneFamily:
    """The family that builds a model like ``model`` (the VL families first: the vision family takes any model)."""
    for fam in sorted(FAMILIES.all().values(), key=lambda f: f is VISION):
        try:
            if fam.kind(model) in fam.layouts:
                return fam
        except AttributeError:  # not a model of this family (it has no kind attribute)
            continue
    raise ValueError(f"no backbone family builds {type(model).__name__}")


def apply_method(method: Any, model: nn.Module, fam: BackboneFamily | None = None) -> nn.Module:
    """``method.apply(model, layout)`` with the model's kind table (``fam``'s, else ``family_of``'s), which also
    stays on the model (``petl_layout``) for the method's later hooks; UserError when the kind lacks what the method
    needs."""
    fam = fam or family_of(model)
    layout = fam.layout(model)
    if missing := layout.missing(method.supports):
        raise UserError(f"method '{method.name}' needs {', '.join(missing)}, which {layout.kind} backbones do not "
                        f"offer (it runs on {', '.join(supported_kinds(method.supports))}); pick another --model")
    if method.cfg.classifier_token:
        if layout.classifier_token is None:
            raise UserError(f"classifier_token=true needs a kind with a learnable classifier token (vilt, meter); "
                            f"{layout.kind} backbones have none: drop --set classifier_token=true")
        layout.classifier_token(model)
    model.petl_layout = layout
    return method.apply(model, layout)


def _families(track: str) -> list[BackboneFamily]:
    """The families of ``track``: those with a default model first, then the vision family."""
    return sorted((f for f in FAMILIES.all().values() if f.track == track),
                  key=lambda f: (f.default_model is None, f is not VISION))


def default_model(track: str) -> str | None:
    """The model of a run on ``track`` that names none (None on the vision track: the bundled default)."""
    fams = _families(track)
    return fams[0].default_model if fams else None


def resolve_model(track: str, model: str | None, method: str, supports: frozenset[str]) -> str | None:
    """The model for a run on a ``track`` dataset (the track's default when None); UserError when the method
    or the model belongs to another track."""
    if track not in method_tracks(supports):
        from petlbench.registry import METHODS

        fits = sorted(n for n, c in METHODS.all().items() if track in method_tracks(c.supports))
        only = " and ".join(TRACK_NAMES.get(t, t) for t in sorted(method_tracks(supports))) + " only"
        raise UserError(f"method '{method}' is {only} (runs on {', '.join(supported_kinds(supports))} backbones); "
                        f"on a {track} dataset use one of: {', '.join(fits)}")
    if model is None:
        return default_model(track)
    if model_track(model) != track:
        want = next((f.model_hint for f in _families(track)), "")
        raise UserError(f"model '{model}' is for the {model_track(model)} track but the dataset is {track}; "
                        f"pass {want} or omit --model")
    return model


def list_models() -> list[tuple[str, str, str, bool]]:
    """(name, track, note, is its track's default) rows of every family, vision first."""
    fams = sorted(FAMILIES.all().values(), key=lambda f: f is not VISION)
    return [(name, f.track, note, default) for f in fams for name, note, default in f.list_models()]
