"""Generic deep-equilibrium machinery: fixed-point solvers and the three gradient modes.

An equilibrium layer computes ``z* = f(z*)`` for a map ``f`` that closes over its input and
parameters. This module knows nothing about vision or LION; ``methods/lion.py`` uses it.

Solvers (``solve``):
- ``iter``: plain fixed-point (Picard) iteration ``z_{k+1} = f(z_k)``;
- ``anderson``: Anderson acceleration type I (Walker & Ni 2011), per sample, history ``m``,
  relative Tikhonov term ``lam`` on the normal equations, mixing ``beta``.
Both stop when the residual drops below ``tol`` (``stop_mode`` ``rel``: ``‖f(z)−z‖ / ‖f(z)‖``,
which equals ``‖f(z)−z‖/‖z‖`` at the fixed point; ``abs``: ``‖f(z)−z‖``), measured over the whole
batch, or after ``max_iter`` evaluations of ``f``. ``tol <= 0`` runs exactly ``max_iter``
evaluations and never synchronises with the device.

Gradients (``equilibrium``):
- ``implicit``: implicit-function theorem as in DEQ (Bai et al. 2019): the forward solve runs
  under ``no_grad``; one differentiable application ``f(z*)`` re-attaches the parameters, and a
  tensor hook replaces its incoming gradient ``g`` by the solution ``y`` of the adjoint fixed
  point ``y = Jᵀy + g`` (``J = ∂f/∂z`` at ``z*``), solved with the same solver. Memory does not
  grow with the number of iterations;
- ``phantom``: the phantom gradient (Geng et al. 2021) — ``k`` damped differentiable steps
  ``z ← (1−λ)z + λf(z)`` from the detached ``z*``; ``k=1, λ=1`` is the Jacobian-free
  gradient (Fung et al. 2022). Cheapest, approximate;
- ``unrolled``: backpropagation through every solver iteration; exact for the truncated
  solve, memory linear in the iterations. A reference/benchmark baseline only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]
_EPS = 1e-9


@dataclass(frozen=True)
class SolverSpec:
    """How to solve one fixed point (shared by the forward and the adjoint solve)."""

    solver: str = "anderson"  # anderson | iter
    max_iter: int = 30
    tol: float = 1e-3
    stop_mode: str = "rel"  # rel | abs
    anderson_m: int = 5
    anderson_lam: float = 1e-4
    anderson_beta: float = 1.0


@dataclass
class SolveInfo:
    """Outcome of a solve: evaluations of ``f`` and the last residual (0-dim tensors stay on device)."""

    iters: int
    residual: torch.Tensor  # in the spec's stop_mode
    rel_residual: torch.Tensor  # ‖f(z)−z‖ / ‖f(z)‖, always reported


def _residuals(fz: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    abs_r = (fz - z).detach().float().norm()
    return abs_r, abs_r / (fz.detach().float().norm() + _EPS)


def _done(res: torch.Tensor, tol: float) -> bool:
    return tol > 0 and bool(res < tol)


def fixed_point_iter(f: Fn, z0: torch.Tensor, spec: SolverSpec) -> tuple[torch.Tensor, SolveInfo]:
    """Picard iteration; returns the last ``f(z)`` (one step past the checked iterate)."""
    z, iters = z0, 0
    abs_r = rel_r = z0.new_zeros(())
    while iters < spec.max_iter:
        fz = f(z)
        iters += 1
        abs_r, rel_r = _residuals(fz, z)
        z = fz
        if _done(rel_r if spec.stop_mode == "rel" else abs_r, spec.tol):
            break
    return z, SolveInfo(iters, rel_r if spec.stop_mode == "rel" else abs_r, rel_r)


def anderson(f: Fn, z0: torch.Tensor, spec: SolverSpec) -> tuple[torch.Tensor, SolveInfo]:
    """Anderson acceleration, batched over dim 0 (each sample gets its own mixing weights).

    Keeps the last ``m`` iterates ``x_i`` and images ``f(x_i)``; the next iterate is
    ``β Σ α_i f(x_i) + (1−β) Σ α_i x_i`` with ``α = argmin ‖Σ α_i (f(x_i) − x_i)‖, Σα_i = 1``,
    solved as ``(GGᵀ + λ·mean(diag GGᵀ)·I) a = 1, α = a / Σa`` (order-free, so the history is a
    ring). Without autograd the history lives in two preallocated B×m×n buffers (memory fixed from
    the first iteration); with autograd (``unrolled`` mode) in Python lists, to avoid in-place writes.
    """
    bsz, m = z0.shape[0], spec.anderson_m
    ring = not torch.is_grad_enabled()
    x0, f0 = z0.reshape(bsz, -1), f(z0).reshape(bsz, -1)
    if ring:
        X = x0.new_zeros(bsz, m, x0.shape[1])
        Fh = torch.zeros_like(X, dtype=f0.dtype)
        X[:, 0], Fh[:, 0] = x0, f0
    else:
        xs, fs = [x0], [f0]
    k, f_new = 1, f0
    abs_r, rel_r = _residuals(f0, x0)
    if not _done(rel_r if spec.stop_mode == "rel" else abs_r, spec.tol) and spec.max_iter > 1:
        for k in range(2, spec.max_iter + 1):
            h = min(k - 1, m)  # valid history entries (slots 0..h-1 of the ring)
            if k == 2:
                x_new = f_new  # the first step is a plain iteration
            elif ring:
                x_new = _anderson_step(X[:, :h], Fh[:, :h], spec)
            else:
                x_new = _anderson_step(torch.stack(xs, 1), torch.stack(fs, 1), spec)
            f_new = f(x_new.reshape(z0.shape)).reshape(bsz, -1)
            if ring:
                slot = (k - 1) % m
                X[:, slot], Fh[:, slot] = x_new, f_new
            else:
                xs, fs = (xs + [x_new])[-m:], (fs + [f_new])[-m:]
            abs_r, rel_r = _residuals(f_new, x_new)
            if _done(rel_r if spec.stop_mode == "rel" else abs_r, spec.tol):
                break
    z = f_new.clone() if ring else f_new  # a copy lets the history buffers go
    return z.reshape(z0.shape), SolveInfo(k, rel_r if spec.stop_mode == "rel" else abs_r, rel_r)


def _anderson_step(X: torch.Tensor, F: torch.Tensor, spec: SolverSpec) -> torch.Tensor:
    """Next Anderson iterate from histories ``X`` (iterates) and ``F`` (images), both B×h×n.

    The small least-squares problem runs in at least float32 with autocast off (bf16 ``GGᵀ``
    and ``linalg.solve`` are too coarse or unsupported); the result returns in ``F``'s dtype.
    """
    dtype = torch.promote_types(F.dtype, torch.float32)
    with torch.autocast(F.device.type, enabled=False):
        Xc, Fc = X.to(dtype), F.to(dtype)
        G = Fc - Xc
        H = G @ G.transpose(1, 2)  # B×h×h
        # Tikhonov term relative to the mean squared residual: an absolute λ swamps GGᵀ once
        # residuals are small and degrades Anderson to averaging the history (our choice)
        reg = spec.anderson_lam * H.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-30)
        H = H + reg[:, None, None] * torch.eye(H.shape[1], dtype=dtype, device=H.device)
        a = torch.linalg.solve(H, torch.ones(H.shape[0], H.shape[1], 1, dtype=dtype, device=H.device))
        alpha = (a / a.sum(1, keepdim=True)).transpose(1, 2)  # B×1×h, Σα = 1
        x_new = spec.anderson_beta * (alpha @ Fc).squeeze(1)
        if spec.anderson_beta != 1.0:
            x_new = x_new + (1 - spec.anderson_beta) * (alpha @ Xc).squeeze(1)
    return x_new.to(F.dtype)


def solve(f: Fn, z0: torch.Tensor, spec: SolverSpec) -> tuple[torch.Tensor, SolveInfo]:
    """Solve ``z = f(z)`` from ``z0`` with ``spec.solver``."""
    if spec.solver == "anderson":
        return anderson(f, z0, spec)
    if spec.solver == "iter":
        return fixed_point_iter(f, z0, spec)
    raise ValueError(f"unknown solver '{spec.solver}'; use anderson or iter")


def equilibrium(
    f: Fn, z0: torch.Tensor, spec: SolverSpec, grad: str = "implicit", phantom_steps: int = 1,
    phantom_damping: float = 1.0, on_backward: Callable[[SolveInfo], None] | None = None,
) -> tuple[torch.Tensor, SolveInfo]:
    """Equilibrium ``z*`` of ``f`` with gradients per ``grad``; returns (z, forward SolveInfo).

    Without autograd (``torch.no_grad`` / inference) only the forward solve runs.
    ``on_backward`` receives the adjoint solve's info (implicit mode) when the backward runs.
    """
    if not torch.is_grad_enabled():
        return solve(f, z0, spec)
    if grad == "unrolled":
        return solve(f, z0, spec)
    with torch.no_grad():
        z_star, info = solve(f, z0, spec)
    if grad == "phantom":
        z = z_star
        for _ in range(phantom_steps):
            z = f(z) if phantom_damping == 1.0 else (1 - phantom_damping) * z + phantom_damping * f(z)
        return z, info
    if grad != "implicit":
        raise ValueError(f"unknown grad mode '{grad}'; use implicit, phantom or unrolled")
    z = f(z_star)  # differentiable w.r.t. parameters and inputs, not w.r.t. z*
    if not z.requires_grad:
        return z, info
    z_lin = z_star.clone().requires_grad_()  # linearisation point of the adjoint solve
    f_lin = f(z_lin)

    def adjoint(g: torch.Tensor) -> torch.Tensor:
        # y = Jᵀ y + g  <=>  y = (I − Jᵀ)⁻¹ g ; then autograd sends y through ∂f/∂θ.
        def vjp(y: torch.Tensor) -> torch.Tensor:
            return torch.autograd.grad(f_lin, z_lin, y, retain_graph=True)[0] + g

        with torch.no_grad():  # autograd.grad still walks the retained f_lin graph
            y, binfo = solve(vjp, g, spec)
        if on_backward is not None:
            on_backward(binfo)
        return y.detach()

    z.register_hook(adjoint)
    return z, info
