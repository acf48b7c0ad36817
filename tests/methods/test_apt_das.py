"""APT and DAS: module maths, exact parameter anchors, the DAS search (sampling, gate update,
fixing and physically removing skipped blocks), and that training touches only method params + head."""

from __future__ import annotations

import itertools
import math
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from petlbench.engine.build import build, make_method
from petlbench.errors import UserError
from petlbench.methods.apt import APTCore
from petlbench.methods.base import SearchContext
from petlbench.methods.das import (
    SkippedBlock,
    das_state,
    gate_update,
    sample_arms,
    sample_skip,
    set_skipped,
    top_k,
)
from petlbench.models import measure
from petlbench.models.backbones import create_backbone

IMG = 32  # test_vit at 32x32: 4 patches + CLS, d=64, 6 blocks


def tiny(method: str, overrides: dict | None = None, num_classes: int = 3):
    torch.manual_seed(0)
    m = make_method(method, overrides)
    built = build(m, "test_vit", num_classes, pretrained=False, img_size=IMG)
    model, total = built.model, built.backbone_total
    return m, model, total


def apt_reference(core: APTCore, x: torch.Tensor, attn_out: torch.Tensor, stopgrad: bool = True) -> torch.Tensor:
    """The spec's formula written out (dropout off)."""
    p_tilde = core.prompt + core.prompt @ core.w1 @ core.w2
    a = torch.relu(x @ p_tilde.T)
    e = a @ core.prompt
    m = a.max(dim=-1, keepdim=True).values
    m = m.detach() if stopgrad else m
    return (attn_out + m * e) * torch.exp(core.log_scale)


# ------------------------------------------------------------------------------------------ APT


def test_apt_core_shapes_init_and_formula():
    torch.manual_seed(0)
    core = APTCore(dim=16, num_prompts=5, rank=2, dropout=0.1).eval()
    assert core.prompt.shape == (5, 16) and core.w1.shape == (16, 2) and core.w2.shape == (2, 16)
    assert float(core.log_scale.detach()) == 0.0 and core.log_scale.shape == ()  # s starts at 0
    assert torch.count_nonzero(core.w2) == 0 and torch.equal(core.prompt_keys(), core.prompt)
    assert 0.01 < float(core.prompt.detach().std()) < 0.03 and 0.7 < float(core.w1.detach().std()) < 1.3
    with torch.no_grad():
        core.w2.normal_()
        core.log_scale.fill_(0.3)
    x, attn_out = torch.randn(2, 7, 16), torch.randn(2, 7, 16)
    out = core(x, attn_out)
    assert out.shape == (2, 7, 16)
    torch.testing.assert_close(out, apt_reference(core, x, attn_out))
    assert not torch.allclose(out, attn_out * math.exp(0.3))  # not identity at init (by design)


