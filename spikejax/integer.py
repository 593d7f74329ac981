"""Integer weights for trained linear layers: plain rounding, a MIP (python-mip / CBC), and
branch and bound coupled with backpropagation; layer by layer for multilayer perceptrons.

Neuromorphic hardware stores synaptic weights as small integers.  Given a trained float layer
``z = x @ w + b`` (``w [n_in, n_out]``), the functions here find integer weights
``w_int`` in a user range ``[lo, hi]`` (e.g. 4-bit signed: ``[-8, 7]``, :func:`weight_range`)
and an integer bias ``b_int`` (its own range, default 16-bit, the NSAT membrane / bias width),
with **one scale per layer**: the integer layer computes ``scale * (x @ w_int + b_int)``.
The argmax of a classifier does not depend on the scale; it only sets the quantisation grid.

Problem (shared by every method)
--------------------------------
* Integer units.  ``v = [w; b] / scale`` is the float layer on the integer grid.
  :func:`choose_scale` picks ``scale`` from a geometric grid (``base * 2**(-k/4)``,
  ``base = max|w, b| / max(|lo|, |hi|)``: no clipping at ``k = 0``) by the training error (or the
  objective) of the rounded layer; every method of one call uses the same scale.
* Candidate box.  Each weight may take the integers in
  ``[max(lo, floor(v') - radius), min(hi, ceil(v') + radius)]`` with ``v' = clip(v, lo, hi)``;
  ``radius=0`` is the floor/ceil choice of rounding, ``radius=None`` the whole range.  Weights
  outside a ``mask`` (absent synapses) are fixed to 0.
* Objectives (dequantised units, mean over samples, all convex in the weights):

  - ``"hinge"`` (multiclass / Crammer-Singer): ``mean_i max(0, m - (z_iy - max_{c!=y} z_ic))``
    with ``z = scale * (x @ w_int + b_int)`` and margin ``m`` (``margin``, float logit units);
  - ``"xent"``: softmax cross-entropy of ``z`` (B&B only: not linear);
  - ``"l1relu"`` (hidden layers): ``mean_i sum_c |z_ic - t_ic|`` where the target pre-activation
    ``t_ic > 0`` and ``max(0, z_ic)`` where ``t_ic <= 0`` (an inactive ReLU only has to stay
    inactive); ``t`` defaults to the float layer's own pre-activations.

  Samples (``keep``): ``"correct"`` (default) uses only the samples the float model classifies
  correctly, with their labels: the integer layer is asked to keep what the float model gets
  right; ``"all"`` all samples with their labels; ``"float"`` all samples with the float
  model's predictions as targets.

Rounding (:func:`round_layer`)
------------------------------
``clip(round(v))`` (half to even) at the chosen scale.  It is the warm start of both solvers
and their fallback: every solver result is checked (in float64) against the rounding value of
its own objective and replaced by rounding if it is not at least as good (``status`` then says
``"fallback_rounding"``).

MIP (:func:`mip_layer`, python-mip with CBC)
---------------------------------------------
``hinge``: integer variables for the free weights, one slack ``xi_i >= 0`` per sample and
``z_iy - z_ic + xi_i >= m`` for every ``c != y_i``; minimise ``sum xi``.  ``l1relu``: one slack
per (sample, output) with the two (or one) absolute-value inequalities.  CBC is warm-started
from the rounded (or current) solution with python-mip's ``start``, runs under ``time_limit``
(seconds, total) and ``max_gap`` (relative), and reports its best bound.

*Decomposition.*  A joint hinge MIP over a 784x10 layer is too large for CBC in minutes, so
``decompose="auto"`` (joint when at most ``joint_max_vars`` free weights) switches to
``"class"``: **block-coordinate descent over output classes**.  With the other classes fixed,
class ``c``'s block is exact (one constraint per sample: ``z_ic >= max_{c'!=c} z_ic' + m - xi_i``
for ``y_i = c``, ``z_ic <= z_iy - m + xi_i`` for ``y_i != c``, constant lower bounds on
``xi_i`` from the other classes; samples whose constraint cannot bind anywhere in the box are
dropped), solved by CBC and accepted when the float64 objective does not increase.  Sweeps
over the classes repeat until one brings no improvement or time runs out.  The result is a
block-wise optimum, **not** a proven global optimum: no global bound is reported (``bound`` is
NaN) and the best status is ``"block_optimal"``.  ``l1relu`` separates exactly over output
units (columns): every column is its own MIP and the sum of the column bounds is a valid global
bound, so ``"optimal"`` there is a proof.

B&B coupled with backpropagation (:func:`bnb_layer`) -- our reconstruction of the seed's method
---------------------------------------------------------------------------------------------
The seed (papers.md 5.1: "Backpropagation coupled with Branch and Bound", no code or paper) only
names the method.  This is **our reconstruction**, not the author's algorithm:

* a node is a sub-box ``[L, U]`` of the candidate box (weights with ``L == U`` are fixed);
* the node's free weights are **retrained by gradient descent** (projected Adam, cosine
  learning-rate decay, ``gd_steps`` steps, jitted JAX, warm-started from the parent) on the
  objective, with the fixed weights clamped;
* the **bound** of a node is certified by convexity: at the retrained point ``v`` with
  (sub)gradient ``g``, ``f(v) + sum_j min(g_j (L_j - v_j), g_j (U_j - v_j))`` is a lower bound
  of the objective over the whole node box (a Frank-Wolfe bound; the objectives are convex in
  the weights of one layer), whatever the number of descent steps.  Nodes whose bound is not
  below the incumbent (minus ``abs_tol``) are pruned;
* the **incumbent** is updated with the rounding of every node's retrained weights;
* **branching**: ``group_size=1`` splits the box of one weight at its retrained value (floor /
  ceil: ``x <= floor(v)`` and ``x >= ceil(v)``); ``branching="fractional"`` picks the most
  fractional weight, ``"gradient"`` the one with the largest ``|gradient|`` (ties: fractional).
  For large layers ``group_size=k > 1`` fixes a group of ``k`` weights per level (chosen by the
  same score): child 1 rounds each to its nearest integer, child 2 to the other neighbour;
* depth-first search, nearest-rounding child first; ``node_limit`` relaxations and
  ``time_limit`` seconds (checked before each node; a node in progress finishes).

Status: ``"optimal"`` (``group_size=1`` and the tree is exhausted: proven optimal over the box,
up to ``abs_tol`` and float rounding of the bound), ``"tree_exhausted"`` (``group_size > 1``:
the grouped tree does not enumerate every assignment, so exhausting it proves nothing; ``bound``
is the root bound), ``"node_limit"`` / ``"time_limit"`` (stopped early: the best known solution
is returned with the best valid bound).  An empty integer range is an infeasible problem and is
refused up front with ``ValueError`` (no solver runs).

Layer by layer (:func:`integerize_mlp`)
---------------------------------------
A ReLU MLP is integerised from the input upwards.  Each layer is solved *given its actual
inputs*: the integer activations of the already-integer layers below.  Inputs are integers
``x_int`` with ``x = x_int / input_unit`` (255 for 8-bit pixels, ``T`` for spike counts over
``T`` ticks).  Layer ``l`` computes integer activations ``a = relu(a_prev @ w_int + K_l b_int)``
where ``K_l`` is its ``input_unit``; the next layer reads ``a / K_{l+1}`` with
``K_{l+1} = max(1, round(K_l / scale_l))`` so that its float weights see inputs on the float
scale.  Hidden layers use the ``l1relu`` objective against the float network's pre-activations
(target: what the float model computes), the output layer ``hinge`` (MIP) or the chosen
objective (B&B).  :func:`fixed_point_forward` runs the exported network in exact int32
arithmetic with :func:`spikejax.fixed_point.fixed_dense` (the spikejax fixed-point mode); for a
single layer, ``FixedPointLIF(synaptic_delay=0)`` with ``leak_shift=OFF``, ``bias=b_int`` and
input ``fixed_dense(w_int, spikes_t)`` integrates exactly ``counts @ w_int + T * b_int``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "OBJECTIVES",
    "IntegerLayer",
    "IntegerResult",
    "weight_range",
    "choose_scale",
    "layer_objective",
    "round_layer",
    "mip_layer",
    "bnb_layer",
    "brute_force_layer",
    "integerize_mlp",
    "mlp_forward",
    "fixed_point_forward",
    "accuracy",
]

OBJECTIVES = ("hinge", "xent", "l1relu")
_KEEP = ("correct", "all", "float")
_BIAS_RANGE = (-(2**15), 2**15 - 1)
_INT32_MAX = 2**31 - 1


# ---------------------------------------------------------------------------------------------
# results


class IntegerLayer(NamedTuple):
    """An integer linear layer: float equivalent ``scale * (x @ w + b)``.

    ``w`` int32 ``[n_in, n_out]`` in ``[lo, hi]``; ``b`` int32 ``[n_out]``; ``input_unit``: the
    integer inputs of this layer are ``x_int = input_unit * x`` (see :func:`fixed_point_forward`).
    """

    w: np.ndarray
    b: np.ndarray
    scale: float
    lo: int
    hi: int
    input_unit: int = 1

    def dequantize(self) -> tuple[np.ndarray, np.ndarray]:
        """Float ``(w, b) = scale * (w_int, b_int)`` (float32)."""
        return (self.scale * self.w.astype(np.float64)).astype(np.float32), (self.scale * self.b.astype(np.float64)).astype(
            np.float32
        )

    def logits(self, x) -> np.ndarray:
        """Dequantised output ``scale * (x @ w + b)`` for float inputs ``x [..., n_in]`` (float64)."""
        return self.scale * (np.asarray(x, np.float64) @ self.w.astype(np.float64) + self.b.astype(np.float64))


@dataclasses.dataclass
class IntegerResult:
    """What an integer-weight solver returns.

    ``value``: the objective of ``layer`` (float64, recomputed, never the solver's own number);
    ``round_value``: the objective of plain rounding at the same scale; ``bound``: best valid
    lower bound of the objective over the candidate box (NaN if none); ``gap``: relative gap
    ``(value - bound) / max(|value|, 1e-12)`` (NaN without a bound); ``status``: see the module
    docstring; ``nodes``: B&B relaxations solved or MIP sub-problems solved.
    """

    layer: IntegerLayer
    method: str
    objective: str
    value: float
    round_value: float
    bound: float
    gap: float
    status: str
    solve_time_s: float
    nodes: int = 0
    message: str = ""
    info: dict = dataclasses.field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-friendly summary (no weight arrays)."""
        return {
            "method": self.method,
            "objective": self.objective,
            "value": self.value,
            "round_value": self.round_value,
            "bound": self.bound,
            "gap": self.gap,
            "status": self.status,
            "solve_time_s": self.solve_time_s,
            "nodes": self.nodes,
            "message": self.message,
            "lo": self.layer.lo,
            "hi": self.layer.hi,
            "scale": self.layer.scale,
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool)) or v is None},
        }


