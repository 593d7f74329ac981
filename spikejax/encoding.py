"""Input encoders and output decoders (pure, jittable, time-major).

Encoders turn an analog input ``x`` (values in [0, 1] unless said otherwise, any shape) into a
time-major spike raster ``[T, *x.shape]`` of 0/1 values (float32 by default, ready for matmuls):

* :func:`rate` -- Bernoulli ("Poisson") rate code: each step spikes with probability ``x * max_prob``;
  :func:`poisson` takes rates in Hz and ``dt`` in seconds instead.
* :func:`latency` / :func:`latency_times` -- time-to-first-spike code, one spike per nonzero input,
  earlier for larger values (``'linear'`` and ``'log'`` variants, formulas below).
* :func:`binarize` -- ``x >= threshold`` (Whetstone's binarised MNIST inputs).
* :func:`sobel` / :func:`contour` -- Sobel gradient magnitude, thresholded into an edge image.
* :func:`direct` -- direct current injection: the analog value repeated over ``T`` steps.
* :func:`regular` -- deterministic regular spike trains at a given rate.

Decoders read a time-major output ``[T, ..., C]`` (class axis last) and return ``int32 [...]``
class predictions (or the scores they argmax):

* :func:`count_decode` (spike-count argmax), :func:`rate_decode` (firing rates),
* :func:`first_spike_decode` (earliest output spike wins), :func:`first_spike_times`,
* :func:`membrane_decode` / :func:`membrane_readout` (max, last or mean membrane potential),
* the N-hot population code of Whetstone (papers.md 3.2): :func:`nhot_key`,
  :func:`nhot_scores`, :func:`nhot_decode`, :func:`nhot_targets`.

Tie rule for every argmax/argmin decoder: the lowest class index wins. A sample whose output
never spikes decodes to ``no_spike`` (default ``-1``, never a valid class, so it counts as an
error in accuracy).

Value checks (probabilities outside [0, 1], ``T <= 0``, wrong ranks) raise ``ValueError`` naming
the argument; value checks on array contents run only on concrete (non-traced) inputs. ``T``,
``num_classes``, ``width`` and method names are static arguments under ``jax.jit``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import is_concrete

__all__ = [
    "rate",
    "poisson",
    "latency",
    "latency_times",
    "binarize",
    "sobel",
    "contour",
    "direct",
    "regular",
    "spike_count",
    "count_decode",
    "rate_decode",
    "first_spike_times",
    "first_spike_decode",
    "membrane_readout",
    "membrane_decode",
    "nhot_key",
    "nhot_scores",
    "nhot_decode",
    "nhot_targets",
]


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a Python int >= {minimum} (a static argument), got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _as_float(name: str, x, dtype=jnp.float32) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(dtype)
    elif jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise ValueError(f"{name} must be real, got dtype {x.dtype}")
    return x


def _check_in_range(name: str, x, lo: float, hi: float, *, open_hi: bool = False):
    if not is_concrete(x):
        return
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        return
    bad = ~np.isfinite(arr) | (arr < lo) | ((arr >= hi) if open_hi else (arr > hi))
    if np.any(bad):
        rng = f"[{lo}, {hi})" if open_hi else f"[{lo}, {hi}]"
        raise ValueError(
            f"{name} must lie in {rng}; got values in [{np.nanmin(arr):g}, {np.nanmax(arr):g}]"
            f"{' (with non-finite entries)' if not np.all(np.isfinite(arr)) else ''}"
        )


def _check_min_rank(name: str, x, rank: int, layout: str):
    if jnp.ndim(x) < rank:
        raise ValueError(f"{name} must have rank >= {rank} ({layout}), got shape {jnp.shape(x)}")


def _time_broadcast(a: jax.Array, T: int) -> jax.Array:
    """``arange(T)`` shaped ``[T, 1, ..., 1]`` to compare with ``a[None]`` without rank promotion."""
    return jnp.arange(T, dtype=jnp.int32).reshape((T,) + (1,) * a.ndim)


# --------------------------------------------------------------------------------------------
# encoders
# --------------------------------------------------------------------------------------------


def rate(key: jax.Array, x, T: int, max_prob: float = 1.0, *, dtype=jnp.float32) -> jax.Array:
    """Bernoulli rate code: ``spikes[t, i] ~ Bernoulli(max_prob * x[i])`` independently per step.

    Args:
      key: PRNG key.
      x: intensities in [0, 1], any shape.
      T: number of time steps (static).
      max_prob: spike probability per step of an input equal to 1, in [0, 1].

    Returns:
      ``[T, *x.shape]`` array of 0/1 in ``dtype``; the expected count is ``T * max_prob * x``.
    """
    T = _check_int("T", T)
    _check_in_range("max_prob", max_prob, 0.0, 1.0)
    x = _as_float("x", x)
    _check_in_range("x", x, 0.0, 1.0)
    return _rate_impl(key, x, jnp.asarray(max_prob, dtype=x.dtype), T, jnp.dtype(dtype))


@partial(jax.jit, static_argnums=(3, 4))
def _rate_impl(key, x, max_prob, T, dtype):
    p = x * max_prob
    u = jax.random.uniform(key, (T,) + x.shape, dtype=x.dtype)
    return (u < p[None]).astype(dtype)


def poisson(key: jax.Array, rate_hz, T: int, dt: float = 1e-3, *, dtype=jnp.float32) -> jax.Array:
    """Poisson spike trains of rate ``rate_hz`` (Hz), discretised as Bernoulli(``rate_hz * dt``) per step.

    ``dt`` is the step in seconds; every ``rate_hz * dt`` must lie in [0, 1].
    """
    T = _check_int("T", T)
    _check_in_range("dt", dt, 0.0, np.inf)
    if is_concrete(dt) and float(dt) <= 0:
        raise ValueError(f"dt must be positive, got {dt!r}")
    r = _as_float("rate_hz", rate_hz)
    _check_in_range("rate_hz", r, 0.0, np.inf)
    p = r * jnp.asarray(dt, dtype=r.dtype)
    _check_in_range("rate_hz * dt (spike probability per step)", p, 0.0, 1.0)
    return rate(key, p, T, 1.0, dtype=dtype)


_LATENCY_METHODS = ("linear", "log")


def latency_times(x, T: int, method: str = "linear", *, tau: float = 20e-3, threshold: float = 0.2, dt: float = 1e-3):
    """Spike step of each input under the latency code, ``int32 [*x.shape]``; ``T`` means no spike.

    With ``x`` in [0, 1] and ``r(z) = floor(z + 1/2)`` (round half up):

    * ``'linear'``: ``t = r((1 - x) * (T - 1))``: ``x = 1`` fires at step 0, ``x -> 0+`` at ``T - 1``.
    * ``'log'`` (RC charging): a leaky integrator ``tau dv/dt = -v + x`` starting at 0 reaches
      ``threshold`` at ``tau * ln(x / (x - threshold))`` seconds, so
      ``t = min(r(tau / dt * ln(x / (x - threshold))), T - 1)`` for ``x > threshold``; inputs
      ``0 < x <= threshold`` (which never reach threshold) fire at the last step ``T - 1``.

    ``x == 0`` never fires (``t = T``); every nonzero input fires exactly once, and a larger
    value never fires later than a smaller one. ``tau`` and ``dt`` are in seconds,
    ``threshold`` in [0, 1).
    """
    T = _check_int("T", T)
    if method not in _LATENCY_METHODS:
        raise ValueError(f"method must be one of {list(_LATENCY_METHODS)}, got {method!r}")
    x = _as_float("x", x)
    _check_in_range("x", x, 0.0, 1.0)
    if method == "log":
        _check_in_range("threshold", threshold, 0.0, 1.0, open_hi=True)
        for name, v in (("tau", tau), ("dt", dt)):
            if is_concrete(v) and not (np.isfinite(float(v)) and float(v) > 0):
                raise ValueError(f"{name} must be a positive time in seconds, got {v!r}")
    scale = jnp.asarray(tau, dtype=x.dtype) / jnp.asarray(dt, dtype=x.dtype)
    return _latency_times_impl(x, jnp.asarray(threshold, dtype=x.dtype), scale, T, method)


@partial(jax.jit, static_argnums=(3, 4))
def _latency_times_impl(x, th, scale, T, method):
    if method == "linear":
        steps = jnp.floor((1.0 - x) * (T - 1) + 0.5)
    else:
        fires = x > th
        safe_x = jnp.where(fires, x, jnp.ones_like(x))
        safe_den = jnp.where(fires, x - th, jnp.ones_like(x))
        t_cont = scale * jnp.log(safe_x / safe_den)
        steps = jnp.where(fires, jnp.floor(t_cont + 0.5), jnp.full_like(x, T - 1))
    steps = jnp.clip(steps, 0.0, float(T - 1)).astype(jnp.int32)
    return jnp.where(x > 0, steps, jnp.full(steps.shape, T, dtype=jnp.int32))


def latency(
    x,
    T: int,
    method: str = "linear",
    *,
    tau: float = 20e-3,
    threshold: float = 0.2,
    dt: float = 1e-3,
    dtype=jnp.float32,
) -> jax.Array:
    """Time-to-first-spike code: ``[T, *x.shape]`` with one spike at :func:`latency_times` per nonzero input."""
    t = latency_times(x, T, method, tau=tau, threshold=threshold, dt=dt)
    return (_time_broadcast(t, int(T)) == t[None]).astype(dtype)


def binarize(x, threshold: float = 0.5, *, dtype=jnp.float32) -> jax.Array:
    """``1[x >= threshold]`` elementwise (same shape as ``x``); combine with :func:`direct` for ``[T, ...]``."""
    x = _as_float("x", x)
    return (x >= jnp.asarray(threshold, dtype=x.dtype)).astype(dtype)


_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def sobel(x, *, pad_mode: str = "constant") -> jax.Array:
    """Sobel gradient magnitude ``sqrt(gx^2 + gy^2)`` over the last two axes ``[..., H, W]``.

    ``gx`` (horizontal) uses the kernel ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (column
    ``j+1`` minus column ``j-1``), ``gy`` its transpose (row ``i+1`` minus row ``i-1``). The image
    is padded by one pixel with ``pad_mode`` (``'constant'`` = zeros, a black background, so
    strokes touching the border still get an edge). The output has the input's shape; a unit
    step edge gives magnitude 4.
    """
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"pad_mode must be one of {list(_PAD_MODES)}, got {pad_mode!r}")
    x = _as_float("x", x)
    _check_min_rank("x", x, 2, "[..., H, W]")
    return _sobel_impl(x, pad_mode)


@partial(jax.jit, static_argnums=1)
def _sobel_impl(x, pad_mode):
    H, W = x.shape[-2:]
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], mode=pad_mode)

    def s(di, dj):  # neighbour at offset (di, dj)
        return xp[..., 1 + di : 1 + di + H, 1 + dj : 1 + dj + W]

    gx = (s(-1, 1) + 2.0 * s(0, 1) + s(1, 1)) - (s(-1, -1) + 2.0 * s(0, -1) + s(1, -1))
    gy = (s(1, -1) + 2.0 * s(1, 0) + s(1, 1)) - (s(-1, -1) + 2.0 * s(-1, 0) + s(-1, 1))
    return jnp.sqrt(gx * gx + gy * gy)


def contour(x, threshold: float = 1.0, *, pad_mode: str = "constant", dtype=jnp.float32) -> jax.Array:
    """Edge image ``1[sobel(x) >= threshold]`` over the last two axes (Whetstone-style contour input).

    With images in [0, 1] a sharp unit edge has magnitude 4 on both sides of the boundary; the
    default ``threshold = 1.0`` keeps pixels where the local intensity changes by about 0.25 or more.
    """
    mag = sobel(x, pad_mode=pad_mode)
    return (mag >= jnp.asarray(threshold, dtype=mag.dtype)).astype(dtype)


def direct(x, T: int, *, dtype=None) -> jax.Array:
    """Direct current injection: ``x`` repeated over ``T`` steps, ``[T, *x.shape]`` (no randomness)."""
    T = _check_int("T", T)
    x = _as_float("x", x) if dtype is None else jnp.asarray(x).astype(dtype)
    return jnp.broadcast_to(x[None], (T,) + x.shape)


def regular(rate_hz, T: int, dt: float = 1e-3, phase: float = 0.0, *, dtype=jnp.float32) -> jax.Array:
    """Deterministic regular spike trains, ``[T, *rate_hz.shape]``.

    With ``p = rate_hz * dt`` (spikes per step, must lie in [0, 1]) a spike is emitted at step
    ``t`` iff ``floor((t + 1) p + phase) > floor(t p + phase)``: an accumulator that gains ``p``
    per step and fires when it crosses an integer. With ``phase = 0`` the first spike is at
    step ``ceil(1/p) - 1`` and then every ``1/p`` steps on average; over ``T`` steps there are
    ``floor(T p + phase)`` spikes. ``phase`` in [0, 1) advances the train (``phase = 1 - p``
    gives a spike at step 0).
    """
    T = _check_int("T", T)
    if is_concrete(dt) and not (np.isfinite(float(dt)) and float(dt) > 0):
        raise ValueError(f"dt must be a positive time in seconds, got {dt!r}")
    _check_in_range("phase", phase, 0.0, 1.0, open_hi=True)
    r = _as_float("rate_hz", rate_hz)
    _check_in_range("rate_hz", r, 0.0, np.inf)
    p = r * jnp.asarray(dt, dtype=r.dtype)
    _check_in_range("rate_hz * dt (spikes per step)", p, 0.0, 1.0)
    t = _time_broadcast(p, T).astype(p.dtype)
    ph = jnp.asarray(phase, dtype=p.dtype)
    return (jnp.floor((t + 1.0) * p[None] + ph) > jnp.floor(t * p[None] + ph)).astype(dtype)


# --------------------------------------------------------------------------------------------
# decoders
# --------------------------------------------------------------------------------------------


def spike_count(spikes) -> jax.Array:
    """Spikes summed over the time axis 0: ``[T, ...] -> [...]``."""
    spikes = jnp.asarray(spikes)
    _check_min_rank("spikes", spikes, 1, "[T, ...]")
    if spikes.dtype == jnp.bool_:
        spikes = spikes.astype(jnp.int32)
    return jnp.sum(spikes, axis=0)


def count_decode(spikes, *, no_spike: int = -1) -> jax.Array:
    """Class with the most output spikes: ``spikes [T, ..., C] -> int32 [...]``.

    Ties go to the lowest class index; samples with no output spike at all decode to ``no_spike``.
    """
    spikes = jnp.asarray(spikes)
    _check_min_rank("spikes", spikes, 2, "[T, ..., C] with the class axis last")
    counts = spike_count(spikes)
    pred = jnp.argmax(counts, axis=-1).astype(jnp.int32)
    any_spike = jnp.max(counts, axis=-1) > 0
    return jnp.where(any_spike, pred, jnp.full(pred.shape, no_spike, dtype=jnp.int32))


def rate_decode(spikes, dt: float | None = None) -> jax.Array:
    """Firing rate per unit, ``[T, ...] -> [...]``: spikes per step, or in Hz when ``dt`` (s) is given."""
    spikes = _as_float("spikes", spikes)
    _check_min_rank("spikes", spikes, 1, "[T, ...]")
    r = jnp.mean(spikes, axis=0)
    if dt is None:
        return r
    if is_concrete(dt) and not (np.isfinite(float(dt)) and float(dt) > 0):
        raise ValueError(f"dt must be a positive time in seconds, got {dt!r}")
    return r / jnp.asarray(dt, dtype=r.dtype)


def first_spike_times(spikes) -> jax.Array:
    """Step of each unit's first spike (``spikes > 0``), ``[T, ...] -> int32 [...]``; ``T`` if it never spikes."""
    spikes = jnp.asarray(spikes)
    _check_min_rank("spikes", spikes, 1, "[T, ...]")
    T = spikes.shape[0]
    fired = spikes > 0
    t = jnp.argmax(fired, axis=0).astype(jnp.int32)
    return jnp.where(jnp.any(fired, axis=0), t, jnp.full(t.shape, T, dtype=jnp.int32))


