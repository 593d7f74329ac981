"""Exact Pareto fronts for multi-objective model selection (accuracy vs SynOps, latency, neurons).

A point ``a`` *dominates* ``b`` when ``a`` is at least as good in every objective and strictly
better in at least one.  The Pareto front is the set of points that no other point dominates;
:func:`pareto_mask` computes it exactly by pairwise comparison (``O(N^2 M)``, vectorised in
blocks; fine for the thousands of configurations of a sweep).  Identical points do not dominate
each other, so duplicates on the front are all kept.

Each objective has a direction: ``maximize[j] = True`` (accuracy) or ``False`` (costs).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["dominates", "pareto_mask", "pareto_front", "cheapest_within", "hypervolume_2d"]


def _prepare(points, maximize) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1:
        pts = pts[:, None]
    if pts.ndim != 2:
        raise ValueError(f"points must be [N, M] (N points, M objectives), got shape {np.shape(points)}")
    if pts.shape[0] == 0:
        raise ValueError("points is empty: no configurations to compare")
    if pts.shape[1] == 0:
        raise ValueError("points has no objectives (M = 0)")
    if not np.all(np.isfinite(pts)):
        bad = sorted(set(np.nonzero(~np.isfinite(pts))[0].tolist()))
        raise ValueError(f"points hold non-finite values (rows {bad[:10]}); drop or repair failed runs first")
    if maximize is None:
        maximize = [True] * pts.shape[1]
    if isinstance(maximize, (bool, np.bool_)):
        maximize = [bool(maximize)] * pts.shape[1]
    maximize = [bool(m) for m in maximize]
    if len(maximize) != pts.shape[1]:
        raise ValueError(f"maximize has {len(maximize)} entries but points have {pts.shape[1]} objectives")
    sign = np.where(maximize, 1.0, -1.0)
    return pts * sign  # now every objective is maximised


def dominates(a, b, maximize=None) -> bool:
    """Whether point ``a`` Pareto-dominates point ``b``."""
    p = _prepare(np.stack([np.asarray(a, float).ravel(), np.asarray(b, float).ravel()]), maximize)
    return bool(np.all(p[0] >= p[1]) and np.any(p[0] > p[1]))


def pareto_mask(points, maximize=None, *, block: int = 1024) -> np.ndarray:
    """``bool [N]``: True for the non-dominated points of ``points [N, M]`` (exact)."""
    p = _prepare(points, maximize)
    n = p.shape[0]
    keep = np.ones(n, dtype=bool)
    for s in range(0, n, block):
        q = p[s : s + block]  # candidates
        ge = np.all(p[None, :, :] >= q[:, None, :], axis=-1)  # [b, N]: other >= candidate everywhere
        gt = np.any(p[None, :, :] > q[:, None, :], axis=-1)  # [b, N]: strictly better somewhere
        keep[s : s + block] = ~np.any(ge & gt, axis=1)
    return keep


def pareto_front(points, maximize=None) -> np.ndarray:
    """Indices of the non-dominated points, sorted by the first objective (best first), then
    by the following objectives."""
    mask = pareto_mask(points, maximize)
    p = _prepare(points, maximize)
    idx = np.nonzero(mask)[0]
    order = np.lexsort(tuple(-p[idx, j] for j in reversed(range(p.shape[1]))))
    return idx[order]


def cheapest_within(accuracy, cost, tolerance: float) -> dict:
    """Cheapest configuration whose accuracy is within ``tolerance`` of the most accurate one.

    ``accuracy`` (higher is better) and ``cost`` (lower is better) are ``[N]``; ``tolerance`` is
    in the units of ``accuracy`` (e.g. 0.01 for one point on a 0-1 scale).  Among equally
    accurate best points the cheapest is the reference.  The returned point is on the Pareto
    front of (accuracy, cost).  Returns indices, values and ``cost_ratio = ref cost / its cost``.
    """
    acc = np.asarray(accuracy, dtype=np.float64).ravel()
    cost = np.asarray(cost, dtype=np.float64).ravel()
    if acc.shape != cost.shape:
        raise ValueError(f"accuracy and cost must have the same length, got {acc.shape} and {cost.shape}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    _prepare(np.stack([acc, cost], 1), [True, False])  # validation
    best = acc.max()
    ref_cands = np.nonzero(acc == best)[0]
    ref = int(ref_cands[np.argmin(cost[ref_cands])])
    ok = np.nonzero(acc >= best - tolerance)[0]
    c_min = cost[ok].min()
    cheap_cands = ok[cost[ok] == c_min]
    cheap = int(cheap_cands[np.argmax(acc[cheap_cands])])
    return {
        "reference": ref,
        "reference_accuracy": float(acc[ref]),
        "reference_cost": float(cost[ref]),
        "cheapest": cheap,
        "cheapest_accuracy": float(acc[cheap]),
        "cheapest_cost": float(cost[cheap]),
        "accuracy_loss": float(acc[ref] - acc[cheap]),
        "cost_ratio": float(cost[ref] / cost[cheap]) if cost[cheap] > 0 else float("inf"),
        "tolerance": float(tolerance),
    }


def hypervolume_2d(points, reference: Sequence[float], maximize=None) -> float:
    """Area dominated by ``points [N, 2]`` and bounded by the ``reference`` point (exact)."""
    p = _prepare(points, maximize)
    r = _prepare(np.asarray(reference, float)[None], maximize)[0]
    if p.shape[1] != 2:
        raise ValueError(f"hypervolume_2d needs 2 objectives, got {p.shape[1]}")
    p = p[np.all(p > r, axis=1)]
    if p.size == 0:
        return 0.0
    front = p[pareto_mask(p, [True, True])]
    front = front[np.argsort(-front[:, 0])]  # decreasing first objective, increasing second
    area, prev_y = 0.0, r[1]
    for x, y in front:
        if y > prev_y:
            area += (x - r[0]) * (y - prev_y)
            prev_y = y
    return float(area)