# ---------------------------------------------------------------------------------------------
# validation


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def weight_range(bits: int) -> tuple[int, int]:
    """Signed ``bits``-bit range ``(-2**(bits-1), 2**(bits-1) - 1)``; ``bits`` in [2, 32]."""
    if not _is_int(bits) or not 2 <= int(bits) <= 32:
        raise ValueError(f"bits must be an integer in [2, 32], got {bits!r}")
    return -(2 ** (int(bits) - 1)), 2 ** (int(bits) - 1) - 1


def _check_range(name: str, lo, hi) -> tuple[int, int]:
    if not _is_int(lo) or not _is_int(hi):
        raise ValueError(f"{name} bounds must be integers, got lo={lo!r}, hi={hi!r}")
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"{name} [{lo}, {hi}] is empty (lo > hi): no integer weight fits, the problem is infeasible")
    if max(abs(lo), abs(hi)) > _INT32_MAX:
        raise ValueError(f"{name} [{lo}, {hi}] does not fit int32")
    return lo, hi


def _check_time_limit(time_limit) -> float:
    if time_limit is None:
        return math.inf
    try:
        t = float(time_limit)
    except (TypeError, ValueError):
        raise ValueError(f"time_limit must be a positive number of seconds (or None), got {time_limit!r}") from None
    if not t > 0 or math.isnan(t):
        raise ValueError(f"time_limit must be positive seconds (or None for no limit), got {time_limit!r}")
    return t


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_weights(w, b):
    if w is None:
        raise ValueError("the model has no weights: w is None")
    w = np.asarray(w, np.float64)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D weight matrix [n_in, n_out], got shape {w.shape}")
    if w.size == 0:
        raise ValueError(f"the model has no weights: w has shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("w contains NaN or infinite values")
    if b is not None:
        b = np.asarray(b, np.float64)
        if b.shape != (w.shape[1],):
            raise ValueError(f"b must have shape ({w.shape[1]},) to match w {w.shape}, got {b.shape}")
        if not np.all(np.isfinite(b)):
            raise ValueError("b contains NaN or infinite values")
    return w, b


def _check_x(x, n_in):
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"x must be [n_samples, {n_in}], got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("x has no samples")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values")
    return x


def _check_labels(y, n, n_out):
    if y is None:
        raise ValueError("y (integer class labels) is required for the 'hinge' and 'xent' objectives")
    y = np.asarray(y)
    if y.shape != (n,) or not (np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"y must be integer labels of shape ({n},), got shape {y.shape} dtype {y.dtype}")
    if np.any(y < 0) or np.any(y >= n_out):
        raise ValueError(f"labels must lie in [0, {n_out}), got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def _check_mask(mask, shape, lo, hi):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape or mask.dtype != bool:
        raise ValueError(f"mask must be a boolean array of shape {shape}, got shape {mask.shape} dtype {mask.dtype}")
    n_zero = int((~mask).sum())
    if n_zero and not lo <= 0 <= hi:
        raise ValueError(
            f"weight range [{lo}, {hi}] excludes 0, but the mask fixes {n_zero} weights (absent synapses) to 0: "
            "no integer solution exists (infeasible)"
        )
    return mask


# ---------------------------------------------------------------------------------------------
# problem


@dataclasses.dataclass
class _Problem:
    xa: np.ndarray  # [n, d] float64, with a ones column when has_bias
    y: np.ndarray | None  # [n] int64 (hinge / xent)
    t: np.ndarray | None  # [n, k] float64 targets (l1relu)
    objective: str
    margin: float
    scale: float
    vf: np.ndarray  # [d, k] float layer in integer units
    L: np.ndarray  # [d, k] int64 candidate box
    U: np.ndarray
    vround: np.ndarray  # [d, k] int64 rounding at this scale
    has_bias: bool
    lo: int
    hi: int
    n_in: int
    n_kept: int
    n_given: int


def _augment(x, has_bias):
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1) if has_bias else x


def _row_ranges(n_in, has_bias, lo, hi, bias_range):
    rlo = np.full((n_in + has_bias, 1), lo, np.int64)
    rhi = np.full((n_in + has_bias, 1), hi, np.int64)
    if has_bias:
        rlo[-1], rhi[-1] = bias_range
    return rlo, rhi


def _round_v(vf, rlo, rhi, mask_a):
    v = np.clip(np.round(vf), rlo, rhi).astype(np.int64)
    if mask_a is not None:
        v[~mask_a] = 0
    return v