def test_apt_max_term_carries_no_gradient():
    torch.manual_seed(1)
    core = APTCore(dim=16, num_prompts=6, rank=3).eval()
    with torch.no_grad():
        core.w2.normal_()
    x0, attn_out = torch.randn(2, 5, 16), torch.randn(2, 5, 16)

    def grads(fn):
        x = x0.clone().requires_grad_(True)
        core.zero_grad()
        fn(x).square().sum().backward()
        return x.grad, core.prompt.grad.clone(), core.w1.grad.clone()

    ours = grads(lambda x: core(x, attn_out))
    same = grads(lambda x: apt_reference(core, x, attn_out, stopgrad=True))
    other = grads(lambda x: apt_reference(core, x, attn_out, stopgrad=False))
    for a, b in zip(ours, same, strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(ours[0], other[0])  # without stop-gradient the input gradient differs
    assert not torch.allclose(ours[2], other[2])  # ... and so does W1's (m's path through P~)


def test_apt_anchor_vit_base():
    m = make_method("apt", {"num_prompts": 200, "rank": 4})
    torch.manual_seed(0)
    built = build(m, "vit_base_patch16_224", 100, pretrained=False)
    model, total = built.model, built.backbone_total
    counts = measure.param_counts(model, total)
    assert counts["params_trainable_excl_head"] == 1_916_940
    assert counts["params_added"] == 1_916_940
    assert sum(p.numel() for p in model.blocks[0].attn.apt.parameters()) == 159_745  # p·d + 2·d·r + 1


def test_apt_layers_names_and_errors():
    _, model, _ = tiny("apt", {"layers": (0, -1), "num_prompts": 4, "rank": 2})
    assert [i for i, b in enumerate(model.blocks) if hasattr(b.attn, "apt")] == [0, 5]
    base, _ = create_backbone("test_vit", 3, pretrained=False, img_size=IMG)
    names = set(dict(model.named_parameters()))
    assert set(dict(base.named_parameters())) <= names  # backbone names unchanged
    assert "blocks.0.attn.apt.prompt" in names and "blocks.5.attn.apt.log_scale" in names
    assert model(torch.randn(2, 3, IMG, IMG)).shape == (2, 3)
    with pytest.raises(UserError, match="out of range"):
        tiny("apt", {"layers": (6,)})
    with pytest.raises(UserError):
        make_method("apt", {"rank": 0})


# ------------------------------------------------------------------------------------------ DAS maths


def test_das_gate_update_formula():
    gate = torch.tensor([0.0, 1.0, -1.0, 0.5])
    subsets, rewards, lr = [(0, 1), (1, 2), (3, 0)], [0.5, 0.2, 0.8], 0.7
    s = [1 / (1 + math.exp(-g)) for g in gate.tolist()]
    d = [r - 0.5 for r in rewards]  # mean R = 0.5
    expected = [
        0.0 + lr * (d[0] + d[2]) * s[0] * (1 - s[0]),
        1.0 + lr * (d[0] + d[1]) * s[1] * (1 - s[1]),
        -1.0 + lr * d[1] * s[2] * (1 - s[2]),
        0.5 + lr * d[2] * s[3] * (1 - s[3]),
    ]
    torch.testing.assert_close(gate_update(gate, subsets, rewards, lr), torch.tensor(expected))
    assert top_k(torch.tensor([0.2, 0.9, 0.9, -1.0]), 2) == (1, 2)
    assert top_k(torch.zeros(6), 2) == (4, 5)  # ties -> later blocks (the no-search default)


def test_das_sampling_respects_pi():
    pi = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.6])
    gen = torch.Generator().manual_seed(0)
    n = 10000
    counts = torch.zeros(5)
    for _ in range(n):
        counts[list(sample_skip(pi, 1, gen))] += 1
    torch.testing.assert_close(counts / n, pi / pi.sum(), atol=0.015, rtol=0)
    # k=2, successive draws without replacement: P(i in S) = q_i + sum_j q_j q_i / (1 - q_j), q = π/Σπ
    q = (pi / pi.sum()).tolist()
    incl = torch.tensor([q[i] + sum(q[j] * q[i] / (1 - q[j]) for j in range(5) if j != i) for i in range(5)])
    counts.zero_()
    for _ in range(n):
        s = sample_skip(pi, 2, gen)
        assert len(set(s)) == 2
        counts[list(s)] += 1
    torch.testing.assert_close(counts / n, incl, atol=0.015, rtol=0)
    arms = sample_arms(pi, 2, 3, gen)
    assert len(arms) == 3 and len(set(arms)) == 3
    assert len(sample_arms(pi, 4, 9, gen)) == 5  # only C(5, 4) distinct subsets exist


# ------------------------------------------------------------------------------------------ DAS model


def _adapter_params(d: int, r: int) -> int:
    return 2 * d + (d * r + r) + (r * d + d)  # LayerNorm + Down + Up


def test_das_default_architecture_counts_and_commit():
    m, model, total = tiny("das", {"skip": 1})
    counts = measure.param_counts(model, total)
    # 5 kept blocks x 2 parallel adapters (64 -> 8) + 1 skip adapter (64 -> 16) on the last block
    assert counts["params_trainable_excl_head"] == 10 * _adapter_params(64, 8) + _adapter_params(64, 16)
    x = torch.randn(2, 3, IMG, IMG)
    model.eval()
    before = model(x)
    model = m.finalize(model)
    assert isinstance(model.blocks[5], SkippedBlock)
    assert not any(isinstance(b, SkippedBlock) for b in list(model.blocks)[:5])
    torch.testing.assert_close(model(x), before)  # removing the block does not change the function
    assert measure.param_counts(model, total)["params_trainable_excl_head"] == counts["params_trainable_excl_head"]
    st = m.stats(model)
    assert st["das_skipped_blocks"] == [5] and st["das_searched"] is False
    base, _ = create_backbone("test_vit", 3, pretrained=False, img_size=IMG)
    assert measure.gmacs(model, (3, IMG, IMG)) < measure.gmacs(base, (3, IMG, IMG))


