"""LION: equilibrium solvers, implicit / phantom gradients, lottery-ticket pruning, hooks."""

from __future__ import annotations

import json

import pytest
import torch

from petlbench.engine.build import build, make_method
from petlbench.errors import UserError
from petlbench.methods._deq import SolverSpec, equilibrium, solve
from petlbench.methods.lion import InputImplicit, LionConfig, OutputImplicit, PrunableWeight
from petlbench.models import measure


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: a single intra-op thread is faster and immune to a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(name: str = "test_vit", **overrides):
    torch.manual_seed(0)
    method = make_method("lion", overrides)
    kwargs = {"img_size": 32} if name == "test_vit" else {}
    built = build(method, name, 10, pretrained=False, **kwargs)
    model, backbone_total = built.model, built.backbone_total
    return method, model, backbone_total


@pytest.mark.parametrize("solver", ["anderson", "iter"])
@pytest.mark.parametrize("backbone", ["test_vit", "test_resnet"])
def test_forward_solve_reaches_tolerance(solver: str, backbone: str) -> None:
    method, model, _ = _tiny(backbone, solver=solver, tol=1e-5, max_iter=200)
    x = torch.randn(3, 3, 32, 32)
    out = model(x)
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    model.eval()
    with torch.no_grad():
        model(x)
    st = method.stats(model)
    json.dumps(st)  # goes to the run's method_stats JSON
    for layer in ("input", "output"):
        for which in ("train", "eval"):
            s = st[layer][which]
            assert s["calls"] == 1 and s["residual_max"] < 1e-5 and 1 <= s["iters_max"] < 200
        assert st[layer]["backward"]["calls"] == 1


def test_anderson_beats_iteration_on_a_slow_contraction() -> None:
    torch.manual_seed(0)
    a = torch.randn(6, 6, dtype=torch.float64)
    a = 0.97 * a / torch.linalg.matrix_norm(a, ord=2)  # contraction factor 0.97
    b = torch.randn(2, 6, dtype=torch.float64)

    def f(z):
        return torch.tanh(z @ a.T + b)

    spec = SolverSpec(solver="iter", max_iter=2000, tol=1e-10)
    z_it, info_it = solve(f, torch.zeros_like(b), spec)
    z_aa, info_aa = solve(f, torch.zeros_like(b), SolverSpec(solver="anderson", max_iter=2000, tol=1e-10))
    assert info_it.residual < 1e-10 and info_aa.residual < 1e-10
    assert info_aa.iters < info_it.iters
    torch.testing.assert_close(z_aa, z_it, atol=1e-8, rtol=0)
    exact = SolverSpec(solver="iter", max_iter=7, tol=0.0)  # tol 0: exactly max_iter evaluations
    assert solve(f, torch.zeros_like(b), exact)[1].iters == 7