def _mask_aug(mask, has_bias, k):
    if mask is None:
        return None
    return np.concatenate([mask, np.ones((1, k), bool)], axis=0) if has_bias else mask


def _objective_batch(V, xa, y, t, objective, margin, scale):
    """Objective of integer layers ``V [..., d, k]`` (float64); returns shape ``V.shape[:-2]``."""
    z = scale * np.einsum("nd,...dk->...nk", xa, np.asarray(V, np.float64))
    if objective == "l1relu":
        pos = t > 0
        return np.where(pos, np.abs(z - t), np.maximum(z, 0.0)).sum(-1).mean(-1)
    n, k = z.shape[-2:]
    onehot = np.arange(k)[None, :] == y[:, None]
    zy = np.where(onehot, z, 0.0).sum(-1)
    if objective == "hinge":
        zo = np.where(onehot, -np.inf, z).max(-1)
        return np.maximum(0.0, margin - (zy - zo)).mean(-1)
    zmax = z.max(-1, keepdims=True)
    lse = np.log(np.exp(z - zmax).sum(-1)) + zmax[..., 0]
    return (lse - zy).mean(-1)


def _obj(p: _Problem, V) -> float:
    return float(_objective_batch(V, p.xa, p.y, p.t, p.objective, p.margin, p.scale))


def _select(w, b, x, y, keep, objective, targets):
    """Samples and targets for the objective (see ``keep``)."""
    z = x @ w + (b if b is not None else 0.0)
    if objective == "l1relu":
        if targets is None:
            t = z
        else:
            t = np.asarray(targets, np.float64)
            if t.shape != z.shape:
                raise ValueError(f"targets must have shape {z.shape} (samples x outputs), got {t.shape}")
        return x, None, t
    _check_choice("keep", keep, _KEEP)
    pred = np.argmax(z, axis=1)
    if keep == "float":
        return x, pred.astype(np.int64), None
    y = _check_labels(y, x.shape[0], w.shape[1])
    if keep == "all":
        return x, y, None
    ok = pred == y
    if not ok.any():
        raise ValueError("keep='correct': the float model classifies none of the given samples correctly")
    return x[ok], y[ok], None


def _scale_grid(w, b, lo, hi, n_grid):
    m = float(np.abs(w).max())
    if b is not None:
        m = max(m, float(np.abs(b).max()))
    base = (m if m > 0 else 1.0) / max(abs(lo), abs(hi), 1)
    return [base * 2.0 ** (-k / 4.0) for k in range(n_grid)]


def _scale_score(vr, xa, y, t, criterion, margin, scale):
    if criterion == "error":
        return float(np.mean(np.argmax(xa @ vr.astype(np.float64), axis=1) != y))
    return float(_objective_batch(vr, xa, y, t, criterion, margin, scale))


def choose_scale(
    w,
    b,
    x,
    y=None,
    *,
    lo: int,
    hi: int,
    criterion: str = "error",
    targets=None,
    margin: float = 1.0,
    bias_range=_BIAS_RANGE,
    mask=None,
    n_grid: int = 24,
) -> float:
    """One scale for a layer: the grid value ``base * 2**(-k/4)``, ``k < n_grid``, whose rounded
    layer has the smallest ``criterion`` on ``(x, y)``: ``"error"`` (classification error,
    needs ``y``) or an objective name (``"hinge"``, ``"xent"``, ``"l1relu"``; these are in
    dequantised units, so comparable across scales).  Ties go to the larger scale (less clipping).
    """
    w, b = _check_weights(w, b)
    lo, hi = _check_range("weight range", lo, hi)
    blo, bhi = _check_range("bias range", *bias_range)
    x = _check_x(x, w.shape[0])
    _check_choice("criterion", criterion, ("error",) + OBJECTIVES)
    if not _is_int(n_grid) or n_grid < 1:
        raise ValueError(f"n_grid must be a positive integer, got {n_grid!r}")
    has_bias = b is not None
    mask = _check_mask(mask, w.shape, lo, hi)
    xa = _augment(x, has_bias)
    t = None
    if criterion == "l1relu":
        t = np.asarray(targets, np.float64) if targets is not None else x @ w + (b if has_bias else 0.0)
    else:
        y = _check_labels(y, x.shape[0], w.shape[1])
    V = np.concatenate([w, b[None]], axis=0) if has_bias else w
    rlo, rhi = _row_ranges(w.shape[0], has_bias, lo, hi, (blo, bhi))
    mask_a = _mask_aug(mask, has_bias, w.shape[1])
    best = None
    for s in _scale_grid(w, b, lo, hi, n_grid):
        vr = _round_v(V / s, rlo, rhi, mask_a)
        sc = _scale_score(vr, xa, y, t, criterion, margin, s)
        if best is None or sc < best[0] - 1e-12:
            best = (sc, s)
    return best[1]


def _build(
    w,
    b,
    x,
    y,
    *,
    lo,
    hi,
    scale,
    objective,
    targets,
    margin,
    keep,
    radius,
    bias_range,
    mask,
) -> _Problem:
    w, b = _check_weights(w, b)
    lo, hi = _check_range("weight range", lo, hi)
    blo, bhi = _check_range("bias range", *bias_range)
    _check_choice("objective", objective, OBJECTIVES)
    mask = _check_mask(mask, w.shape, lo, hi)
    if mask is not None and not mask.any() and b is None:
        raise ValueError("the model has no weights: every weight is masked out and there is no bias")
    x = _check_x(x, w.shape[0])
    if objective in ("hinge", "xent") and w.shape[1] < 2:
        raise ValueError(f"objective {objective!r} needs at least 2 outputs (classes), got {w.shape[1]}")
    if not (isinstance(margin, (int, float, np.floating)) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    if radius is not None and (not _is_int(radius) or radius < 0):
        raise ValueError(f"radius must be a non-negative integer or None (whole range), got {radius!r}")
    n_given = x.shape[0]
    xs, ys, ts = _select(w, b, x, y, keep, objective, targets)
    has_bias = b is not None
    if scale is None:
        crit = "l1relu" if objective == "l1relu" else "error"
        scale = choose_scale(w, b, xs, ys, lo=lo, hi=hi, criterion=crit, targets=ts, margin=margin, bias_range=(blo, bhi), mask=mask)
    else:
        try:
            scale = float(scale)
        except (TypeError, ValueError):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}") from None
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    V = np.concatenate([w, b[None]], axis=0) if has_bias else w
    vf = V / scale
    rlo, rhi = _row_ranges(w.shape[0], has_bias, lo, hi, (blo, bhi))
    vc = np.clip(vf, rlo, rhi)
    if radius is None:
        L = np.broadcast_to(rlo, vf.shape).astype(np.int64)
        U = np.broadcast_to(rhi, vf.shape).astype(np.int64)
    else:
        L = np.clip(np.floor(vc) - radius, rlo, rhi).astype(np.int64)
        U = np.clip(np.ceil(vc) + radius, rlo, rhi).astype(np.int64)
    mask_a = _mask_aug(mask, has_bias, w.shape[1])
    if mask_a is not None:
        L = np.where(mask_a, L, 0)
        U = np.where(mask_a, U, 0)
    vround = _round_v(vf, rlo, rhi, mask_a)
    return _Problem(
        xa=_augment(xs, has_bias),
        y=ys,
        t=ts,
        objective=objective,
        margin=float(margin),
        scale=float(scale),
        vf=vf,
        L=L,
        U=U,
        vround=vround,
        has_bias=has_bias,
        lo=lo,
        hi=hi,
        n_in=w.shape[0],
        n_kept=xs.shape[0],
        n_given=n_given,
    )


def _layer(p: _Problem, V, input_unit=1) -> IntegerLayer:
    V = np.asarray(V, np.int64)
    w = V[: p.n_in].astype(np.int32)
    b = V[p.n_in].astype(np.int32) if p.has_bias else np.zeros(V.shape[1], np.int32)
    return IntegerLayer(w, b, p.scale, p.lo, p.hi, int(input_unit))


