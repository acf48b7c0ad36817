"""DAS: Dynamic Architecture Skipping (Wu et al., NeurIPS 2023, "Parameter and Computation Efficient
Transfer Learning for Vision-Language Pre-trained Models").

Parameter *and* computation efficiency: k redundant blocks are skipped, the others get adapters.
- kept block i (parallel adapters on the pre-norm stream, as in the official ViLT block):
      x = x + Attn(LN1 x) + A0(x);   x = x + MLP(LN2 x) + A1(x)
- skipped block i: replaced by a skip adapter with residual, x <- x + A_skip(x).
Adapters (official ``ParallelAdapter``): optional input LayerNorm, Down, ReLU, Up, scale 1; bottleneck
96 (parallel) / 192 (skip) on d=768, scaled with d here (d/8, d/4).

Search (``search`` hook, a k-armed bandit over blocks): gate logits g (L) init 0, π = sigmoid(g).
Every training step samples k blocks to skip with ``torch.multinomial(π, k)`` — k successive draws
without replacement, each picking among the remaining blocks with probability ∝ π (as the official
code) — and trains all adapters under that architecture. After ``search_warmup_epochs``,
``gate_updates_per_epoch`` times per epoch (evenly spaced): ``search_arms`` distinct k-subsets are sampled the same way, each is scored on
one FRESH validation batch (no grad, eval mode), R = exp(-loss), and for every block i of subset j
``g_i += gate_lr · (R_j - mean R) · π_i (1 - π_i)`` (π from before the update). At the end the top-k
gates (ties -> later blocks) are fixed as skipped, adapters and head are reset to their state at the
start of the search (``reinit_after_search``, the official code retrains from the pre-trained model),
and the architecture is made physical: each skipped block in ``model.blocks`` is replaced by a
``SkippedBlock`` holding only its skip adapter, so its attention/MLP never run again.

Without ``search`` (e.g. ``inspect``, ``search_epochs=0``, or ``skip_blocks`` given) the skipped
blocks are ``skip_blocks`` or, by default, the LAST k blocks; ``apply`` already builds that final
architecture (so parameter counts after ``apply`` are those of a DAS-k model) but keeps the frozen
blocks in place (not executed) until ``finalize``/the end of the search removes them. The search
first adds the missing adapters (parallel ones for skipped blocks, skip ones for kept blocks), and
drops the unused ones at the end: the loop must build its training optimizer after ``search``.

Gates, the chosen blocks and the number of gate updates live in ``model.das_state`` (buffers).

VL model: the blocks are the language model's post-LN encoder layers (``model.text.encoder.layer``); a skipped
layer becomes ``x + A_skip(x)`` like a ViT block, and a kept one gets the official METER placement of DAS's
``BertSelfOutput`` / ``feed_forward_chunk``: ``a = LN1(x + Attn(x) + A0(x))``, ``y = LN2(a + FFN(a)) + A1(a)``
(``methods/_bert.py``). ``_Blocks`` holds the few steps that depend on the layer style of the kind's table
(``models.layout``); the search is the same code.
METER: the blocks are its 12 co-attention layers (text stream 0-5, image stream 6-11, the official order of
``apply_flag``); a kept one has three parallel adapters (self- and cross-attention outputs, FFN), a skipped one a
skip adapter of 3d/8 (official 96 * 3). ViLT: as on a ViT (its blocks are timm blocks, official placement).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
from torch import nn

from petlbench.config.method_config import Range
from petlbench.errors import UserError
from petlbench.methods._bert import add_output_branches, output_branch
from petlbench.methods._modules import Bottleneck, add_branches, resolve_indices, scoring_mode
from petlbench.methods.base import Method, MethodConfig, MethodModule, SearchContext, layout_of, state_of
from petlbench.methods.recipe import vlp_recipe
from petlbench.models.layout import Layout
from petlbench.registry import register


@dataclass
class DASConfig(MethodConfig):
    """DAS keys; defaults from the official DAS code (ViLT/METER configs) unless noted.
    The training recipe is the shared VTAB-1k default (AdamW, lr 1e-3, wd 1e-4, 100 epochs)."""

    skip: Annotated[int, Range(ge=0)] = 1  # k blocks to skip; the paper reports several k (DAS_k); 1 = the smallest saving
    bottleneck: Annotated[int | None, Range(ge=1)] = None  # parallel adapters A0/A1; None = d/8 (96 on d=768, official default)
    skip_bottleneck: Annotated[int | None, Range(ge=1)] = None  # skip adapters; None = skip_width × d
    skip_width: Annotated[float, Range(gt=0)] = 0.25  # 192 on d=768 (official ViLT: 96*2); METER 3/8 (official 96*3)
    adapter_norm: bool = True  # LayerNorm at the adapter input (official ParallelAdapter option "in")
    adapter_init: Literal["normal", "lora"] = "normal"  # normal: Down, Up ~ N(0, 0.02) (official "bert"
    # init); lora: Down kaiming-uniform, Up = 0 (kept blocks exactly unchanged at init). Biases 0.
    adapter_scale: float = 1.0  # s in s·Up(...) (official adapter_scalar "1.0")
    adapter_dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0  # inside the adapter bottleneck (official 0.0)
    skip_blocks: tuple[int, ...] | None = None  # fixed blocks to skip (official train stage's
    # skip_module); disables the search. None = search (or the last k blocks when no search runs)
    search_epochs: Annotated[int, Range(ge=0)] = 3  # epochs of the search stage (official das_epoch = 3); 0 = no search
    search_warmup_epochs: Annotated[int, Range(ge=0)] = 1  # search epochs before gate updates start (official warmup_epoch = 1)
    # gate updates per search epoch after the warm-up, evenly spaced (at most one per step). The official
    # code updates every das_turn = 10 steps, i.e. a count that grows with the data (hundreds per epoch on
    # VQAv2, ~1-5 on a 1k-image task, where the gates then barely move); we fix the count per epoch so the
    # bandit gets the same number of updates whatever the data size. 25 is our choice.
    gate_updates_per_epoch: Annotated[int, Range(ge=1)] = 25
    search_arms: Annotated[int, Range(ge=2)] = 3  # (>= 2 for a reward baseline) distinct k-subsets scored per update (official das_step = 3)
    gate_lr: float = 1.0  # step of the gate update; official code defines lr 0.1 ("1.0 for VQA") but
    # applies the update without it, i.e. an effective 1.0
    reward_batches: Annotated[int, Range(ge=1)] = 1  # fresh validation batches per update (all arms see the same ones); official 1
    reward_eval_mode: bool = True  # score arms with dropout off (official: training mode); our choice,
    # less noisy rewards; on ViLT and METER the official train mode (for_task)
    # the search's lr: the recipe's warm-up and decay over the search's steps (True: the official search, a full
    # training run, DAS repo *_search configs) or constant (False; ours, on the vision kinds)
    search_schedule: bool = False
    reinit_after_search: bool = True  # reset adapters and head after the search (official: separate
    # training run from the pre-trained model); False = keep the search-trained weights

    NEUTRAL: ClassVar[dict[str, Any]] = {**MethodConfig.NEUTRAL, "skip_width": 0.25, "search_schedule": False}

    @classmethod
    def for_task(cls, task: Any, builtin: bool, kind: str | None = None) -> dict[str, Any]:
        """On ViLT / METER the official recipe (``recipe.VLP_RECIPES``); ViLT's lr is the DAS repo's 1e-4
        (ViLT/vilt/config.py ``task_finetune_vqa_randaug``, used by its vqa_train.sh); METER's skip adapters are 96 * 3
        wide (METER/meter/modules/meter_module_train.py, ``ParallelAdapter(bottleneck = 96 * 3)``)."""
        recipe = vlp_recipe(kind, task, lr={"vilt": 1e-4})
        if kind == "vilt":  # the DAS repo's ViLT has no token4classifier (ViLT/vilt/modules/vilt_module*.py)
            recipe["classifier_token"] = False
        if kind in ("vilt", "meter"):  # the official search: a full run (schedule), arms scored in training mode
            recipe.update(search_schedule=True, reward_eval_mode=False)
        return {**recipe, **({"skip_width": 3 / 8} if kind == "meter" else {})}

    def __post_init__(self) -> None:
        if self.skip_blocks is not None:
            self.skip_blocks = tuple(self.skip_blocks)
            if len(set(self.skip_blocks)) != len(self.skip_blocks):
                raise ValueError(f"skip_blocks has duplicates ({self.skip_blocks}); list each block once")
            if len(self.skip_blocks) != self.skip:
                raise ValueError(
                    f"skip_blocks names {len(self.skip_blocks)} blocks but skip={self.skip}; "
                    f"set skip={len(self.skip_blocks)} too"
                )
        if self.search_epochs > 0 and self.search_warmup_epochs >= self.search_epochs:
            raise ValueError(
                f"search_warmup_epochs ({self.search_warmup_epochs}) must be < search_epochs "
                f"({self.search_epochs}) or no gate update happens; e.g. --set search_warmup_epochs=1"
            )


# ------------------------------------------------------------------------------------------ modules


class DASAdapter(MethodModule):
    """``s · Up(ReLU(Down(LN x)))`` (LN optional); the residual is the caller's."""

    def __init__(self, dim: int, bottleneck: int, norm: bool = True, init: str = "normal",
                 scale: float = 1.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()
        inits = dict(down_init="normal", up_init="normal", init_std=0.02) if init == "normal" else \
            dict(down_init="kaiming", up_init="zero")
        self.body = Bottleneck(dim, bottleneck, act="relu", dropout=dropout, scale=scale, **inits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.norm(x))


class SkippedBlock(MethodModule):
    """Stands in for a removed transformer block: ``x + A_skip(x)``."""

    def __init__(self, adapter: DASAdapter) -> None:
        super().__init__()
        self.das_skip = adapter

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x + self.das_skip(x)


class DASState(MethodModule):
    """DAS bookkeeping as buffers: gate logits, the skipped mask, search/commit flags."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.register_buffer("gate", torch.zeros(depth))  # g, π = sigmoid(g)
        self.register_buffer("skipped", torch.zeros(depth, dtype=torch.bool))
        self.register_buffer("searched", torch.zeros((), dtype=torch.bool))
        self.register_buffer("committed", torch.zeros((), dtype=torch.bool))  # skipped blocks removed
        self.register_buffer("gate_updates", torch.zeros((), dtype=torch.long))


def _das_block_forward(self: nn.Module, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """Forward of a not-yet-committed block: skip adapter when skipped, else the branched block."""
    if self.das_skipped:  # python bool, set by set_skipped: no device sync
        return x + self.das_skip(x)
    return self.das_kept_forward(x, *args, **kwargs)


# ------------------------------------------------------------------------------------------ search maths


def sample_skip(pi: torch.Tensor, k: int, generator: torch.Generator | None = None) -> tuple[int, ...]:
    """k distinct block indices ∝ π: successive draws without replacement (``torch.multinomial``)."""
    if k == 0:
        return ()
    return tuple(sorted(torch.multinomial(pi, k, replacement=False, generator=generator).tolist()))


def sample_arms(pi: torch.Tensor, k: int, arms: int, generator: torch.Generator | None = None,
                max_tries: int = 200) -> list[tuple[int, ...]]:
    """Up to ``arms`` distinct k-subsets, each drawn by ``sample_skip`` (redrawn when repeated)."""
    arms = min(arms, math.comb(len(pi), k))
    out: list[tuple[int, ...]] = []
    for _ in range(max_tries * arms):
        s = sample_skip(pi, k, generator)
        if s not in out:
            out.append(s)
            if len(out) == arms:
                break
    return out


def gate_update(gate: torch.Tensor, subsets: Sequence[Sequence[int]], rewards: Sequence[float],
                lr: float) -> torch.Tensor:
    """``g_i += lr · (R_j - mean R) · π_i (1 - π_i)`` for each block i of each subset j (π before)."""
    pi = torch.sigmoid(gate)
    mean = sum(rewards) / len(rewards)
    new = gate.clone()
    for subset, r in zip(subsets, rewards, strict=True):
        for i in subset:
            new[i] += lr * (r - mean) * pi[i] * (1 - pi[i])
    return new


def top_k(gate: torch.Tensor, k: int) -> tuple[int, ...]:
    """The k blocks with the largest gates; ties go to later blocks (the no-search default)."""
    order = sorted(range(len(gate)), key=lambda i: (float(gate[i]), i), reverse=True)
    return tuple(sorted(order[:k]))


# ------------------------------------------------------------------------------------------ model plumbing


class _Blocks:
    """DAS's steps on one kind: its blocks and width (the kind's table) and how a parallel adapter attaches to its
    layer style: beside a pre-norm block's attention and MLP (official ViLT block), or inside a post-LN layer's
    output modules (official METER: A0 inside every attention output's LayerNorm, ``bert_model_PA.BertSelfOutput``;
    A1 after the FFN's, ``BertCrossLayer.feed_forward_chunk``)."""

    def __init__(self, layout: Layout) -> None:
        self.layout, self.bert = layout, layout.layer == "bert"

    def container(self, model: nn.Module):
        return self.layout.blocks(model)

    def dim(self, model: nn.Module) -> int:
        return self.layout.width(model)

    def add_parallel(self, block: nn.Module, make: Callable[[], nn.Module]) -> None:
        if not self.bert:
            add_branches(block, attn_par=make(), mlp_par=make())
            return
        for out in self.layout.attention_outputs(block):
            add_output_branches(out, par_adapter=make())
        for out in self.layout.ffn_outputs(block):
            add_output_branches(out, post_adapter=make())

    def has_parallel(self, block: nn.Module) -> bool:
        if self.bert:
            return output_branch(self.layout.attention_outputs(block)[0], "par_adapter") is not None
        return getattr(block, "attn_par", None) is not None

    def prepare(self, block: nn.Module) -> None:
        """Make the block's own forward the kept-block path (a post-LN layer's adapters live in its output modules)."""
        if not self.bert and not hasattr(block, "attn_par"):
            add_branches(block)  # branch slots = None, branched forward patched


def das_state(model: nn.Module) -> DASState:
    return state_of(model, "das_state", DASState, "das")


def set_skipped(model: nn.Module, skip: Sequence[int]) -> None:
    """Select which (not yet committed) blocks run as skip adapters; updates ``das_state.skipped``."""
    state = das_state(model)
    if bool(state.committed):
        raise RuntimeError("the DAS architecture is already fixed (skipped blocks removed)")
    mask = torch.zeros(len(state.skipped), dtype=torch.bool)
    mask[torch.tensor(list(skip), dtype=torch.long)] = True
    kind = _Blocks(layout_of(model))
    blocks = list(kind.container(model))
    for i, block in enumerate(blocks):  # outside the search only the built architecture is possible
        if not (getattr(block, "das_skip", None) is not None if mask[i] else kind.has_parallel(block)):
            raise ValueError(f"block {i} has no {'skip' if mask[i] else 'parallel'} adapter: "
                             "only the search can change which blocks are skipped")
    state.skipped.copy_(mask)
    for i, block in enumerate(blocks):
        block.das_skipped = bool(mask[i])


class _Factory:
    """Builds adapters for one model from the config (on the model's device/dtype)."""

    def __init__(self, cfg: DASConfig, model: nn.Module) -> None:
        self.cfg, self.kind = cfg, _Blocks(layout_of(model))
        self.dim = self.kind.dim(model)
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype

    def _make(self, r: int) -> DASAdapter:
        c = self.cfg
        m = DASAdapter(self.dim, r, c.adapter_norm, c.adapter_init, c.adapter_scale, c.adapter_dropout)
        return m.to(device=self.device, dtype=self.dtype)

    def parallel(self) -> DASAdapter:
        return self._make(self.cfg.bottleneck or max(1, self.dim // 8))

    def skip(self) -> DASAdapter:
        adapter = self._make(self.cfg.skip_bottleneck or max(1, int(self.dim * self.cfg.skip_width)))
        adapter.lr_group = "base"  # official METER: skip adapters live outside the co-attention layers (base lr)
        return adapter


def _install(block: nn.Module, parallel: bool, skip: bool, make: _Factory) -> None:
    """Give ``block`` the adapters it lacks (parallel A0/A1 and/or the skip adapter) + the DAS forward."""
    kind = make.kind
    if parallel and not kind.has_parallel(block):
        kind.add_parallel(block, make.parallel)
    kind.prepare(block)
    if getattr(block.forward, "__func__", None) is not _das_block_forward:
        # first install, or add_branches re-patched block.forward: keep it as the kept-block path, put DAS's on top
        block.das_kept_forward = block.forward
        block.forward = types.MethodType(_das_block_forward, block)
    if skip and getattr(block, "das_skip", None) is None:
        block.das_skip = make.skip()
    block.das_skipped = getattr(block, "das_skipped", False)


def commit(model: nn.Module) -> None:
    """Make the skipping physical (idempotent): skipped blocks -> ``SkippedBlock``; drop unused adapters."""
    state = das_state(model)
    if bool(state.committed):
        return
    blocks = layout_of(model).blocks(model)
    for i, block in enumerate(list(blocks)):
        if bool(state.skipped[i]):
            blocks[i] = SkippedBlock(block.das_skip)
            continue
        block.forward = block.das_kept_forward  # plain branched block from now on
        for attr in ("das_kept_forward", "das_skipped"):
            delattr(block, attr)
        if getattr(block, "das_skip", None) is not None:
            del block.das_skip
    state.committed.fill_(True)


def skipped_blocks(model: nn.Module) -> tuple[int, ...]:
    return tuple(int(i) for i in das_state(model).skipped.nonzero().flatten().tolist())


# ------------------------------------------------------------------------------------------ method


@register
class DAS(Method):
    name = "das"
    description = "Dynamic Architecture Skipping: bandit-searched block skipping + adapters (Wu et al. 2023)."
    Config = DASConfig
    supports = frozenset({"blocks", "attention_outputs", "ffn_outputs"})

    def _default_skip(self, depth: int) -> tuple[int, ...]:
        cfg: DASConfig = self.cfg  # type: ignore[assignment]
        if cfg.skip_blocks is None:
            return tuple(range(depth - cfg.skip, depth))  # no search: the last k blocks
        return tuple(resolve_indices(cfg.skip_blocks, depth, "skip_blocks"))

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        cfg: DASConfig = self.cfg  # type: ignore[assignment]
        blocks = list(layout.blocks(model))
        if cfg.skip >= len(blocks):
            raise UserError(f"skip={cfg.skip} would remove all {len(blocks)} blocks; use skip < {len(blocks)}")
        skip = self._default_skip(len(blocks))
        model.das_state = DASState(len(blocks)).to(next(model.parameters()).device)
        make = _Factory(cfg, model)
        for i, block in enumerate(blocks):
            _install(block, parallel=i not in skip, skip=i in skip, make=make)
        set_skipped(model, skip)
        return model

    def _searches(self) -> bool:
        cfg: DASConfig = self.cfg  # type: ignore[assignment]
        return cfg.skip > 0 and cfg.search_epochs > 0 and cfg.skip_blocks is None

    def search_cost(self) -> str:
        cfg: DASConfig = self.cfg  # type: ignore[assignment]
        if not self._searches():
            return ""
        return (f"search: {cfg.search_epochs} epochs before training (--set search_epochs=N cuts it; --set "
                "skip_blocks=... skips it)")

    def search(self, model: nn.Module, ctx: SearchContext) -> None:
        cfg: DASConfig = self.cfg  # type: ignore[assignment]
        state = das_state(model)
        if bool(state.committed):
            raise RuntimeError("DAS search after finalize: the skipped blocks are already removed")
        if not self._searches():
            ctx.log("das: no search (skip=0, search_epochs=0 or skip_blocks set); keeping "
                    f"skipped blocks {skipped_blocks(model)}")
            commit(model)
            return
        # sampling generator drawn first from the run's seeded global RNG (reproducible search)
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        k, make = cfg.skip, _Factory(cfg, model)
        for block in make.kind.container(model):  # supernet: every block can be kept or skipped
            _install(block, parallel=True, skip=True, make=make)
        params = [p for p in model.parameters() if p.requires_grad]
        start = [p.detach().clone() for p in params] if cfg.reinit_after_search else None
        opt = ctx.make_optimizer(params)
        sched = ctx.schedule(opt, cfg.search_epochs * ctx.steps_per_epoch) if cfg.search_schedule and ctx.schedule \
            else None
        val = ctx.val_batches()
        step, every = 0, max(1, ctx.steps_per_epoch // cfg.gate_updates_per_epoch)
        for epoch in range(cfg.search_epochs):
            for x, y in ctx.train_batches():
                set_skipped(model, sample_skip(torch.sigmoid(state.gate.float().cpu()), k, gen))
                with ctx.autocast():
                    loss = ctx.loss_fn(model(x), y)
                ctx.step(opt, loss, "DAS search")
                if sched is not None:
                    sched.step()
                step += 1
                if epoch >= cfg.search_warmup_epochs and step % every == 0:
                    self._update_gates(model, ctx, val, gen)
            ctx.log(f"das search epoch {epoch + 1}/{cfg.search_epochs} ({int(state.gate_updates)} gate updates): "
                    "g = " + " ".join(f"{g:+.4f}" for g in state.gate.float().tolist()))
        if int(state.gate_updates) == 0:
            ctx.log(f"das: no gate update in {step} search steps (one every {every} steps); "
                    "the skipped blocks default to the last k")
        chosen = top_k(state.gate.float().cpu(), k)
        state.searched.fill_(True)
        set_skipped(model, chosen)
        if start is not None:
            with torch.no_grad():
                for p, p0 in zip(params, start, strict=True):
                    p.copy_(p0)
        commit(model)
        ctx.log(f"das: skipping blocks {chosen}")

    @torch.no_grad()
    def _update_gates(self, model: nn.Module, ctx: SearchContext, val, gen: torch.Generator) -> None:
        """Score ``search_arms`` distinct k-subsets on fresh validation batch(es); update the gates."""
        cfg: DASConfig = self.cfg  # type: ignore[assignment]
        state = das_state(model)
        gate = state.gate.float().cpu()
        subsets = sample_arms(torch.sigmoid(gate), cfg.skip, cfg.search_arms, gen)
        if len(subsets) < 2:
            return
        batches = [next(val) for _ in range(cfg.reward_batches)]
        rewards = []
        with scoring_mode(model, cfg.reward_eval_mode):
            for s in subsets:
                set_skipped(model, s)
                losses = []
                for xv, yv in batches:
                    with ctx.autocast():
                        losses.append(float(ctx.loss_fn(model(xv), yv)))
                rewards.append(math.exp(-sum(losses) / len(losses)))  # R = exp(-val loss)
        if not all(math.isfinite(r) for r in rewards):
            ctx.log("das: non-finite validation loss, gate update skipped")
            return
        state.gate.copy_(gate_update(gate, subsets, rewards, cfg.gate_lr).to(state.gate))
        state.gate_updates += 1

    def finalize(self, model: nn.Module) -> nn.Module:
        commit(model)
        return model

    def stats(self, model: nn.Module) -> dict[str, Any]:
        state = das_state(model)
        gate = state.gate.float().cpu()
        return {
            "das_skipped_blocks": list(skipped_blocks(model)),
            "das_searched": bool(state.searched),
            "das_gate_updates": int(state.gate_updates),
            "das_gate_logits": [round(v, 6) for v in gate.tolist()],
            "das_gate_probs": [round(v, 6) for v in torch.sigmoid(gate).tolist()],
        }
