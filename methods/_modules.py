"""Shared building blocks for PETL methods on timm ViTs (not a method: ``_`` files are not scanned).

- ``Bottleneck``: the adapter module ``s * Up(Dropout(act(Down(x))))`` (no residual: callers add it).
- ``factory_kwargs``: the device and dtype to create new parameters next to existing ones.
- ``add_branches``: attach adapter branches to a timm ``Block`` without copying the ViT. The branch
  modules become block attributes (``blocks.3.mlp_par.down.weight``), backbone parameter names are
  unchanged, and the block's ``forward`` is patched per instance to call them:

      h = Attn(LN1 x);  h = h + attn_seq(h)                     # sequential (Houlsby): on the sublayer output
      x = x + DropPath(LS(h)) + attn_par(x)                     # parallel (AdaptFormer/DAS): pre-norm stream
      h = MLP(LN2 x);   h = h + mlp_seq(h)
      x = x + DropPath(LS(h)) + mlp_par(x)

  Parallel branches are added outside layer-scale / drop-path, as in AdaptFormer's official block.
"""

from __future__ import annotations

import contextlib
import math
import types
import typing
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from petlbench.errors import UserError
from petlbench.methods.base import MethodModule

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "identity": nn.Identity}
Activation = Literal[tuple(ACTIVATIONS)]  # config field types, derived from the tables they name
DownInit = Literal["kaiming", "xavier", "normal", "gaussian"]
UpInit = Literal["zero", "normal", "gaussian"]
DOWN_INITS, UP_INITS = typing.get_args(DownInit), typing.get_args(UpInit)
BRANCH_SLOTS = ("attn_seq", "attn_par", "mlp_seq", "mlp_par")