def test_das_skipped_block_is_not_executed():
    m, model, _ = tiny("das", {"skip": 1, "skip_blocks": (2,)})
    calls: dict[str, int] = {}
    originals = list(model.blocks)
    for i, b in enumerate(originals):
        for part in ("attn", "mlp"):
            getattr(b, part).register_forward_hook(lambda *_, key=f"{i}.{part}": calls.__setitem__(key, calls.get(key, 0) + 1))
    x = torch.randn(2, 3, IMG, IMG)
    model(x)
    assert "2.attn" not in calls and "2.mlp" not in calls
    assert calls["1.attn"] == 1 and calls["3.mlp"] == 1
    m.finalize(model)
    assert isinstance(model.blocks[2], SkippedBlock) and originals[2] not in list(model.modules())
    calls.clear()
    model(x)
    assert "2.attn" not in calls and "2.mlp" not in calls and calls["4.attn"] == 1


@pytest.mark.parametrize("method,overrides,marker", [
    ("apt", {"num_prompts": 4, "rank": 2, "dropout": 0.0}, ("apt.",)),
    ("das", {"skip": 2}, ("attn_par.", "mlp_par.", "das_skip.")),
])
def test_only_method_params_and_head_change(method, overrides, marker):
    _, model, _ = tiny(method, overrides)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    model.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x, y = torch.randn(4, 3, IMG, IMG, generator=g), torch.randint(0, 3, (4,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    allowed = {k for k in changed if k.startswith("head.") or any(s in k for s in marker)}
    assert changed == allowed, sorted(changed - allowed)
    assert any(k.startswith("head.") for k in changed) and len(changed - {"head.weight", "head.bias"}) > 0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("head.") or any(s in n for s in marker) for n in trainable)


def _ctx(num_classes: int = 3, n_train: int = 4, loss_fn=F.cross_entropy) -> SearchContext:
    g = torch.Generator().manual_seed(1)
    train = [(torch.randn(4, 3, IMG, IMG, generator=g), torch.randint(0, num_classes, (4,), generator=g))
             for _ in range(n_train)]

    def val():
        vg = torch.Generator().manual_seed(2)
        while True:  # endless, a fresh batch each time
            yield torch.randn(4, 3, IMG, IMG, generator=vg), torch.randint(0, num_classes, (4,), generator=vg)

    return SearchContext(
        train_batches=lambda: iter(train), val_batches=val, device=torch.device("cpu"), loss_fn=loss_fn,
        autocast=nullcontext, make_optimizer=lambda ps: torch.optim.AdamW(ps, lr=1e-2),
        steps_per_epoch=n_train, log=lambda s: None,
    )


def test_das_search_fixes_k_blocks():
    overrides = {"skip": 2, "search_epochs": 2, "search_warmup_epochs": 1, "gate_updates_per_epoch": 1000}
    m, model, total = tiny("das", overrides)
    head0 = model.head.weight.detach().clone()
    model.train()
    m.search(model, _ctx())
    st = m.stats(model)
    chosen = st["das_skipped_blocks"]
    assert st["das_searched"] is True and st["das_gate_updates"] == 4  # epoch 2, every step
    assert len(chosen) == 2 and tuple(chosen) == top_k(torch.tensor(st["das_gate_logits"]), 2)
    assert any(v != 0 for v in st["das_gate_logits"])
    assert [i for i, b in enumerate(model.blocks) if isinstance(b, SkippedBlock)] == chosen  # physical
    assert bool(das_state(model).committed)
    # final architecture: parallel adapters on the 4 kept blocks, skip adapters on the 2 skipped ones
    expected = 8 * _adapter_params(64, 8) + 2 * _adapter_params(64, 16)
    assert measure.param_counts(model, total)["params_trainable_excl_head"] == expected
    assert torch.equal(model.head.weight, head0)  # reinit_after_search restores the head
    assert model(torch.randn(2, 3, IMG, IMG)).shape == (2, 3)
    assert m.finalize(model) is model and m.stats(model)["das_skipped_blocks"] == chosen
    with pytest.raises(RuntimeError):
        m.search(model, _ctx())


def test_das_search_gate_update_on_deterministic_reward():
    """Reward depends only on which blocks are skipped: the gates must follow the formula exactly."""
    cfg = {"skip": 1, "search_epochs": 2, "search_warmup_epochs": 1, "gate_updates_per_epoch": 2, "search_arms": 3}
    m, model, _ = tiny("das", cfg)
    state = das_state(model)

    def loss_fn(logits, y):  # block i skipped -> loss 0.1·i (plus a zero-valued graph link)
        return 0.1 * float(state.skipped.float().argmax()) + 0.0 * logits.sum()

    torch.manual_seed(5)
    gen_seed = int(torch.randint(0, 2**62, (1,)))
    torch.manual_seed(5)
    model.train()
    m.search(model, _ctx(loss_fn=loss_fn))
    # replay: 4 train steps per epoch, updates at steps 6 and 8 (epoch 2); each step draws 1 block first
    gen, gate = torch.Generator().manual_seed(gen_seed), torch.zeros(6)
    for step in range(1, 9):
        sample_skip(torch.sigmoid(gate), 1, gen)
        if step > 4 and step % 2 == 0:
            arms = sample_arms(torch.sigmoid(gate), 1, 3, gen)
            gate = gate_update(gate, arms, [math.exp(-0.1 * a[0]) for a in arms], 1.0)
    torch.testing.assert_close(state.gate, gate)
    assert int(state.gate_updates) == 2
    assert m.stats(model)["das_skipped_blocks"] == list(top_k(gate, 1))


def test_das_config_errors():
    for bad in ({"search_arms": 1}, {"skip": -1}, {"skip_blocks": (1, 2)}, {"search_warmup_epochs": 3}):
        with pytest.raises(UserError):
            make_method("das", bad)
    with pytest.raises(UserError, match="skip"):
        tiny("das", {"skip": 6})


def test_das_supernet_covers_all_subsets():
    """During the search every block can be skipped or kept, and the forward follows ``set_skipped``."""
    m, model, _ = tiny("das", {"skip": 2, "search_epochs": 1, "search_warmup_epochs": 0})
    from petlbench.methods.das import _Factory, _install

    make = _Factory(m.cfg, model)
    for b in model.blocks:
        _install(b, parallel=True, skip=True, make=make)
    x = torch.randn(1, 3, IMG, IMG)
    model.eval()
    outs = {}
    for s in itertools.combinations(range(6), 2):
        set_skipped(model, s)
        outs[s] = model(x)
    assert len({tuple(o.flatten().tolist()) for o in outs.values()}) == len(outs)  # all architectures differ


def test_das_cannot_switch_blocks_outside_search():
    _, model, _ = tiny("das", {"skip": 1})
    with pytest.raises(ValueError, match="only the search"):
        set_skipped(model, (0,))  # block 0 was built as a kept block (no skip adapter)


@pytest.mark.integration  # the search stage of a run on a full built-in task (800 training images, 3 search epochs)
def test_das_default_search_moves_the_gates_on_a_built_in_task():
    """With its default search budget DAS makes enough gate updates on a 1k-image-style task to move them: the
    run's own search stage (the loop's, on the run's model and splits), without the training after it."""
    from petlbench.config.options import RunConfig
    from petlbench.data import cache as datacache
    from petlbench.data import diskcache
    from petlbench.datasets import load_data
    from petlbench.engine.build import prepare_run
    from petlbench.engine.loop import Reporter, Runtime, _Loop
    from petlbench.engine.runner import seed_everything

    raw = load_data("shapes-ori")
    p = prepare_run(RunConfig(method="das", dataset="shapes-ori", device="cpu", precision="fp32"), raw)
    splits = raw.prepare(p.built.family.data_config(p.built.model))
    splits = datacache.cache_splits(splits, p.identity["data"], diskcache.cache_dir())  # decoded once, as run_one
    seed_everything(p.cfg.seed)
    loop = _Loop(p.built, p.method, splits, Runtime(frozen_backbone_mode=p.cfg.frozen_backbone_mode), Reporter())
    loop.search()
    stats = p.method.stats(p.built.model)
    assert loop.out.status == "ok" and stats["das_searched"]
    # 50 steps per epoch, 2 search epochs after the warm-up epoch, 25 updates each
    assert stats["das_gate_updates"] == 50
    assert max(stats["das_gate_logits"]) - min(stats["das_gate_logits"]) > 0.1