def _layer_grads(layer: torch.nn.Module, x: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
    layer.zero_grad()
    (layer(x) * c).sum().backward()
    return {n: p.grad.clone() for n, p in layer.named_parameters()}


@pytest.mark.parametrize("solver", ["anderson", "iter"])
def test_implicit_gradient_matches_unrolled_and_finite_differences(solver: str) -> None:
    torch.manual_seed(0)
    base = dict(solver=solver, max_iter=500, tol=1e-13, out_rank=4, in_channels=4, gn_groups=2, lipschitz=0.8,
                layer_grad_clip=0.0)  # exact gradients: no clipping
    layers = {}
    for grad in ("implicit", "unrolled"):
        cfg = LionConfig(grad=grad, **base)
        torch.manual_seed(1)
        out = OutputImplicit(cfg, 6).double()
        inp = InputImplicit(cfg, 2).double()
        with torch.no_grad():  # leave the identity-at-init point so every parameter gets a gradient
            out.scale.fill_(0.7)
            inp.proj.weight.normal_()
        layers[grad] = (out, inp)
    h, c_h = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    x, c_x = torch.randn(2, 2, 5, 5, dtype=torch.float64), torch.randn(2, 2, 5, 5, dtype=torch.float64)
    for i, (inputs, target) in enumerate(((h, c_h), (x, c_x))):
        g_imp = _layer_grads(layers["implicit"][i], inputs, target)
        g_unr = _layer_grads(layers["unrolled"][i], inputs, target)
        assert layers["implicit"][i].stat_backward[2] < 1e-12  # the adjoint solve converged
        for n in g_imp:
            torch.testing.assert_close(g_imp[n], g_unr[n], rtol=1e-9, atol=1e-11, msg=n)
        # central finite differences on a few entries of every parameter
        layer = layers["implicit"][i]
        eps = 1e-6
        for n, p in layer.named_parameters():
            for j in range(min(3, p.numel())):
                flat = p.data.view(-1)
                old = flat[j].item()
                with torch.no_grad():
                    flat[j] = old + eps
                    up = (layer(inputs) * target).sum().item()
                    flat[j] = old - eps
                    down = (layer(inputs) * target).sum().item()
                    flat[j] = old
                fd = (up - down) / (2 * eps)
                assert abs(fd - g_imp[n].view(-1)[j].item()) <= 1e-6 * max(1.0, abs(fd)), (n, j)


def test_phantom_gradient_is_finite_and_nonzero() -> None:
    method, model, _ = _tiny(grad="phantom", phantom_steps=2, phantom_damping=0.5)
    with torch.no_grad():
        model.lion.out.scale.fill_(0.5)
        model.lion.inp.proj.weight.normal_(std=0.1)
    model(torch.randn(2, 3, 32, 32)).logsumexp(1).sum().backward()
    for n, p in model.lion.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    assert model.lion.out.rec.weight.grad.abs().sum() > 0
    assert model.lion.inp.rec.weight.grad.abs().sum() > 0
    assert method.stats(model)["input"]["backward"]["calls"] == 0  # no adjoint solve in phantom mode


def test_equilibrium_without_autograd_runs_only_the_solve() -> None:
    w = torch.full((3, 3), 0.1)
    b = torch.ones(1, 3)
    with torch.no_grad():
        z, info = equilibrium(lambda z: torch.relu(z @ w + b), torch.zeros(1, 3), SolverSpec(tol=1e-8))
    torch.testing.assert_close(z, torch.relu(z @ w + b))
    assert not z.requires_grad and info.iters > 1


def _expected_kept(model: torch.nn.Module, keep: float) -> int:
    return sum(max(1, round(keep * op.weight.numel())) for op in model.lion.prunable())


@pytest.mark.parametrize("reparam", ["spectral", "weight", "none"])
def test_pruning_schedule_keeps_exact_fraction(reparam: str) -> None:
    keep = 0.3
    method, model, backbone_total = _tiny(keep_ratio=keep, prune_warmup=0.2, prune_hard=0.5, prune_strength=0.5,
                                          reparam=reparam)
    with torch.no_grad():
        model.lion.inp.proj.weight.normal_()
    before = measure.param_counts(model, backbone_total)["params_trainable"]
    ops = model.lion.prunable()
    prunable = sum(op.weight.numel() for op in ops)
    model.lion.out.scale.data.fill_(1.0)
    method.on_step(model, 1, 10)  # dense phase: nothing happens
    assert all(bool(op.weight_mask.all()) for op in ops)
    method.on_step(model, 2, 10)  # split at ceil(0.2·10) = 2, then the first decay
    kept = _expected_kept(model, keep)
    assert sum(int(op.weight_mask.sum()) for op in ops) == kept
    after = measure.param_counts(model, backbone_total)["params_trainable"]
    assert before - after == prunable - kept
    w_before = {id(op): op.weight.detach().clone() for op in ops}
    method.on_step(model, 3, 10)  # soft phase: non-key weights shrink by (1 − 0.5), key weights untouched
    for op in ops:
        m = op.weight_mask.bool()
        torch.testing.assert_close(op.weight[m], w_before[id(op)][m])
        torch.testing.assert_close(op.weight[~m], 0.5 * w_before[id(op)][~m])
    method.on_step(model, 5, 10)  # hard mask at ceil(0.5·10) = 5
    for op in ops:
        assert op.hard and (op.weight[~op.weight_mask.bool()] == 0).all()
        eff = op()  # the mask acts before the reparametrisation: pruned entries stay exactly zero
        assert (eff[~op.weight_mask.bool()] == 0).all() and torch.isfinite(eff).all()
    assert method.stats(model)["prune"] == {"phase": "hard", "keep_ratio": keep, "weights_total": prunable,
                                            "weights_kept": kept}
    out = model(torch.randn(2, 3, 32, 32))
    assert torch.isfinite(out).all()
    # state_dict round trip keeps the hard flag
    fresh = _tiny(keep_ratio=keep, reparam=reparam)[1]
    fresh.load_state_dict(model.state_dict())
    assert all(op.hard for op in fresh.lion.prunable())


def test_global_scope_and_finalize_without_training() -> None:
    method, model, backbone_total = _tiny(keep_ratio=0.5, prune_scope="global")
    model = method.finalize(model)
    ops = model.lion.prunable()
    total = sum(op.weight.numel() for op in ops)
    assert sum(int(op.weight_mask.sum()) for op in ops) == round(0.5 * total)
    unpruned = sum(p.numel() for n, p in model.lion.named_parameters() if not n.endswith(".weight"))
    counts = measure.param_counts(model, backbone_total)
    head = sum(p.numel() for p in model.get_classifier().parameters())
    assert counts["params_trainable"] == round(0.5 * total) + unpruned + head


def test_only_lion_and_head_change() -> None:
    method, model, _ = _tiny(keep_ratio=0.5, prune_warmup=0.0, prune_hard=0.6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(trainable, lr=0.5, momentum=0.9)
    model.train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for step in range(1, 5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        method.on_step(model, step, 5)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed, "nothing trained"
    assert all(k.startswith(("lion.", "head.")) for k in changed), sorted(changed)
    for k in ("head.weight", "lion.out.scale", "lion.inp.proj.weight", "lion.out.inj.weight", "lion.inp.rec.weight"):
        assert k in changed, k
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.startswith(("lion.", "head.")) for n in names)


def test_resnet_train_step_and_gmacs_count_solver_iterations() -> None:
    method, model, _ = _tiny("test_resnet", solver="iter", tol=0.0, max_iter=6)
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert model.lion.inp.rec.weight.grad is not None
    model = method.finalize(model)
    g6 = measure.gmacs(model, (3, 32, 32))
    for layer in (model.lion.inp, model.lion.out):
        layer.spec = SolverSpec(solver="iter", max_iter=12, tol=0.0)
    g12 = measure.gmacs(model, (3, 32, 32))
    # 6 more input-layer iterations of a 3×3 conv 8→8 on 32×32 (+ GN-free relu) = 6·8·8·9·1024 MACs
    assert g12 - g6 == pytest.approx(6 * (8 * 8 * 9 * 1024 + 64 * 64) / 1e9, rel=0.05)


def test_vit_base_parameter_anchor() -> None:
    torch.manual_seed(0)
    method = make_method("lion", {})
    built = build(method, "vit_base_patch16_224", 100, pretrained=False)
    model, backbone_total = built.model, built.backbone_total
    counts = measure.param_counts(model, backbone_total)
    c, d, r = 8, 768, 64
    inp = c * c * 9 + (3 * c + c) + (c * 3 + 3)  # rec, inj + bias, proj + bias
    out = r * r + (d * r + r) + d * r + 1  # rec, inj + bias, proj, scale
    assert inp + out == 103_100
    assert counts["params_trainable_excl_head"] == counts["params_added"] == 103_100
    model = method.finalize(model)  # keep_ratio 0.8, per tensor
    kept = sum(round(0.8 * n) for n in (c * c * 9, 3 * c, 3 * c, r * r, d * r, d * r))
    counts = measure.param_counts(model, backbone_total)
    assert counts["params_trainable_excl_head"] == kept + c + 3 + r + 1 == 82_496


def test_config_validation() -> None:
    with pytest.raises(UserError, match="solver"):
        make_method("lion", {"solver": "broyden"})
    with pytest.raises(UserError, match="prune_warmup"):
        make_method("lion", {"prune_warmup": 0.5, "prune_hard": 0.2})
    with pytest.raises(UserError, match="gn_groups"):
        make_method("lion", {"norm": "group", "in_channels": 6, "gn_groups": 4})
    assert isinstance(PrunableWeight(torch.ones(2, 2)).weight_mask, torch.Tensor)


def _extra_gmacs(name: str, size: int, **overrides) -> tuple[float, float]:
    """(LION GMACs − backbone GMACs, backbone GMACs) at ``size``², every solve running all ``max_iter``
    iterations (``tol=0``: the worst case of the default solver)."""
    method, model, _ = _tiny(name, tol=0.0, **overrides)
    model = method.finalize(model)
    lion_g = measure.gmacs(model, (3, size, size))
    base = build(make_method("linear"), name, 10, pretrained=False).model
    base_g = measure.gmacs(base, (3, size, size))
    return lion_g - base_g, base_g


def test_input_layer_cost_is_capped_on_a_224_cnn() -> None:
    """On a CNN at 224² (0.20 GMACs) the input layer is solved on a 32² grid (stride 7). With 5 iterations per
    solve (what the default tol needed in every run we recorded) both LION layers add < 2% of the backbone's
    GMACs, with all 30 (the worst case) < 15%; solved at full resolution (``in_res=0``, the old default) the
    same 5 iterations cost more than 10x as much."""
    worst, base = _extra_gmacs("test_resnet", 224)
    capped, _ = _extra_gmacs("test_resnet", 224, max_iter=5)
    full, _ = _extra_gmacs("test_resnet", 224, max_iter=5, in_res=0)
    assert 0 < capped < 0.02 * base and worst < 0.15 * base
    assert full > 10 * capped and full > 0.5 * base


def test_input_layer_cost_does_not_grow_with_the_image() -> None:
    small, large = (_extra_gmacs("test_resnet", size, max_iter=5)[0] for size in (64, 160))
    assert large == pytest.approx(small, rel=1e-9)
    inp = _tiny("test_resnet")[1].lion.inp
    assert [inp.stride(s) for s in ((32, 32), (224, 224), (240, 320), (33, 20))] == [1, 7, 10, 2]
    assert _tiny("test_resnet", in_stride=4)[1].lion.inp.stride((64, 64)) == 4  # in_stride is a floor


def test_layer_grad_clip_bounds_each_lion_tensor_and_leaves_the_head_alone() -> None:
    grads = {}
    for clip in (0.0, 1e-3):
        _, model, _ = _tiny(layer_grad_clip=clip)
        with torch.no_grad():  # leave the identity-at-init point so every LION tensor gets a gradient
            model.lion.out.scale.fill_(0.5)
            model.lion.inp.proj.weight.normal_()
        x, y = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3])
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grads[clip] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads[0.0].keys() == grads[1e-3].keys()
    for n, g in grads[1e-3].items():
        free = grads[0.0][n]
        if n.startswith("lion."):
            assert free.norm() > 1e-3, n  # the clip is active on every LION tensor here ...
            assert g.norm() == pytest.approx(1e-3, rel=1e-4), n  # ... per tensor,
            torch.testing.assert_close(g, free * (1e-3 / free.norm()), rtol=1e-4, atol=1e-9)  # same direction
        else:
            torch.testing.assert_close(g, free, rtol=0, atol=0)  # the head's gradient is not clipped