def _rel_gap(value, bound):
    if not math.isfinite(bound):
        return math.nan
    return max(0.0, value - bound) / max(abs(value), 1e-12)


def _common_info(p: _Problem) -> dict:
    free = int((p.L < p.U).sum())
    return {"n_samples": p.n_kept, "n_samples_given": p.n_given, "free_weights": free, "n_weights": int(p.L.size), "margin": p.margin}


def layer_objective(layer: IntegerLayer, x, y=None, *, objective="hinge", targets=None, margin=1.0, keep="all", w=None, b=None) -> float:
    """Objective (float64) of an integer layer on ``(x, y)``.  With ``keep="correct"`` or
    ``"float"`` (and for ``l1relu`` without ``targets``) pass the float layer ``w``, ``b``."""
    _check_choice("objective", objective, OBJECTIVES)
    x = _check_x(x, layer.w.shape[0])
    needs_float = keep != "all" or (objective == "l1relu" and targets is None)
    if needs_float:
        if w is None:
            raise ValueError("pass the float layer (w, b) to select samples (keep != 'all') or to get l1relu targets")
        x, y, t = _select(np.asarray(w, np.float64), None if b is None else np.asarray(b, np.float64), x, y, keep, objective, targets)
    elif objective == "l1relu":
        t = np.asarray(targets, np.float64)
    else:
        t = None
        y = _check_labels(y, x.shape[0], layer.w.shape[1])
    V = np.concatenate([layer.w, layer.b[None]], axis=0).astype(np.float64)
    return float(_objective_batch(V, _augment(x, True), y, t, objective, float(margin), layer.scale))


def accuracy(layer_or_layers, x, y) -> float:
    """Classification accuracy of an integer layer (or integer MLP) on float inputs ``x``
    (dequantised float64 path).  Where two integer logits tie exactly, float rounding breaks the
    tie; use :func:`fixed_point_forward` on integer inputs for the exact hardware answer."""
    if isinstance(layer_or_layers, IntegerLayer):
        z = layer_or_layers.logits(x)
    else:
        z = mlp_forward(layer_or_layers, x)
    return float(np.mean(np.argmax(z, axis=1) == np.asarray(y)))


# ---------------------------------------------------------------------------------------------
# rounding


def round_layer(
    w,
    b,
    x=None,
    y=None,
    *,
    lo: int,
    hi: int,
    scale=None,
    objective: str = "hinge",
    targets=None,
    margin: float = 1.0,
    keep: str = "correct",
    bias_range=_BIAS_RANGE,
    mask=None,
) -> IntegerResult:
    """Plain rounding ``clip(round([w; b] / scale))``.  ``scale=None`` chooses it with
    :func:`choose_scale` on ``(x, y)``.  Without ``x`` (only possible with a given ``scale``)
    no objective is evaluated (``value`` NaN)."""
    t0 = time.perf_counter()
    evaluated = x is not None
    if not evaluated:
        if scale is None:
            raise ValueError("round_layer needs x (and y) to choose the scale, or an explicit scale")
        w_, b_ = _check_weights(w, b)
        p = _build(w_, b_, np.zeros((1, w_.shape[0])), None, lo=lo, hi=hi, scale=scale, objective="l1relu", targets=None,
                   margin=margin, keep="all", radius=0, bias_range=bias_range, mask=mask)
        value = math.nan
    else:
        p = _build(w, b, x, y, lo=lo, hi=hi, scale=scale, objective=objective, targets=targets, margin=margin, keep=keep,
                   radius=0, bias_range=bias_range, mask=mask)
        value = _obj(p, p.vround)
    return IntegerResult(
        layer=_layer(p, p.vround),
        method="round",
        objective=objective,
        value=value,
        round_value=value,
        bound=math.nan,
        gap=math.nan,
        status="rounded",
        solve_time_s=time.perf_counter() - t0,
        info=_common_info(p),
    )


# ---------------------------------------------------------------------------------------------
# exhaustive search (tests, tiny problems)


def brute_force_layer(
    w,
    b,
    x,
    y=None,
    *,
    lo: int,
    hi: int,
    scale=None,
    objective: str = "hinge",
    targets=None,
    margin: float = 1.0,
    keep: str = "correct",
    radius=None,
    bias_range=_BIAS_RANGE,
    mask=None,
    max_points: int = 2_000_000,
) -> IntegerResult:
    """Exhaustive minimum of the objective over the candidate box (same problem as
    :func:`mip_layer` / :func:`bnb_layer`).  For tiny layers only: refuses more than
    ``max_points`` assignments."""
    t0 = time.perf_counter()
    p = _build(w, b, x, y, lo=lo, hi=hi, scale=scale, objective=objective, targets=targets, margin=margin, keep=keep,
               radius=radius, bias_range=bias_range, mask=mask)
    free = np.flatnonzero((p.L < p.U).ravel())
    sizes = (p.U - p.L).ravel()[free] + 1
    total = int(np.prod(sizes.astype(np.float64)))
    if total > max_points:
        raise ValueError(f"brute force over {total} assignments exceeds max_points={max_points}")
    best_v, best_V = math.inf, None
    base = p.L.copy().ravel()
    ranges = [range(int(p.L.ravel()[j]), int(p.U.ravel()[j]) + 1) for j in free]
    it = itertools.product(*ranges)
    chunk = 4096
    while True:
        block = list(itertools.islice(it, chunk))
        if not block:
            break
        Vs = np.broadcast_to(base, (len(block), base.size)).copy()
        Vs[:, free] = np.asarray(block, np.int64).reshape(len(block), len(free))
        Vs = Vs.reshape((len(block),) + p.L.shape)
        vals = _objective_batch(Vs, p.xa, p.y, p.t, p.objective, p.margin, p.scale)
        i = int(np.argmin(vals))
        if vals[i] < best_v:
            best_v, best_V = float(vals[i]), Vs[i].copy()
    return IntegerResult(
        layer=_layer(p, best_V),
        method="brute_force",
        objective=objective,
        value=best_v,
        round_value=_obj(p, p.vround),
        bound=best_v,
        gap=0.0,
        status="optimal",
        solve_time_s=time.perf_counter() - t0,
        nodes=total,
        info=_common_info(p),
    )


# ---------------------------------------------------------------------------------------------
# MIP (python-mip, CBC)

def _mip_model(threads, max_gap, verbose):
    import mip

    m = mip.Model(sense=mip.MINIMIZE, solver_name=mip.CBC)
    m.verbose = 1 if verbose else 0
    m.threads = int(threads)
    m.max_mip_gap = float(max_gap)
    m.max_mip_gap_abs = 1e-10
    return m


def _add_vars(m, p: _Problem, cols):
    """Integer variables for the free weights of the given columns: dict (j, c) -> Var."""
    import mip

    out = {}
    for c in cols:
        for j in np.flatnonzero(p.L[:, c] < p.U[:, c]):
            out[(int(j), int(c))] = m.add_var(var_type=mip.INTEGER, lb=float(p.L[j, c]), ub=float(p.U[j, c]))
    return out


def _lin(terms, coef_scale, xrow, cols_sign):
    """Expression ``sum_{(c, sign)} sum_j sign * coef_scale * x_j * var_jc`` (sparse in x)."""
    import mip

    vs, cs = [], []
    for (c, sign) in cols_sign:
        for j, var in terms[c]:
            xv = xrow[j]
            if xv != 0.0:
                vs.append(var)
                cs.append(sign * coef_scale * float(xv))
    return mip.LinExpr(variables=vs, coeffs=cs)