_TIE_BREAKS = ("index", "count")


def first_spike_decode(spikes, *, tie_break: str = "index", no_spike: int = -1) -> jax.Array:
    """The class whose output unit spikes first: ``spikes [T, ..., C] -> int32 [...]``.

    Classes tied on the earliest spike step are resolved by ``tie_break``: ``'index'`` (default)
    takes the lowest class index; ``'count'`` takes the one with the most spikes over the whole
    window, then the lowest index. Samples with no output spike decode to ``no_spike``.
    """
    if tie_break not in _TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {list(_TIE_BREAKS)}, got {tie_break!r}")
    spikes = jnp.asarray(spikes)
    _check_min_rank("spikes", spikes, 2, "[T, ..., C] with the class axis last")
    T = spikes.shape[0]
    t_first = first_spike_times(spikes)
    if tie_break == "count":
        counts = jnp.sum((spikes > 0).astype(jnp.int32), axis=0)
        score = t_first * (T + 1) - counts  # lexicographic: earliest first, then most spikes
    else:
        score = t_first
    pred = jnp.argmin(score, axis=-1).astype(jnp.int32)
    any_spike = jnp.min(t_first, axis=-1) < T
    return jnp.where(any_spike, pred, jnp.full(pred.shape, no_spike, dtype=jnp.int32))


