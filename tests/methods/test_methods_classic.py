"""VPT, adapters (Houlsby/Pfeiffer), AdaptFormer, LoRA, BitFit: paper anchors and behaviour.

ViT-B/16 anchors are built on the ``meta`` device (no memory, no init cost; parameter counts and
FlopCounterMode MACs are exact there); one end-to-end ``inspect`` call checks the same path on CPU.
Behaviour tests use timm's ``test_vit`` at 32 px.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from petlbench.engine.build import build, inspect, make_method
from petlbench.engine.loop import set_train_mode
from petlbench.engine.runner import seed_everything
from petlbench.methods.base import MethodModule
from petlbench.models import measure
from petlbench.models.backbones import create_backbone
from petlbench.tracks import apply_method

from ..conftest import TINY

VIT_B = "vit_base_patch16_224"
D, L = 768, 12


def _vit_b(name: str, overrides: dict | None = None, finalize: bool = False):
    """Random-init ViT-B/16 (100 classes) on meta with the method applied -> (method, model, backbone total)."""
    method = make_method(name, overrides)
    model, _ = create_backbone(VIT_B, 100, pretrained=False, device="meta")
    total = sum(p.numel() for p in model.parameters())
    model = apply_method(method, model)
    if finalize:
        model = method.finalize(model)
    return method, model, total


def _macs_vit_b(model: nn.Module) -> float:
    return measure.gmacs(model, (3, 224, 224))


def _analytic_gmacs(tokens: int, extra_per_block: int = 0) -> float:
    """ViT-B/16 MACs: patch embedding + L·(12·N·d² + 2·N²·d) + head (FlopCounterMode counts matmuls only)."""
    block = 12 * tokens * D * D + 2 * tokens * tokens * D + extra_per_block
    return (196 * D * (3 * 16 * 16) + L * block + D * 100) / 1e9


@pytest.fixture(scope="module")
def base_gmacs() -> float:
    _, model, _ = _vit_b("linear")
    return _macs_vit_b(model)


# ----------------------------------------------------------------------------- ViT-B/16 anchors

ANCHORS = [
    ("vpt", {"num_tokens": 10, "deep": True}, 92_160),
    ("vpt", {"num_tokens": 100, "deep": False}, 76_800),
    ("adapter", {"style": "houlsby", "bottleneck": 8}, 313_536),
    ("adapter", {"style": "pfeiffer", "bottleneck": 8}, 156_768),
    ("adaptformer", {"bottleneck": 8}, 156_768),
    ("adaptformer", {"bottleneck": 64}, 1_189_632),
    ("lora", {"rank": 8, "targets": "qkv"}, 294_912),
    ("lora", {"rank": 8, "targets": "q,v"}, 294_912),
    ("bitfit", {}, 102_912),
]


@pytest.mark.parametrize(("name", "overrides", "expected"), ANCHORS, ids=[f"{a[0]}-{a[1]}" for a in ANCHORS])
def test_vit_b_trainable_params_excl_head(name, overrides, expected):
    _, model, total = _vit_b(name, overrides)
    counts = measure.param_counts(model, total)
    assert counts["params_trainable_excl_head"] == expected
    assert counts["params_trainable"] == expected + D * 100 + 100  # + head


def test_vit_b_baseline_gmacs(base_gmacs):
    assert base_gmacs == pytest.approx(_analytic_gmacs(197), abs=1e-9)
    assert base_gmacs == pytest.approx(17.56, abs=0.01)  # spec: ~17.6 GMACs at 224


def test_vit_b_vpt50_gmacs(base_gmacs):
    _, model, _ = _vit_b("vpt", {"num_tokens": 50, "deep": False})
    g = _macs_vit_b(model)
    # 197 -> 247 tokens: linear layers x1.254, attention maps x1.572 -> 22.22 GMACs (spec: ~22.2), ratio 1.265
    assert g == pytest.approx(_analytic_gmacs(247), abs=1e-9)
    assert g == pytest.approx(22.2, abs=0.05)
    assert g / base_gmacs == pytest.approx(1.25, abs=0.02)


@pytest.mark.parametrize("targets", ["qkv", "q,v"])
def test_vit_b_merged_lora_gmacs_equal_base(base_gmacs, targets):
    _, model, _ = _vit_b("lora", {"targets": targets}, finalize=True)
    assert _macs_vit_b(model) == base_gmacs


def test_vit_b_adaptformer_gmacs_overhead(base_gmacs):
    _, model, _ = _vit_b("adaptformer", {"bottleneck": 8})
    g = _macs_vit_b(model)
    assert g == pytest.approx(_analytic_gmacs(197, extra_per_block=197 * 2 * D * 8), abs=1e-9)
    assert 1.0 < g / base_gmacs < 1.005


def test_inspect_end_to_end_lora_tiny():
    r = inspect("lora", TINY["model"], 5, img_size=TINY["img_size"], overrides={"rank": 8})
    assert r["params_trainable_excl_head"] == 4 * 64 * 8 * 6  # 4·d·r per block, test_vit: d=64, 6 blocks
    assert r["gmacs"] == r["gmacs_backbone"] and r["gmacs_ratio"] == 1.0


@pytest.mark.slow
def test_inspect_end_to_end_lora():
    """The anchors above through ``inspect`` on CPU (~10-20 s: two random-init ViT-B/16 and two 224 forwards)."""
    r = inspect("lora", VIT_B, 100, overrides={"rank": 8})
    assert r["params_trainable_excl_head"] == 294_912
    assert r["gmacs"] == r["gmacs_backbone"] and r["gmacs_ratio"] == 1.0


# ----------------------------------------------------------------------------- behaviour on test_vit


def _tiny(name: str, overrides: dict | None = None, seed: int = 0, **timm_kwargs):
    seed_everything(seed)
    method = make_method(name, overrides)
    kwargs = {"img_size": TINY["img_size"], **timm_kwargs}
    model = build(method, TINY["model"], TINY["num_classes"], pretrained=False, **kwargs).model
    return method, model


def _frozen_tiny(seed: int = 0, **timm_kwargs) -> nn.Module:
    seed_everything(seed)
    kwargs = {"img_size": TINY["img_size"], **timm_kwargs}
    return create_backbone(TINY["model"], TINY["num_classes"], pretrained=False, **kwargs)[0].eval()


def _x(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, TINY["img_size"], TINY["img_size"], generator=torch.Generator().manual_seed(seed))


def _train(method, model: nn.Module, steps: int = 3) -> None:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(1, steps + 1):
        set_train_mode(model, "eval")
        x = _x(seed=step)
        y = torch.arange(4) % TINY["num_classes"]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.on_step(model, step, steps)


def _in_method_module(model: nn.Module) -> set[str]:
    """Names of parameters owned by (or inside) a MethodModule."""
    names = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, MethodModule):
            names |= {f"{mname}.{n}" for n, _ in mod.named_parameters()}
    return names


CONFIGS = [
    ("vpt", {"deep": True}),
    ("vpt", {"deep": False, "num_tokens": 5}),
    ("adapter", {"style": "houlsby"}),
    ("adapter", {"style": "pfeiffer"}),
    ("adaptformer", {"bottleneck": 8}),
    ("lora", {"targets": "qkv"}),
    ("lora", {"targets": "q,v"}),
    ("bitfit", {}),
]


@pytest.mark.parametrize(("name", "overrides"), CONFIGS, ids=[f"{c[0]}-{c[1]}" for c in CONFIGS])
def test_only_method_params_and_head_change(name, overrides):
    method, model = _tiny(name, overrides)
    head = {f"head.{n}" for n, _ in model.get_classifier().named_parameters()}
    ours = _in_method_module(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if name == "bitfit":  # structural: exactly the modules' own biases (incl. LayerNorm) + head
        biases = {f"{m}.bias" if m else "bias" for m, mod in model.named_modules()
                  if isinstance(mod._parameters.get("bias"), nn.Parameter)}
        assert trainable == biases | head
        assert any(".norm1.bias" in n for n in trainable) and "norm.bias" in trainable
    else:  # the method's own parameters (inside MethodModules, minus the frozen wrapped base) + head
        assert trainable - head <= ours and trainable - head
    _train(method, model)
    for n, p in model.named_parameters():
        if n in trainable:
            assert not torch.equal(p, before[n]), f"{n} did not train"
        else:
            assert torch.equal(p, before[n]), f"frozen {n} changed"


@pytest.mark.parametrize(("name", "overrides"), [
    ("lora", {"targets": "qkv"}), ("lora", {"targets": "q,v"}), ("adaptformer", {}),
    ("adapter", {"style": "houlsby"}), ("adapter", {"style": "pfeiffer"}),
])
def test_identity_at_init(name, overrides):
    base = _frozen_tiny()
    _, model = _tiny(name, overrides)
    model.eval()
    x = _x()
    with torch.no_grad():
        assert torch.equal(model(x), base(x))
        set_train_mode(model, "eval")  # adapter dropout active: still exact (zero up-projection)
        assert torch.equal(model(x), base(x))


@pytest.mark.parametrize("targets", ["qkv", "q,v"])
def test_lora_merge_matches_and_costs_the_base(targets):
    method, model = _tiny("lora", {"targets": targets, "rank": 4})
    _train(method, model)
    assert any(b.abs().sum() > 0 for n, b in model.named_parameters() if "lora_B" in n)
    model.eval()
    x = _x(seed=9)
    with torch.no_grad():
        unmerged = model(x)
        model = method.finalize(model)
        model.eval()
        merged = model(x)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, MethodModule) for m in model.modules())
    assert all(type(b.attn.qkv) is nn.Linear and not b.attn.qkv.weight.requires_grad for b in model.blocks)
    base = _frozen_tiny()
    assert set(model.state_dict()) == set(base.state_dict())
    size = (3, TINY["img_size"], TINY["img_size"])
    assert measure.gmacs(model, size) == measure.gmacs(base, size)


def test_lora_qv_leaves_k_untouched():
    method, model = _tiny("lora", {"targets": "q,v"})
    _train(method, model)
    qkv = model.blocks[0].attn.qkv
    w0 = qkv.weight.detach().clone()
    d = w0.shape[1]
    merged = qkv.merged().weight
    assert torch.equal(merged[d:2 * d], w0[d:2 * d])
    assert not torch.equal(merged[:d], w0[:d]) and not torch.equal(merged[2 * d:], w0[2 * d:])


def _block_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    hooks = [b.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone())) for b in model.blocks]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    assert out.shape == (x.shape[0], TINY["num_classes"])
    return seen


@pytest.mark.parametrize("deep", [True, False])
def test_vpt_prompt_sets_and_slots(deep):
    p = 3
    _, model = _tiny("vpt", {"num_tokens": p, "deep": deep})
    n_blocks, d = len(model.blocks), model.embed_dim
    prompts = model.vpt.prompts
    assert prompts.shape == ((n_blocks if deep else 1), p, d)
    v = (6 / (3 * 16 * 16 + d)) ** 0.5
    assert prompts.abs().max() <= v and prompts.abs().max() > 0.5 * v  # VPT uniform(-v, v)
    model.eval()
    x = _x()
    inputs = _block_inputs(model, x)
    n_tokens = 1 + (TINY["img_size"] // 16) ** 2
    for i, h in enumerate(inputs):
        assert h.shape == (4, n_tokens + p, d)  # [CLS, P, patches]
        slot = h[:, 1:1 + p]
        if deep or i == 0:
            assert torch.equal(slot, prompts[i].expand_as(slot))  # fresh set i (no pos-emb)
        else:
            assert not torch.equal(slot, prompts[0].expand_as(slot))  # shallow: prompts flow through
    with torch.no_grad():
        feats = model.forward_features(x)
    assert feats.shape == (4, n_tokens, d)  # prompt outputs dropped before pooling


def test_vpt_avg_pool_excludes_prompts():
    # with global_pool='avg' the head averages forward_features' patch tokens, from which prompts are gone
    _, model = _tiny("vpt", {"num_tokens": 4, "deep": True}, global_pool="avg")
    model.eval()
    x = _x()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert torch.equal(model.forward_head(feats), model(x))
        manual = model.head(model.fc_norm(feats[:, model.num_prefix_tokens:].mean(1)))
    torch.testing.assert_close(model(x), manual)


def test_vpt_deepcopy_keeps_prompts_bound():
    _, model = _tiny("vpt", {"deep": True})
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.vpt.prompts.add_(1.0)
        model.eval()
        clone.eval()
        assert not torch.equal(model(_x()), clone(_x()))


@pytest.mark.parametrize("style", ["houlsby", "pfeiffer"])
def test_adapter_init_not_degenerate(style):
    _, model = _tiny("adapter", {"style": style})
    adapters = [m for m in model.modules() if isinstance(m, MethodModule)]
    assert len(adapters) == len(model.blocks) * (2 if style == "houlsby" else 1)
    for a in adapters:
        assert a.down.weight.abs().sum() > 0 and a.down.weight.std() > 0
        assert not a.up.weight.any() and not a.up.bias.any() and not a.down.bias.any()
    places = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, MethodModule)}
    assert places == ({"attn_seq", "mlp_seq"} if style == "houlsby" else {"mlp_seq"})


def test_adaptformer_branch_reads_pre_norm_stream():
    # x -> x + MLP(LN2 x) + s·Up(ReLU(Down x)): with a nonzero Up the branch output must be s·Up(ReLU(Down x))
    _, model = _tiny("adaptformer", {"bottleneck": 8, "dropout": 0.0})
    blk = model.blocks[0]
    torch.nn.init.normal_(blk.mlp_par.up.weight)
    x = torch.randn(2, 5, model.embed_dim)
    model.eval()
    with torch.no_grad():
        y = blk(x)
        h = x + blk.attn(blk.norm1(x))
        expected = h + blk.mlp(blk.norm2(h)) + 0.1 * blk.mlp_par.up(torch.relu(blk.mlp_par.down(h)))
    torch.testing.assert_close(y, expected)
    assert blk.mlp_par.scale == 0.1


def test_config_validation_messages():
    for name, bad in [("lora", {"targets": "qk"}), ("adapter", {"style": "x"}), ("vpt", {"num_tokens": 0}),
                      ("adaptformer", {"bottleneck": 0})]:
        with pytest.raises(Exception, match="--set"):
            make_method(name, bad)


def test_bitfit_supports_cnn():
    from petlbench.tracks import supported_kinds

    method = make_method("bitfit")
    assert "cnn" in supported_kinds(method.supports)
    seed_everything(0)
    model = build(method, "test_resnet", 5, pretrained=False).model
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.endswith(".bias") or n.startswith(("fc.", "head")) for n in names)