def _mip_status(st):
    import mip

    S = mip.OptimizationStatus
    if st == S.OPTIMAL:
        return "optimal"
    if st == S.FEASIBLE:
        return "time_limit"
    if st == S.NO_SOLUTION_FOUND:
        return "no_solution"
    return f"solver_{st.name.lower()}"


def _solve(m, vars_, V_start, seconds):
    """Warm start, optimise, read back; returns (status, V_new or None, obj_value, obj_bound)."""
    m.start = [(var, float(V_start[j, c])) for (j, c), var in vars_.items()]
    st = m.optimize(max_seconds=max(float(seconds), 0.01))
    status = _mip_status(st)
    if status in ("optimal", "time_limit") and m.num_solutions > 0:
        V = V_start.copy()
        for (j, c), var in vars_.items():
            V[j, c] = int(round(var.x))
        return status, V, float(m.objective_value), float(m.objective_bound)
    bound = m.objective_bound
    return status, None, math.nan, float(bound) if bound is not None else math.nan


def _mip_joint_hinge(p: _Problem, V0, seconds, threads, max_gap, verbose):
    import mip

    m = _mip_model(threads, max_gap, verbose)
    k = p.L.shape[1]
    vars_ = _add_vars(m, p, range(k))
    terms = {c: [(j, vars_[(j, c)]) for j in range(p.L.shape[0]) if (j, c) in vars_] for c in range(k)}
    Vfix = np.where(p.L == p.U, p.L, 0).astype(np.float64)
    zfix = p.xa @ Vfix
    xis = []
    for i in range(p.xa.shape[0]):
        yi = int(p.y[i])
        xi = m.add_var(lb=0.0)
        xis.append(xi)
        for c in range(k):
            if c == yi:
                continue
            expr = _lin(terms, p.scale, p.xa[i], [(yi, 1.0), (c, -1.0)])
            rhs = p.margin - p.scale * (zfix[i, yi] - zfix[i, c])
            if len(expr.expr) == 0:
                xi.lb = max(xi.lb, rhs)
            else:
                m.add_constr(expr + xi >= rhs)
    m.objective = mip.xsum(xis)
    status, V, val, bnd = _solve(m, vars_, V0, seconds)
    n = p.xa.shape[0]
    return status, V, bnd / n, 1


def _mip_class_block(p: _Problem, V, c, seconds, threads, max_gap, verbose):
    """Hinge block of class ``c`` with the other classes fixed at ``V``."""
    import mip

    n, k = p.xa.shape[0], p.L.shape[1]
    s, mg = p.scale, p.margin
    z = p.xa @ V.astype(np.float64)
    rows = np.arange(n)
    zo = z.copy()
    zo[:, c] = -np.inf
    A = zo.max(axis=1)  # max over classes != c
    zb = zo.copy()
    zb[rows, p.y] = -np.inf
    B = zb.max(axis=1) if k > 2 else np.full(n, -np.inf)  # max over classes not in {c, y_i}
    free = np.flatnonzero(p.L[:, c] < p.U[:, c])
    if free.size == 0:
        return "optimal", V, math.nan, 0
    Vfix = V[:, c].astype(np.float64).copy()
    Vfix[free] = 0.0
    zfix = p.xa @ Vfix
    xf = p.xa[:, free]
    Lf, Uf = p.L[free, c].astype(np.float64), p.U[free, c].astype(np.float64)
    zmax = zfix + np.maximum(xf * Lf, xf * Uf).sum(axis=1)
    zmin = zfix + np.minimum(xf * Lf, xf * Uf).sum(axis=1)
    zy = z[rows, p.y]
    m = _mip_model(threads, max_gap, verbose)
    vf = [m.add_var(var_type=mip.INTEGER, lb=float(p.L[j, c]), ub=float(p.U[j, c])) for j in free]
    xis = []
    const = 0.0
    for i in range(n):
        nz = np.flatnonzero(xf[i])
        if p.y[i] == c:
            if mg - s * (zmin[i] - A[i]) <= 0.0:  # satisfied with slack 0 anywhere in the box
                continue
            xi = m.add_var(lb=0.0)
            expr = mip.LinExpr(variables=[vf[q] for q in nz], coeffs=[s * float(xf[i, q]) for q in nz])
            m.add_constr(expr + xi >= mg - s * (zfix[i] - A[i]))
        else:
            lb = max(0.0, mg - s * (zy[i] - B[i])) if math.isfinite(B[i]) else 0.0
            if mg - s * (zy[i] - zmax[i]) <= lb:  # the class-c constraint never binds
                const += lb
                continue
            xi = m.add_var(lb=lb)
            expr = mip.LinExpr(variables=[vf[q] for q in nz], coeffs=[-s * float(xf[i, q]) for q in nz])
            m.add_constr(expr + xi >= mg - s * (zy[i] - zfix[i]))
        xis.append(xi)
    if not xis:
        return "optimal", V, const / n, 0
    m.objective = mip.xsum(xis)
    m.start = [(var, float(V[j, c])) for var, j in zip(vf, free)]
    st = m.optimize(max_seconds=max(float(seconds), 0.01))
    status = _mip_status(st)
    if status in ("optimal", "time_limit") and m.num_solutions > 0:
        Vn = V.copy()
        for var, j in zip(vf, free):
            Vn[j, c] = int(round(var.x))
        return status, Vn, (float(m.objective_bound) + const) / n, 1
    return status, None, math.nan, 1


def _mip_l1relu_column(p: _Problem, V, c, seconds, threads, max_gap, verbose):
    import mip

    n = p.xa.shape[0]
    s = p.scale
    free = np.flatnonzero(p.L[:, c] < p.U[:, c])
    if free.size == 0:
        return "optimal", V, _col_l1(p, V, c), 0
    Vfix = V[:, c].astype(np.float64).copy()
    Vfix[free] = 0.0
    zfix = p.xa @ Vfix
    xf = p.xa[:, free]
    Lf, Uf = p.L[free, c].astype(np.float64), p.U[free, c].astype(np.float64)
    zmax = zfix + np.maximum(xf * Lf, xf * Uf).sum(axis=1)
    t = p.t[:, c]
    m = _mip_model(threads, max_gap, verbose)
    vf = [m.add_var(var_type=mip.INTEGER, lb=float(p.L[j, c]), ub=float(p.U[j, c])) for j in free]
    es = []
    for i in range(n):
        if t[i] <= 0 and s * zmax[i] <= 0:
            continue  # stays inactive anywhere in the box: no cost
        nz = np.flatnonzero(xf[i])
        e = m.add_var(lb=0.0)
        expr = mip.LinExpr(variables=[vf[q] for q in nz], coeffs=[s * float(xf[i, q]) for q in nz])
        m.add_constr(e - expr >= s * zfix[i] - (t[i] if t[i] > 0 else 0.0))  # e >= z - t   (t <= 0: e >= z)
        if t[i] > 0:
            m.add_constr(e + expr >= t[i] - s * zfix[i])  # e >= t - z
        es.append(e)
    if not es:
        return "optimal", V, 0.0, 0
    m.objective = mip.xsum(es)
    m.start = [(var, float(V[j, c])) for var, j in zip(vf, free)]
    st = m.optimize(max_seconds=max(float(seconds), 0.01))
    status = _mip_status(st)
    bnd = m.objective_bound
    bnd = float(bnd) / n if bnd is not None else math.nan
    if status in ("optimal", "time_limit") and m.num_solutions > 0:
        Vn = V.copy()
        for var, j in zip(vf, free):
            Vn[j, c] = int(round(var.x))
        return status, Vn, bnd, 1
    return status, None, bnd, 1


def _col_l1(p, V, c):
    z = p.scale * (p.xa @ V[:, c].astype(np.float64))
    t = p.t[:, c]
    return float(np.where(t > 0, np.abs(z - t), np.maximum(z, 0.0)).mean())


