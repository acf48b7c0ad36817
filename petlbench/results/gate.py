"""The regression gate (``compare --gate``): configurations matched to the reference by their identity; each gets
a verdict (ok, regression, configuration differs, not in the reference, missing)."""

from __future__ import annotations

import json
from typing import Any

from petlbench.results.aggregate import _drop_neutral


def identity_diff(cur: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """'key value (reference value)' for each identity key whose values differ (off values count as equal)."""
    def text(v: Any) -> str:
        return str(v) if v or v is False else "none"

    keys = [k for k in dict.fromkeys([*cur, *ref]) if (cur.get(k) or None) != (ref.get(k) or None)]
    return [f"{k} {text(cur.get(k))} (reference {text(ref.get(k))})" if k != "data" else "data fingerprint"
            for k in keys]


def _gate_identity(r) -> dict[str, Any]:
    return {**json.loads(r.identity), "data": r.data_fingerprint or None}


def _differs(c, refs) -> str:
    """How ``c`` differs from the closest reference configuration of its method on its task."""
    diffs = sorted((identity_diff(*_drop_neutral([_gate_identity(c), _gate_identity(r)])) for r in refs), key=len)
    keys = diffs[0] if diffs and diffs[0] else [f"config hash {c.group_hash} (reference {refs[0].group_hash})"]
    return "; ".join(keys)


def gate(current, reference, max_drop: float, max_rise: float | None = None) -> list[str]:
    """What keeps ``current`` from passing against ``reference`` (aggregates), one line each, prefixed by its kind.

    Configurations are matched by identity (``group_hash``: the config hash without the seed, which holds the
    method config, data fingerprint and weights), whatever the order of the rows. A matched configuration is a
    ``regression`` when its mean top-1 is below the reference by more than ``max_drop`` points (with
    ``max_rise``, above it by more than that: the numbers changed), or its trainable-parameter or GMAC count
    changed (properties of the model, equal on every machine). A current configuration of a method (and label,
    model) whose reference on the task is another configuration is ``configuration differs`` (with the keys),
    never a regression; one with no reference configuration at all is ``not in the reference``; a reference
    configuration that nothing current matches or differs from is ``missing``.
    """
    def fam(r):
        return r.dataset, r.method, r.label, r.model

    refs = {(r.dataset, r.group_hash): r for r in reference.itertuples()}
    family: dict[tuple, list] = {}
    for r in sorted(reference.itertuples(), key=lambda r: r.group_hash):
        family.setdefault(fam(r), []).append(r)
    problems, covered = [], set()
    for c in sorted(current.itertuples(), key=lambda r: (r.dataset, r.name, r.group_hash)):
        where = f"{c.name} on {c.dataset}"
        r = refs.get((c.dataset, c.group_hash))
        if r is not None:
            covered.add((r.dataset, r.group_hash))
            problems += [f"regression: {where}: {p}" for p in _regressions(c, r, max_drop, max_rise)]
        elif fam(c) in family:
            covered |= {(r.dataset, r.group_hash) for r in family[fam(c)]}
            problems.append(f"configuration differs: {where}: {_differs(c, family[fam(c)])}")
        else:
            problems.append(f"not in the reference: {where} (no reference run of {c.method} on {c.dataset})")
    return problems + [f"missing: {r.name} on {r.dataset}: missing from the current results"
                       for r in sorted(reference.itertuples(), key=lambda r: (r.dataset, r.name))
                       if (r.dataset, r.group_hash) not in covered]


def _regressions(c, r, max_drop: float, max_rise: float | None) -> list[str]:
    """A matched configuration's changes beyond the tolerance."""
    out = []
    if c.top1_pct < r.top1_pct - max_drop:
        out.append(f"top-1 {c.top1_pct:.2f}% < reference {r.top1_pct:.2f}% - {max_drop}")
    if max_rise is not None and c.top1_pct > r.top1_pct + max_rise:
        out.append(f"top-1 {c.top1_pct:.2f}% > reference {r.top1_pct:.2f}% + {max_rise}")
    if int(c.params_trainable) != int(r.params_trainable):
        out.append(f"trainable params {int(c.params_trainable)} != reference {int(r.params_trainable)}")
    if f"{c.gmacs:.9f}" != f"{r.gmacs:.9f}":  # MAC resolution; nan (not measured) equals nan
        out.append(f"GMACs {c.gmacs:.9f} != reference {r.gmacs:.9f}")
    return out