class Bottleneck(MethodModule):
    """Bottleneck adapter ``scale * up(drop(act(down(x))))`` (d -> r -> d); the residual is the caller's.

    Init (biases always zero):
    - ``down_init``: "kaiming" = ``kaiming_uniform_(a=sqrt(5))`` (PyTorch's Linear default, AdaptFormer
      and LoRA's choice), "xavier" = xavier-uniform, "normal" = N(0, ``init_std``) truncated at 2 std
      (Houlsby et al. 2019, "near-identity" init), "gaussian" = N(0, ``init_std``) untruncated (the APT and DVP
      repositories' adapters: ``nn.init.normal_``);
    - ``up_init``: "zero" (exact identity at init), "normal" (near-identity, Houlsby) or "gaussian".
    Parameters: ``2·d·r + r + d``.
    """

    def __init__(
        self, dim: int, bottleneck: int, act: str = "relu", dropout: float = 0.0, scale: float = 1.0,
        down_init: str = "kaiming", up_init: str = "zero", init_std: float = 1e-2,
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{act}'; choose one of {', '.join(ACTIVATIONS)}")
        if down_init not in DOWN_INITS or up_init not in UP_INITS:
            raise ValueError(f"down_init must be one of {DOWN_INITS}, up_init one of {UP_INITS}")
        dd = {"device": device, "dtype": dtype}
        self.down = nn.Linear(dim, bottleneck, **dd)
        self.act = ACTIVATIONS[act]()
        self.drop = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, dim, **dd)
        self.scale = scale
        self.reset_parameters(down_init, up_init, init_std)

    @torch.no_grad()
    def reset_parameters(self, down_init: str = "kaiming", up_init: str = "zero", init_std: float = 1e-2) -> None:
        if down_init == "kaiming":
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        elif down_init == "xavier":
            nn.init.xavier_uniform_(self.down.weight)
        elif down_init == "gaussian":
            nn.init.normal_(self.down.weight, std=init_std)
        else:
            nn.init.trunc_normal_(self.down.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
        if up_init == "zero":
            nn.init.zeros_(self.up.weight)
        elif up_init == "gaussian":
            nn.init.normal_(self.up.weight, std=init_std)
        else:
            nn.init.trunc_normal_(self.up.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.drop(self.act(self.down(x))))

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def resolve_indices(indices: tuple[int, ...] | None, depth: int, key: str) -> list[int]:
    """Block / layer indices of a config key (negatives count from the end; None = all) -> sorted
    non-negative list; a one-line UserError when one is out of range or named twice."""
    if indices is None:
        return list(range(depth))
    bad = [i for i in indices if not -depth <= i < depth]
    if bad:
        raise UserError(f"{key} {bad} out of range for a {depth}-block model; use indices in [0, {depth - 1}]")
    out = sorted({i % depth for i in indices})
    if len(out) != len(indices):
        raise UserError(f"{key} {list(indices)} name the same block twice; list each block once")
    return out


@contextlib.contextmanager
def scoring_mode(model: nn.Module, eval_mode: bool) -> Iterator[None]:
    """Score a search's arms: every module in eval mode when ``eval_mode`` (else as it is); each module's
    train/eval flag restored afterwards, whatever happens (the search goes on training)."""
    modes = {m: m.training for m in model.modules()}
    if eval_mode:
        model.eval()
    try:
        yield
    finally:
        for m, t in modes.items():
            m.training = t


def factory_kwargs(module: nn.Module) -> dict:
    """``{"device", "dtype"}`` of a module's first parameter, to create new parameters next to it."""
    p = next(module.parameters(), None)
    return {"device": p.device, "dtype": p.dtype} if p is not None else {}


def _check_block(block: nn.Module) -> None:
    needed = ("norm1", "attn", "ls1", "drop_path1", "norm2", "mlp", "ls2", "drop_path2")
    missing = [n for n in needed if not hasattr(block, n)]
    if missing:
        raise ValueError(
            f"block {type(block).__name__} lacks {', '.join(missing)}: only pre-norm timm ViT blocks "
            "(timm.models.vision_transformer.Block) can take adapter branches; pick another --model"
        )


def _branched_forward(self: nn.Module, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """Pre-norm timm Block forward with optional adapter branches (see module docstring).

    Extra args (``attn_mask``, ``is_causal``) go to the attention module unchanged.
    """
    h = self.attn(self.norm1(x), *args, **kwargs)
    if self.attn_seq is not None:
        h = h + self.attn_seq(h)
    out = x + self.drop_path1(self.ls1(h))
    if self.attn_par is not None:
        out = out + self.attn_par(x)
    x = out
    h = self.mlp(self.norm2(x))
    if self.mlp_seq is not None:
        h = h + self.mlp_seq(h)
    out = x + self.drop_path2(self.ls2(h))
    if self.mlp_par is not None:
        out = out + self.mlp_par(x)
    return out


def add_branches(block: nn.Module, **branches: MethodModule | None) -> None:
    """Attach branch modules to a timm ``Block`` and patch its forward (idempotent per slot).

    Keyword names are the slots ``attn_seq``, ``attn_par``, ``mlp_seq``, ``mlp_par`` (see module
    docstring); each module must map (B, N, d) -> (B, N, d) and return only the branch output.
    """
    _check_block(block)
    fill_slots(block, BRANCH_SLOTS, branches, _branched_forward)


def fill_slots(module: nn.Module, slots: tuple[str, ...], branches: dict[str, nn.Module | None],
               forward) -> None:
    """Set ``module.<slot>`` for each given branch (None empties a slot; a filled slot cannot be filled again;
    untouched slots default to None) and patch ``module.forward`` with ``forward`` (which reads the slots)."""
    unknown = set(branches) - set(slots)
    if unknown:
        raise ValueError(f"unknown branch slot(s) {sorted(unknown)}; use {slots}")
    for slot in slots:
        if slot in branches:
            if getattr(module, slot, None) is not None and branches[slot] is not None:
                raise ValueError(f"{type(module).__name__} already has a '{slot}' branch")
            setattr(module, slot, branches[slot])
        elif not hasattr(module, slot):
            setattr(module, slot, None)
    # per-instance patch: deep-copies correctly (copy rebinds MethodType to the copied module)
    module.forward = types.MethodType(forward, module)