def mip_layer(
    w,
    b,
    x,
    y=None,
    *,
    lo: int,
    hi: int,
    scale=None,
    objective: str = "hinge",
    targets=None,
    margin: float = 1.0,
    keep: str = "correct",
    radius=0,
    bias_range=_BIAS_RANGE,
    mask=None,
    decompose: str = "auto",
    joint_max_vars: int = 200,
    time_limit=60.0,
    max_gap: float = 1e-4,
    sweeps: int = 3,
    threads: int = 1,
    verbose: bool = False,
    start=None,
) -> IntegerResult:
    """Integer weights by mixed-integer programming (python-mip, CBC); see the module docstring.

    ``objective``: ``"hinge"`` or ``"l1relu"``.  ``decompose``: ``"auto"``, ``"none"`` (joint
    MIP) or ``"class"`` (hinge: block-coordinate descent over output classes; ``l1relu`` always
    decomposes exactly per output column).  ``time_limit``: total seconds (> 0).
    ``max_gap``: CBC's relative optimality gap.  ``sweeps``: maximum passes over the classes.
    ``start``: optional integer layer ``[n_in(+1), n_out]`` to warm-start from instead of rounding.

    Returns an :class:`IntegerResult` whose ``value`` is never worse than rounding's
    ``round_value`` (otherwise rounding is returned with status ``"fallback_rounding"``).
    Status: ``"optimal"`` (joint or per-column MIPs proven optimal within ``max_gap``),
    ``"block_optimal"`` (class decomposition: a sweep without improvement, every block optimal),
    ``"time_limit"`` (best known solution when time ran out), ``"fallback_rounding"``.
    """
    t0 = time.perf_counter()
    tl = _check_time_limit(time_limit)
    _check_choice("decompose", decompose, ("auto", "none", "class"))
    if objective == "xent":
        raise ValueError("objective 'xent' is not linear: mip_layer supports 'hinge' and 'l1relu' (use bnb_layer for 'xent')")
    if not (isinstance(max_gap, (int, float)) and max_gap >= 0):
        raise ValueError(f"max_gap must be a number >= 0, got {max_gap!r}")
    if not _is_int(sweeps) or sweeps < 1:
        raise ValueError(f"sweeps must be a positive integer, got {sweeps!r}")
    p = _build(w, b, x, y, lo=lo, hi=hi, scale=scale, objective=objective, targets=targets, margin=margin, keep=keep,
               radius=radius, bias_range=bias_range, mask=mask)
    deadline = t0 + tl
    round_value = _obj(p, p.vround)
    V = p.vround.copy()
    if start is not None:
        S = np.asarray(start, np.int64)
        if S.shape != V.shape or np.any(S < p.L) or np.any(S > p.U):
            raise ValueError(f"start must be an integer array of shape {V.shape} inside the candidate box")
        if _obj(p, S) <= round_value:
            V = S.copy()
    value = _obj(p, V)
    k = p.L.shape[1]
    n_free = int((p.L < p.U).sum())
    info = _common_info(p)
    nodes = 0
    bound = math.nan
    statuses = []
    if objective == "l1relu":
        mode = "column"
        bounds = []
        for c in range(k):
            left = deadline - time.perf_counter()
            if left <= 0:
                statuses.append("time_limit")
                bounds.append(math.nan)
                continue
            st, Vn, bnd, nn = _mip_l1relu_column(p, V, c, left / (k - c), threads, max_gap, verbose)
            nodes += nn
            statuses.append(st)
            bounds.append(bnd)
            if Vn is not None and _col_l1(p, Vn, c) <= _col_l1(p, V, c) + 1e-12:
                V = Vn
        status = "optimal" if all(s_ == "optimal" for s_ in statuses) else "time_limit"
        bound = float(np.sum(bounds)) if all(math.isfinite(b_) for b_ in bounds) else math.nan
    else:
        mode = decompose if decompose != "auto" else ("none" if n_free <= joint_max_vars else "class")
        if mode == "none":
            st, Vn, bnd, nodes = _mip_joint_hinge(p, V, deadline - time.perf_counter(), threads, max_gap, verbose)
            statuses.append(st)
            if Vn is not None and _obj(p, Vn) <= value + 1e-12:
                V = Vn
            status = "optimal" if st == "optimal" else "time_limit"
            bound = bnd
        else:
            status = "time_limit"
            n_sweeps = 0
            for sweep in range(sweeps):
                improved, all_opt = False, True
                for c in range(k):
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        all_opt = False
                        break
                    st, Vn, _, nn = _mip_class_block(p, V, c, left / (k - c), threads, max_gap, verbose)
                    nodes += nn
                    statuses.append(st)
                    all_opt &= st == "optimal"
                    if Vn is not None:
                        vn = _obj(p, Vn)
                        if vn < value - 1e-12:
                            V, value, improved = Vn, vn, True
                        elif vn <= value + 1e-12:
                            V = Vn
                n_sweeps = sweep + 1
                if time.perf_counter() >= deadline:
                    status = "time_limit"
                    break
                if not improved:
                    status = "block_optimal" if all_opt else "time_limit"
                    break
            info["sweeps"] = n_sweeps
    value = _obj(p, V)
    message = ""
    if value > round_value + 1e-12:
        message = f"solver result {value:.6g} worse than rounding {round_value:.6g}: returned rounding"
        V, value, status = p.vround.copy(), round_value, "fallback_rounding"
    if mode in ("none", "column") and math.isfinite(bound):
        bound = min(bound, value)
    info.update({"decompose": mode, "subproblem_statuses": ",".join(sorted(set(statuses)))})
    return IntegerResult(
        layer=_layer(p, V),
        method="mip",
        objective=objective,
        value=value,
        round_value=round_value,
        bound=bound,
        gap=_rel_gap(value, bound),
        status=status,
        solve_time_s=time.perf_counter() - t0,
        nodes=nodes,
        message=message,
        info=info,
    )


# ---------------------------------------------------------------------------------------------
# branch and bound coupled with backpropagation (our reconstruction)


def _loss_jax(V, xa, y, t, s, m, objective):
    z = s * (xa @ V)
    if objective == "l1relu":
        return jnp.mean(jnp.sum(jnp.where(t > 0, jnp.abs(z - t), jnp.maximum(z, 0.0)), axis=1))
    if objective == "xent":
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, y))
    onehot = y[:, None] == jnp.arange(z.shape[1], dtype=y.dtype)[None, :]
    zy = jnp.sum(jnp.where(onehot, z, 0.0), axis=1)
    zo = jnp.max(jnp.where(onehot, -jnp.inf, z), axis=1)
    return jnp.mean(jnp.maximum(0.0, m - (zy - zo)))


@functools.partial(jax.jit, static_argnames=("objective", "steps"))
def _relax(V0, L, U, xa, y, t, s, m, lr, *, objective, steps):
    """Retrain the free weights by projected Adam inside ``[L, U]``; certified bound; rounding."""
    f = functools.partial(_loss_jax, xa=xa, y=y, t=t, s=s, m=m, objective=objective)
    V = jnp.clip(V0, L, U)
    if steps > 0:  # Adam written out: optax's bias correction mixes int and float (strict promotion)
        dt = V.dtype
        b1, b2, eps = jnp.asarray(0.9, dt), jnp.asarray(0.999, dt), jnp.asarray(1e-8, dt)

        def body(carry, i):
            v, mu, nu = carry
            g = jax.grad(f)(v)
            mu = b1 * mu + (1 - b1) * g
            nu = b2 * nu + (1 - b2) * g * g
            k = (i + 1).astype(dt)
            step = lr * (0.01 + 0.99 * 0.5 * (1 + jnp.cos(jnp.pi * i.astype(dt) / steps)))
            upd = step * (mu / (1 - b1**k)) / (jnp.sqrt(nu / (1 - b2**k)) + eps)
            return (jnp.clip(v - upd, L, U), mu, nu), None

        z0 = jnp.zeros_like(V)
        (V, _, _), _ = jax.lax.scan(body, (V, z0, z0), jnp.arange(steps, dtype=jnp.int32))
    fv, g = jax.value_and_grad(f)(V)
    bound = fv + jnp.sum(jnp.minimum(g * (L - V), g * (U - V)))
    Vr = jnp.clip(jnp.round(V), L, U)
    return V, fv, g, bound, Vr, f(Vr)