_REDUCTIONS = ("max", "last", "mean")


def membrane_readout(v, reduce: str = "max") -> jax.Array:
    """Reduce a membrane trace ``v [T, ...]`` over time: ``'max'``, ``'last'`` (``v[-1]``) or ``'mean'``."""
    if reduce not in _REDUCTIONS:
        raise ValueError(f"reduce must be one of {list(_REDUCTIONS)}, got {reduce!r}")
    v = _as_float("v", v)
    _check_min_rank("v", v, 1, "[T, ...]")
    if reduce == "max":
        return jnp.max(v, axis=0)
    if reduce == "last":
        return v[-1]
    return jnp.mean(v, axis=0)


def membrane_decode(v, reduce: str = "max") -> jax.Array:
    """Class with the largest reduced membrane potential: ``v [T, ..., C] -> int32 [...]`` (ties: lowest index)."""
    v = jnp.asarray(v)
    _check_min_rank("v", v, 2, "[T, ..., C] with the class axis last")
    return jnp.argmax(membrane_readout(v, reduce), axis=-1).astype(jnp.int32)


# --------------------------------------------------------------------------------------------
# N-hot population code (Whetstone Softmax_Decode, papers.md 3.2)
# --------------------------------------------------------------------------------------------


def nhot_key(key: jax.Array, num_classes: int, width: int, overlapping: bool = True, *, dtype=jnp.float32):
    """Random N-hot code book ``K`` in {0, 1}, shape ``[num_classes, width]``.

    Every class gets ``n = width // num_classes`` active units chosen at random (without
    replacement within a class). ``overlapping=True`` draws each class independently, so
    classes may share units (and, rarely, two codes may coincide); ``overlapping=False`` deals
    out disjoint groups from one permutation of the ``width`` units (the remaining
    ``width mod num_classes`` units belong to no class). ``num_classes``, ``width`` and
    ``overlapping`` are static.
    """
    num_classes = _check_int("num_classes", num_classes)
    width = _check_int("width", width)
    if width < num_classes:
        raise ValueError(
            f"width ({width}) must be >= num_classes ({num_classes}): each class gets width // num_classes "
            f"active units, which would be 0"
        )
    return _nhot_key_impl(key, num_classes, width, bool(overlapping), jnp.dtype(dtype))


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _nhot_key_impl(key, num_classes, width, overlapping, dtype):
    n = width // num_classes
    rows = jnp.arange(num_classes, dtype=jnp.int32)[:, None]
    if overlapping:
        keys = jax.random.split(key, num_classes)
        cols = jax.vmap(lambda k: jax.random.permutation(k, width)[:n])(keys)
    else:
        cols = jax.random.permutation(key, width)[: num_classes * n].reshape(num_classes, n)
    return jnp.zeros((num_classes, width), dtype=dtype).at[rows, cols.astype(jnp.int32)].set(1)


