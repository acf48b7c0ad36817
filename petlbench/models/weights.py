"""Loading backbone weights from a file: safetensors or a torch state dict, fitted to the model (a head of another
size dropped, position embeddings resampled), with one-line errors for files of another architecture or size."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.models.heads import _head, _head_prefix


def file_sha256(path: str | Path, n: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def bundled_path(file: str) -> Path:
    """Where a bundled weights file lies (``petlbench/assets``)."""
    from importlib import resources

    return Path(str(resources.files("petlbench.assets").joinpath(file)))


def weights_or_bundled(weights: str | None, file: str, model: str) -> Path:
    """``weights`` (a user's file), else the bundled ``file`` of ``model``; UserError when it is missing (a bundled
    file is rebuilt by its pretraining recipe)."""
    path = Path(weights) if weights else bundled_path(file)
    if not path.is_file():
        what = f"weights file '{path}'" if weights else f"bundled weights for '{model}' ({path})"
        raise UserError(f"{what} missing; pass an existing file to --weights, rebuild the bundled file with 'petlbench "
                        f"pretrain' (its recipe for {model}: petlbench list recipes) or use --no-pretrained")
    return path


def backbone_state(model: nn.Module, drop: tuple[str, ...] = ("head.",)) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s state on the CPU without the keys starting with ``drop`` (its head): what a weights
    file of the backbone holds."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items() if not k.startswith(drop)}


WRAPPERS = ("state_dict", "model", "module")  # Lightning .ckpt (ViLT's, METER's official), DeiT-style, DDP wrappers


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``--weights`` file of any track: safetensors, a torch state dict, or one wrapped in a dict
    (an official ViLT / METER Lightning ``.ckpt``: its ``state_dict``). Torch files are read with ``weights_only``
    (no code runs), ``argparse.Namespace`` allowed (Lightning stores hyper-parameters in one). UserError, one line,
    when the file is missing, damaged (corrupt safetensors, truncated) or holds no state dict of tensors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file '{path}' not found; pass an existing .safetensors, .pt or .ckpt file to --weights")
    try:
        sd = _read(path)
    except Exception as e:  # safetensors' SafetensorError, torch's UnpicklingError / EOFError / RuntimeError, ...
        kind = "safetensors file" if path.suffix == ".safetensors" else "torch file"
        raise UserError(f"cannot read weights file '{path}' as a {kind} ({type(e).__name__}: {_first_line(e)}); it is "
                        "damaged or truncated: copy or download it again") from None
    for key in WRAPPERS:
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"weights file '{path}' holds no state dict of tensors (it holds {_what(sd)}); save one with "
                        "torch.save(model.state_dict()) or pass the official checkpoint")
    return sd


def _read(path: Path):
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(str(path), map_location="cpu", weights_only=True)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:100] if text else "no detail"


def _what(obj) -> str:
    if isinstance(obj, dict):
        return f"a dict of {len(obj)} entries" + (f", e.g. '{next(iter(obj))}'" if obj else "")
    return f"a {type(obj).__name__}"


def _load_into(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Load backbone weights, dropping a classifier of another size and resampling pos-embeds."""
    sd = dict(sd)
    own = model.state_dict()
    head_names = {n for n, _ in _head(model).named_parameters(prefix=_head_prefix(model))}
    if "pos_embed" in sd and "pos_embed" in own and sd["pos_embed"].shape != own["pos_embed"].shape:
        from timm.layers import resample_abs_pos_embed

        npt = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
        grid = model.patch_embed.grid_size
        sd["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], new_size=list(grid), num_prefix_tokens=npt)
    for k in list(sd):
        if k in head_names and (k not in own or sd[k].shape != own[k].shape):
            del sd[k]  # a head for another number of classes: keep the fresh one
    arch = model.default_cfg.get("architecture", "?")
    bad = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    if bad:  # checked before load_state_dict, which would raise a long size-mismatch traceback
        k = bad[0]
        raise UserError(f"weights in {source} have the keys of model '{arch}' but other shapes ({len(bad)} tensors, "
                        f"e.g. '{k}': {tuple(sd[k].shape)} in the file vs {tuple(own[k].shape)} in the model); "
                        "they belong to another size of this architecture: pass the matching --model")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k not in head_names]
    if missing or unexpected:
        sample = (missing or unexpected)[:3]
        raise UserError(f"weights in {source} do not fit model '{arch}' ({len(missing)} missing, {len(unexpected)} "
                        f"unexpected keys, e.g. {sample}); {_foreign_hint(unexpected)}pass the matching --model")


# key prefixes only torchvision's layout has (timm names these layers otherwise): mobilenet/efficientnet/vgg/convnext
# ``features.``, vit ``encoder.layers.encoder_layer_`` / ``conv_proj.`` / ``heads.head.``, regnet ``trunk_output.``.
# Not ``classifier.`` or ``stem.``: timm's MobileNets, EfficientNets and RegNets use those names too.
TORCHVISION_PREFIXES = ("features.", "encoder.layers.encoder_layer_", "conv_proj.", "heads.head.", "trunk_output.")


def _foreign_hint(unexpected: list[str]) -> str:
    """A hint when the unexpected keys are in torchvision's layout (timm names layers differently)."""
    if not any(k.startswith(TORCHVISION_PREFIXES) for k in unexpected):
        return ""
    return ("the keys look like a torchvision checkpoint (torchvision and timm name layers differently, except "
            "ResNets, whose torchvision weights load into timm's resnet* models as they are): save the weights "
            "from the matching timm model instead, e.g. timm.create_model('mobilenetv2_100', pretrained=True) "
            "for torchvision's mobilenet_v2, or convert the keys to timm's names; ")