class _Node(NamedTuple):
    L: np.ndarray
    U: np.ndarray
    V: np.ndarray  # warm start (float, integer units)
    bound: float  # parent's bound (valid for this node's box)
    depth: int


def bnb_layer(
    w,
    b,
    x,
    y=None,
    *,
    lo: int,
    hi: int,
    scale=None,
    objective: str = "xent",
    targets=None,
    margin: float = 1.0,
    keep: str = "correct",
    radius=0,
    bias_range=_BIAS_RANGE,
    mask=None,
    group_size: int = 1,
    branching: str = "fractional",
    node_limit: int = 10_000,
    time_limit=60.0,
    gd_steps: int = 100,
    lr: float = 0.1,
    abs_tol: float = 1e-9,
    verbose: bool = False,
) -> IntegerResult:
    """Branch and bound coupled with backpropagation -- **our reconstruction of the seed's
    method** (see the module docstring for the algorithm and the statuses).

    ``objective``: ``"xent"`` (default), ``"hinge"`` or ``"l1relu"``.  ``group_size``: weights
    fixed per branching (1 = exact floor/ceil branching, status ``"optimal"`` is then a proof);
    ``branching``: ``"fractional"`` or ``"gradient"``; ``node_limit`` relaxations and
    ``time_limit`` seconds (> 0); ``gd_steps`` projected-Adam steps per node with learning rate
    ``lr`` (integer units); ``abs_tol``: a node is pruned when its bound is within ``abs_tol``
    of the incumbent.  The returned ``value`` is never worse than rounding's ``round_value``.
    """
    t0 = time.perf_counter()
    tl = _check_time_limit(time_limit)
    _check_choice("branching", branching, ("fractional", "gradient"))
    for name, v, lo_ in (("group_size", group_size, 1), ("node_limit", node_limit, 1), ("gd_steps", gd_steps, 0)):
        if not _is_int(v) or v < lo_:
            raise ValueError(f"{name} must be an integer >= {lo_}, got {v!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    p = _build(w, b, x, y, lo=lo, hi=hi, scale=scale, objective=objective, targets=targets, margin=margin, keep=keep,
               radius=radius, bias_range=bias_range, mask=mask)
    deadline = t0 + tl
    fdt = jnp.result_type(float)
    xa = jnp.asarray(p.xa, fdt)
    yj = jnp.asarray(p.y if p.y is not None else np.zeros(p.xa.shape[0], np.int64), jnp.int32)
    tj = jnp.asarray(p.t if p.t is not None else np.zeros((1, 1)), fdt)
    s_j, m_j, lr_j = jnp.asarray(p.scale, fdt), jnp.asarray(p.margin, fdt), jnp.asarray(lr, fdt)

    round_value = _obj(p, p.vround)
    inc_V, inc_v = p.vround.copy(), round_value  # incumbent: starts at rounding
    inc_search = float(_loss_jax(jnp.asarray(p.vround, fdt), xa, yj, tj, s_j, m_j, objective))  # same precision as bounds
    exact = group_size == 1
    stack = [_Node(p.L.copy(), p.U.copy(), np.clip(p.vf, p.L, p.U), -math.inf, 0)]
    nodes = pruned = max_depth = updates = 0
    root_bound, root_value = math.nan, math.nan
    status = None
    while stack:
        if nodes >= node_limit:
            status = "node_limit"
            break
        if time.perf_counter() >= deadline:
            status = "time_limit"
            break
        node = stack.pop()
        if node.bound >= inc_search - abs_tol:
            pruned += 1
            continue
        Lj, Uj = jnp.asarray(node.L, fdt), jnp.asarray(node.U, fdt)
        V, fv, g, bnd, Vr, fr = _relax(jnp.asarray(node.V, fdt), Lj, Uj, xa, yj, tj, s_j, m_j, lr_j, objective=objective, steps=gd_steps)
        nodes += 1
        max_depth = max(max_depth, node.depth)
        fr = float(fr)
        bnd = max(float(bnd), node.bound)
        if nodes == 1:
            root_bound, root_value = bnd, float(fv)
        if fr < inc_search - abs_tol:
            Vr_np = np.asarray(Vr, np.float64).round().astype(np.int64)
            v64 = _obj(p, Vr_np)
            if v64 < inc_v:
                inc_V, inc_v, updates = Vr_np, v64, updates + 1
            inc_search = min(inc_search, fr)
        if verbose:
            print(f"[bnb] node {nodes} depth {node.depth} relax {float(fv):.6g} bound {bnd:.6g} incumbent {inc_search:.6g}")
        if bnd >= inc_search - abs_tol:
            pruned += 1
            continue
        L, U = node.L, node.U
        freem = L < U
        if not freem.any():
            continue  # leaf: its value was offered to the incumbent above
        Vn = np.asarray(V, np.float64)
        gn = np.asarray(g, np.float64)
        frac = np.abs(Vn - np.round(Vn))
        gmax = max(float(np.abs(gn).max()), 1e-30)
        if branching == "fractional":
            score = frac + 1e-3 * np.abs(gn) / gmax
        else:
            score = np.abs(gn) / gmax + 1e-3 * frac
        score = np.where(freem, score, -np.inf).ravel()
        if exact:
            j = int(np.argmax(score))
            v = Vn.ravel()[j]
            Lf, Uf = L.ravel()[j], U.ravel()[j]
            kk = math.floor(v)
            if v - kk < 1e-9:  # integral: split below / above it
                kk = int(round(v)) if round(v) < Uf else int(round(v)) - 1
            kk = int(min(max(kk, Lf), Uf - 1))
            La, Ua = L.copy(), U.copy()
            Ua.ravel()[j] = kk  # x <= k
            Lb, Ub = L.copy(), U.copy()
            Lb.ravel()[j] = kk + 1  # x >= k + 1
            below = _Node(La, Ua, np.clip(Vn, La, Ua), bnd, node.depth + 1)
            above = _Node(Lb, Ub, np.clip(Vn, Lb, Ub), bnd, node.depth + 1)
            near_below = round(v) <= kk
            stack.extend([above, below] if near_below else [below, above])  # nearest child popped first
        else:
            order = np.argsort(-score)
            nfree = int(freem.sum())
            G = order[: min(group_size, nfree)]
            vG = Vn.ravel()[G]
            LG, UG = L.ravel()[G], U.ravel()[G]
            r = np.clip(np.round(vG), LG, UG)
            direction = np.where(vG > r, 1.0, np.where(vG < r, -1.0, np.where(p.vf.ravel()[G] >= r, 1.0, -1.0)))
            o = np.clip(r + direction, LG, UG)
            o = np.where(o == r, np.clip(r - direction, LG, UG), o)
            children = []
            for val in (o, r):  # push 'other' first so the nearest rounding is explored first
                if val is o and np.array_equal(o, r):
                    continue
                Lc, Uc = L.copy(), U.copy()
                Lc.ravel()[G] = val.astype(np.int64)
                Uc.ravel()[G] = val.astype(np.int64)
                children.append(_Node(Lc, Uc, np.clip(Vn, Lc, Uc), bnd, node.depth + 1))
            stack.extend(children)
    if status is None:
        status = "optimal" if exact else "tree_exhausted"
    # global lower bound
    if exact:
        if status == "optimal":
            bound = inc_v
        else:
            bound = min([inc_v] + [nd.bound for nd in stack]) if nodes else -math.inf
    else:
        bound = min(root_bound, inc_v) if math.isfinite(root_bound) else math.nan
    if not math.isfinite(bound):
        bound = math.nan
    value = _obj(p, inc_V)
    message = ""
    if value > round_value + 1e-12:  # cannot happen (the incumbent starts at rounding); kept as a guard
        message = "search result worse than rounding: returned rounding"
        inc_V, value, status = p.vround.copy(), round_value, "fallback_rounding"
    info = _common_info(p)
    info.update(
        {
            "group_size": int(group_size),
            "branching": branching,
            "gd_steps": int(gd_steps),
            "pruned": pruned,
            "max_depth": max_depth,
            "incumbent_updates": updates,
            "root_relaxation": root_value,
            "root_bound": root_bound,
            "open_nodes": len(stack),
        }
    )
    return IntegerResult(
        layer=_layer(p, inc_V),
        method="bnb",
        objective=objective,
        value=value,
        round_value=round_value,
        bound=bound,
        gap=_rel_gap(value, bound),
        status=status,
        solve_time_s=time.perf_counter() - t0,
        nodes=nodes,
        message=message,
        info=info,
    )