def _check_key_matrix(key_matrix) -> jax.Array:
    K = jnp.asarray(key_matrix)
    if K.ndim != 2:
        raise ValueError(f"key_matrix must be [num_classes, width], got shape {K.shape}")
    if is_concrete(K):
        vals = np.unique(np.asarray(K))
        if not np.all(np.isin(vals, (0, 1))):
            raise ValueError(f"key_matrix must hold only 0 and 1, found values {vals[:8].tolist()}")
    return _as_float("key_matrix", K)


def nhot_scores(y, key_matrix) -> jax.Array:
    """Whetstone decode scores ``(2y - 1) (2K - 1)^T``: ``y [..., width] -> [..., num_classes]``.

    ``y`` is one binary output pattern (or rates in [0, 1]); for a spike raster ``[T, ..., width]``
    pass e.g. :func:`rate_decode` of it. ``softmax(scores)`` is Whetstone's training output.
    """
    K = _check_key_matrix(key_matrix)
    y = jnp.asarray(y)
    _check_min_rank("y", y, 1, "[..., width]")
    if y.shape[-1] != K.shape[1]:
        raise ValueError(f"y's last axis ({y.shape[-1]}) must equal the key_matrix width ({K.shape[1]})")
    y = y.astype(K.dtype)
    return jnp.matmul(2.0 * y - 1.0, (2.0 * K - 1.0).T)


def nhot_decode(y, key_matrix) -> jax.Array:
    """N-hot decode ``argmax_c (2K - 1)(2y - 1)``: ``y [..., width] -> int32 [...]`` (ties: lowest index)."""
    return jnp.argmax(nhot_scores(y, key_matrix), axis=-1).astype(jnp.int32)


def nhot_targets(labels, key_matrix) -> jax.Array:
    """Target output patterns ``K[labels]``: ``int labels [...] -> [..., width]``."""
    K = _check_key_matrix(key_matrix)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if is_concrete(labels) and labels.size and (int(labels.min()) < 0 or int(labels.max()) >= K.shape[0]):
        raise ValueError(f"labels must lie in [0, {K.shape[0] - 1}], got [{int(labels.min())}, {int(labels.max())}]")
    return jnp.take(K, labels.astype(jnp.int32), axis=0)