# ---------------------------------------------------------------------------------------------
# layer by layer: MLPs and the fixed-point export


def _wb(layer):
    if hasattr(layer, "w") and hasattr(layer, "b"):
        return np.asarray(layer.w, np.float64), np.asarray(layer.b, np.float64)
    w, b = layer
    return np.asarray(w, np.float64), np.asarray(b, np.float64)


def mlp_forward(layers: Sequence[IntegerLayer], x) -> np.ndarray:
    """Dequantised forward pass of an integer ReLU MLP on float inputs ``x`` (float64 logits,
    up to a positive factor per sample-independent scale: same argmax as the integer network)."""
    if not layers:
        raise ValueError("the network has no layers")
    a = np.asarray(x, np.float64)
    for i, layer in enumerate(layers):
        z = a @ layer.w.astype(np.float64) + layer.b.astype(np.float64)
        if i == len(layers) - 1:
            return layer.scale * z
        a = layer.input_unit * np.maximum(z, 0.0) / layers[i + 1].input_unit
    raise AssertionError


def fixed_point_forward(layers: Sequence[IntegerLayer], x_int) -> jax.Array:
    """Run an integer ReLU MLP in exact int32 arithmetic (spikejax fixed-point mode).

    ``x_int``: integer inputs ``[..., n_in]`` with ``x = x_int / layers[0].input_unit`` (e.g.
    uint8 pixels with ``input_unit=255``, or spike counts over ``T`` ticks with ``T``).  Each
    layer is ``a = relu(fixed_dense(w, a_prev) + input_unit * b)``; the last layer returns its
    int32 pre-activations (proportional to the dequantised logits).  Raises ``ValueError`` when
    an int32 overflow is possible for the given inputs.
    """
    from .fixed_point import fixed_dense

    if not layers:
        raise ValueError("the network has no layers")
    a = jnp.asarray(x_int)
    if not jnp.issubdtype(a.dtype, jnp.integer):
        raise ValueError(f"x_int must be an integer array, got dtype {a.dtype}")
    amax = int(np.abs(np.asarray(a, np.int64)).max()) if a.size else 0
    for i, layer in enumerate(layers):
        worst = amax * int(np.abs(layer.w.astype(np.int64)).sum(axis=0).max()) + layer.input_unit * int(np.abs(layer.b.astype(np.int64)).max())
        if worst > _INT32_MAX:
            raise ValueError(f"layer {i}: int32 overflow possible (worst-case |pre-activation| {worst} > 2**31 - 1)")
        bias = jnp.asarray(layer.input_unit * layer.b.astype(np.int64), jnp.int32)
        z = fixed_dense(jnp.asarray(layer.w, jnp.int32), a)
        z = z + jnp.reshape(bias, (1,) * (z.ndim - 1) + (-1,))
        if i == len(layers) - 1:
            return z
        a = jnp.maximum(z, 0)
        amax = int(np.asarray(a).max()) if a.size else 0
    raise AssertionError


def integerize_mlp(
    layers,
    x,
    y,
    *,
    lo: int,
    hi: int,
    method: str = "round",
    input_unit: int = 1,
    time_limit=60.0,
    keep: str = "correct",
    margin: float = 1.0,
    bias_range=_BIAS_RANGE,
    output_objective=None,
    mip_options: dict | None = None,
    bnb_options: dict | None = None,
) -> tuple[list[IntegerLayer], list[IntegerResult]]:
    """Integer weights for a float ReLU MLP, layer by layer from the input (module docstring).

    ``layers``: sequence of ``Dense`` / ``(w, b)``; ``x``: float inputs equal to
    ``x_int / input_unit``; ``method``: ``"round"``, ``"mip"`` or ``"bnb"``; ``time_limit``:
    total seconds (> 0, or None), split equally over the layers.  Hidden layers use
    the ``l1relu`` objective against the float network's pre-activations, the output layer
    ``output_objective`` (default ``"hinge"`` for MIP and rounding, ``"xent"`` for B&B) on the
    samples selected by ``keep``.  Returns ``(integer layers, per-layer results)``.
    """
    _check_choice("method", method, ("round", "mip", "bnb"))
    if layers is None or len(layers) == 0:
        raise ValueError("the model has no weights: no layers given")
    tl = _check_time_limit(time_limit)
    if not _is_int(input_unit) or input_unit < 1:
        raise ValueError(f"input_unit must be a positive integer, got {input_unit!r}")
    wbs = [_wb(layer) for layer in layers]
    for i, (w, b) in enumerate(wbs):
        _check_weights(w, b)
        if i and w.shape[0] != wbs[i - 1][0].shape[1]:
            raise ValueError(f"layer {i}: expects {w.shape[0]} inputs, the previous layer has {wbs[i - 1][0].shape[1]} outputs")
    x = _check_x(x, wbs[0][0].shape[0])
    budgets = [tl / len(wbs) if math.isfinite(tl) else None] * len(wbs)
    # float network activity (targets for the hidden layers)
    h = x
    float_pre = []
    for w, b in wbs:
        zf = h @ w + b
        float_pre.append(zf)
        h = np.maximum(zf, 0.0)
    a = x  # inputs of the current layer as seen by the integer network
    K = int(input_unit)
    out_layers, results = [], []
    for i, (w, b) in enumerate(wbs):
        last = i == len(wbs) - 1
        if last:
            obj = output_objective or ("xent" if method == "bnb" else "hinge")
            kw = dict(objective=obj, margin=margin, keep=keep)
            yy = y
        else:
            kw = dict(objective="l1relu", targets=float_pre[i], margin=margin)
            yy = None
        common = dict(lo=lo, hi=hi, bias_range=bias_range, **kw)
        if method == "round":
            r = round_layer(w, b, a, yy, **common)
        elif method == "mip":
            r = mip_layer(w, b, a, yy, time_limit=budgets[i], **common, **(mip_options or {}))
        else:
            r = bnb_layer(w, b, a, yy, time_limit=budgets[i], **common, **(bnb_options or {}))
        layer = r.layer._replace(input_unit=K)
        r.layer = layer
        out_layers.append(layer)
        results.append(r)
        if not last:
            z = a @ layer.w.astype(np.float64) + layer.b.astype(np.float64)
            K_next = max(1, int(round(K / layer.scale)))
            a = K * np.maximum(z, 0.0) / K_next
            K = K_next
    return out_layers, results
