"""Integer-weight spiking MLPs: a deterministic integer spike encoder, integrate-and-fire (IF)
networks run three ways (float training model, the integer model evaluated in float, and the
NSAT-like fixed-point simulator), and layer-by-layer integer weights with the methods of
:mod:`spikejax.integer` (rounding, MIP, B&B + backprop).

Network (all layers dense, ``T`` ticks, no leak)
------------------------------------------------
* input: integer pixels ``x_int`` in ``[0, unit]`` become deterministic regular spike trains
  (:func:`encode_regular`): an integer accumulator ``phase + (t + 1) x_int`` emits a spike at
  tick ``t`` whenever it crosses a multiple of ``unit``; over ``T`` ticks a pixel emits
  ``floor((T x_int + phase) / unit)`` spikes (``phase = unit // 2``: the rate rounded to the
  nearest count).  Integer arithmetic only: the float and fixed-point runs see the same spikes.
* hidden layers: IF neurons (``LIF`` with ``input_mode="delta"``, no leak, subtractive reset,
  no refractory period).  Per tick ``v <- v + s_in @ w + b``; spike when ``v >= v_th``, then
  ``v <- v - v_th``.  The float model has ``v_th = 1``.
* output layer: a non-spiking integrator, ``logits = sum_t (s_t @ w + b) = counts @ w + T b``
  (the membrane after ``T`` ticks); the prediction is its argmax (ties: lowest index).

Integer model
-------------
An :class:`IntegerSpikingMLP` holds integer layers (:class:`spikejax.integer.IntegerLayer`,
weights in ``[lo, hi]``, 16-bit biases, one scale per layer) and one integer threshold
``theta_l`` per hidden layer.  A hidden layer's scale is ``1 / theta_l`` in the float model's
units (``w_int ~ theta_l w``): the integer threshold plays the role of the float threshold 1.
The output layer's scale only sets its quantisation grid (the argmax does not depend on it).

Three evaluations of the same integer model
-------------------------------------------
* :func:`integer_forward_float`: the float32 spikejax ``LIF`` network (``simulate``) with the
  integer weights, biases and thresholds stored as float32.  Every membrane value is an integer
  of magnitude ``< 2**24``, so float32 arithmetic is exact and the predictions are those of the
  integer model (checked: :func:`worst_case_membrane` must be below ``2**24``).
* :func:`integer_forward_dequantized`: the float model's units (weights ``scale * w_int``,
  thresholds ``scale * theta = 1``); float rounding may differ from the integer model on
  membranes within rounding distance of the threshold (reported, not guaranteed).
* :func:`fixed_point_forward_snn`: :class:`spikejax.fixed_point.FixedPointLIF`
  (``synaptic_delay=0``, ``leak_shift=OFF``, ``reset="subtract"``, bias ``b_int``) driven by
  :func:`spikejax.fixed_point.fixed_dense`, int32 state saturated to ``bits`` (membrane) and
  ``acm_bits`` (synaptic accumulator, 16).  ``bits=None`` takes the smallest width in
  ``[16, 32]`` for which no saturation is possible (:func:`worst_case_membrane`); a given width
  that could saturate raises ``ValueError``.  The output layer is a ``FixedPointLIF`` with
  ``reset="none"`` and a threshold it can never reach; its membrane after ``T`` ticks is returned.

Layer by layer (:func:`integerize_spiking_mlp`)
-----------------------------------------------
From the input upwards.  Hidden layer ``l``: the ``l1relu`` objective of
:mod:`spikejax.integer` on the layer's *actual* inputs (spike counts of the already-integer
layers below, divided by ``T``: a rate per tick) against the float network's mean drive per tick
(``counts_float / T @ w + b``), at the scale ``1 / theta_l``; the integer layer is then
simulated to give the next layer's inputs.  Output layer: ``hinge`` (rounding, MIP) or ``xent``
(B&B) on the integer hidden counts with the labels, scale from
:func:`spikejax.integer.choose_scale`.  The IF neuron's count over ``T`` ticks is a clipped,
floored function of its mean drive, so the hidden objective is a proxy (the output objective is
exact: the output is linear in its weights).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .fixed_point import OFF, FixedPointLIF, fixed_dense
from .integer import IntegerLayer, IntegerResult, bnb_layer, choose_scale, mip_layer, round_layer, _BIAS_RANGE
from ._checks import is_concrete
from .neurons import LIF
from .simulate import simulate
from .surrogate import heaviside

__all__ = [
    "encode_regular",
    "IntegerSpikingMLP",
    "if_forward",
    "integer_forward_float",
    "integer_forward_dequantized",
    "worst_case_membrane",
    "fixed_point_forward_snn",
    "integerize_spiking_mlp",
    "predict_batched",
]

_NO_LEAK_TAU = 1e30  # exp(-1 / 1e30) == 1.0 exactly in float32 and float64: no leak
_F32_EXACT = 2**24


# ---------------------------------------------------------------------------------------------
# input encoding


def encode_regular(x_int, T: int, unit: int, phase: int | None = None):
    """Deterministic regular spike trains from integer intensities, ``[T, *x_int.shape]`` int32.

    ``x_int`` integers in ``[0, unit]`` (e.g. uint8 pixels with ``unit=255``).  A spike at tick
    ``t`` iff ``floor((phase + (t+1) x) / unit) > floor((phase + t x) / unit)``; the count over
    ``T`` ticks is ``floor((T x + phase) / unit)``.  ``phase`` in ``[0, unit)`` (default
    ``unit // 2``).  Works on numpy and jax arrays (jittable), integer arithmetic only.
    """
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    if not isinstance(unit, (int, np.integer)) or unit < 1:
        raise ValueError(f"unit must be a positive integer, got {unit!r}")
    phase = unit // 2 if phase is None else phase
    if not 0 <= int(phase) < unit:
        raise ValueError(f"phase must be an integer in [0, {unit}), got {phase!r}")
    xp = jnp if isinstance(x_int, jax.Array) else np
    x = xp.asarray(x_int)
    if not xp.issubdtype(x.dtype, xp.integer):
        raise ValueError(f"x_int must be an integer array, got dtype {x.dtype}")
    if is_concrete(x) and x.size and (int(x.min()) < 0 or int(x.max()) > unit):
        raise ValueError(f"x_int must lie in [0, {unit}] (at most one spike per tick)")
    x = x.astype(xp.int32)
    t = xp.arange(T + 1, dtype=xp.int32).reshape((T + 1,) + (1,) * x.ndim)
    acc = (phase + t * x[None]) // unit  # [T+1, ...]
    return (acc[1:] - acc[:-1]).astype(xp.int32)


# ---------------------------------------------------------------------------------------------
# networks


class IntegerSpikingMLP(NamedTuple):
    """Integer IF network: ``layers`` (integer weights/biases, one scale per layer) and integer
    thresholds ``thresholds[l]`` of the hidden layers (``len(layers) - 1`` of them)."""

    layers: tuple
    thresholds: tuple
    T: int

    def check(self):
        if not self.layers:
            raise ValueError("the network has no layers")
        if len(self.thresholds) != len(self.layers) - 1:
            raise ValueError(f"{len(self.layers)} layers need {len(self.layers) - 1} hidden thresholds, got {len(self.thresholds)}")
        for th in self.thresholds:
            if not isinstance(th, (int, np.integer)) or th < 1:
                raise ValueError(f"hidden thresholds must be positive integers, got {self.thresholds!r}")
        return self


def _bias_row(b, ndim):
    return jnp.reshape(b, (1,) * (ndim - 1) + (-1,))


def if_forward(layers, spikes, v_th, *, spike_fn=None, record_hidden: bool = False):
    """Float IF network (module docstring) on time-major spikes ``[T, ..., n_in]``.

    ``layers``: sequence of ``(w, b)`` (float); ``v_th``: one threshold per hidden layer;
    ``spike_fn``: the spike nonlinearity (a surrogate for training; default exact Heaviside).
    Returns the output membrane after ``T`` ticks ``[..., n_out]`` (and the hidden spike trains
    with ``record_hidden``).  Runs :class:`spikejax.neurons.LIF` (``input_mode="delta"``,
    ``reset="subtract"``, no leak) with :func:`spikejax.simulate`, layer-major.
    """
    if len(layers) == 0:
        raise ValueError("the network has no layers")
    if len(v_th) != len(layers) - 1:
        raise ValueError(f"{len(layers)} layers need {len(layers) - 1} hidden thresholds, got {len(v_th)}")
    neuron = LIF(spike_fn=spike_fn or heaviside, reset="subtract", input_mode="delta")
    w0 = jnp.asarray(layers[0][0])
    x = jnp.asarray(spikes).astype(w0.dtype)
    hidden = []
    for i, (w, b) in enumerate(layers):
        w = jnp.asarray(w)
        cur = x @ w
        cur = cur + _bias_row(jnp.asarray(b, cur.dtype), cur.ndim)
        if i == len(layers) - 1:
            out = jnp.sum(cur, axis=0)
            return (out, hidden) if record_hidden else out
        p = LIF.params(tau_mem=_NO_LEAK_TAU, v_th=v_th[i], dtype=cur.dtype)
        _, z = simulate(neuron.step, p, neuron.init(p, cur.shape[1:]), cur, dt=1.0)
        hidden.append(z)
        x = z
    raise AssertionError


def worst_case_membrane(net: IntegerSpikingMLP) -> list[int]:
    """Per layer, an upper bound of ``|v|`` (integer units) over any input spike trains.

    Hidden IF layer: ``T * (max_j (sum_i |w_ij| + |b_j|)) + theta`` (a subtractive reset only
    moves ``v`` towards 0 from above); output integrator: ``T * max_j (sum_i |w_ij| + |b_j|)``.
    """
    net.check()
    out = []
    for i, layer in enumerate(net.layers):
        per_tick = int((np.abs(layer.w.astype(np.int64)).sum(axis=0) + np.abs(layer.b.astype(np.int64))).max())
        extra = int(net.thresholds[i]) if i < len(net.thresholds) else 0
        out.append(net.T * per_tick + extra)
    return out


def _check_spikes(spikes, T):
    s = np.asarray(spikes) if not isinstance(spikes, jax.Array) else spikes
    if s.shape[0] != T:
        raise ValueError(f"spikes must be time-major with T={T} ticks, got shape {tuple(s.shape)}")
    return s


def integer_forward_float(net: IntegerSpikingMLP, spikes, *, record_hidden: bool = False):
    """The integer model evaluated in float32 with spikejax's ``LIF`` (exact: every value is an
    integer below ``2**24``, checked).  Returns the float32 output membrane ``[..., n_out]``."""
    net.check()
    wc = worst_case_membrane(net)
    if max(wc) >= _F32_EXACT:
        raise ValueError(f"float32 evaluation would not be exact: worst-case |membrane| {max(wc)} >= 2**24")
    _check_spikes(spikes, net.T)
    layers = [(jnp.asarray(L.w, jnp.float32), jnp.asarray(L.b, jnp.float32)) for L in net.layers]
    return if_forward(layers, spikes, [float(t) for t in net.thresholds], record_hidden=record_hidden)


def integer_forward_dequantized(net: IntegerSpikingMLP, spikes):
    """The integer model in the float model's units: weights ``scale * w_int`` (float32),
    hidden thresholds ``scale * theta`` (1 when ``scale = 1 / theta``).  Not guaranteed to match
    the integer model exactly (float rounding near the threshold)."""
    net.check()
    _check_spikes(spikes, net.T)
    layers = [tuple(jnp.asarray(a) for a in L.dequantize()) for L in net.layers]
    th = [float(np.float32(L.scale) * np.float32(t)) for L, t in zip(net.layers, net.thresholds)]
    return if_forward(layers, spikes, th)


def _bits_for(bound: int) -> int:
    for bits in range(16, 33):
        if bound < 2 ** (bits - 1) - 1:
            return bits
    raise ValueError(f"worst-case |membrane| {bound} does not fit 32 bits")


def fixed_point_forward_snn(net: IntegerSpikingMLP, spikes, *, bits: int | None = None, acm_bits: int = 16, record_hidden: bool = False):
    """Run the integer network in the fixed-point (NSAT-like) simulator; see the module docstring.

    ``spikes``: integer spike trains ``[T, ..., n_in]`` in {0, 1}.  Returns the int32 output
    membrane after ``T`` ticks ``[..., n_out]`` (and the hidden spike trains with
    ``record_hidden``).  ``bits``: membrane width (``None``: the smallest in [16, 32] that cannot
    saturate); ``acm_bits``: the per-tick synaptic accumulator width.  ``ValueError`` if a
    saturation of the membrane or the accumulator is possible.
    """
    net.check()
    s = _check_spikes(spikes, net.T)
    s = jnp.asarray(s)
    if not jnp.issubdtype(s.dtype, jnp.integer) and s.dtype != jnp.bool_:
        raise ValueError(f"spikes must be an integer (or bool) array, got dtype {s.dtype}")
    wc = worst_case_membrane(net)
    need = _bits_for(max(wc))
    if bits is None:
        bits = need
    elif max(wc) >= 2 ** (bits - 1) - 1:
        raise ValueError(f"membrane of {bits} bits could saturate (worst case |v| {max(wc)}); use bits >= {need}")
    amax = 2 ** (acm_bits - 1) - 1
    fx = FixedPointLIF(synaptic_delay=0)
    x = s.astype(jnp.int32)
    hidden = []
    for i, layer in enumerate(net.layers):
        per_tick_syn = int(np.abs(layer.w.astype(np.int64)).sum(axis=0).max())
        if per_tick_syn > amax:
            raise ValueError(f"layer {i}: the synaptic accumulator of {acm_bits} bits could saturate (worst case {per_tick_syn})")
        last = i == len(net.layers) - 1
        if last:
            p = FixedPointLIF.params(bits=bits, leak_shift=OFF, v_th=2 ** (bits - 1) - 1, bias=layer.b, reset="none", acm_bits=acm_bits)
        else:
            p = FixedPointLIF.params(bits=bits, leak_shift=OFF, v_th=int(net.thresholds[i]), bias=layer.b, reset="subtract", acm_bits=acm_bits)
        drive = fixed_dense(jnp.asarray(layer.w, jnp.int32), x)
        state, z = simulate(fx.step, p, fx.init(p, drive.shape[1:]), drive, dt=1.0)
        if last:
            return (state.v, hidden) if record_hidden else state.v
        hidden.append(z)
        x = z
    raise AssertionError


def predict_batched(fn, x_int, *, T: int, unit: int, batch_size: int = 2000):
    """``fn(spikes)`` over batches of integer inputs ``x_int [N, n_in]`` (encoded with
    :func:`encode_regular`); returns the concatenated outputs as a numpy array."""
    outs = []
    for i in range(0, len(x_int), batch_size):
        s = encode_regular(np.asarray(x_int[i : i + batch_size]), T, unit)
        outs.append(np.asarray(fn(s)))
    return np.concatenate(outs, axis=0)


# ---------------------------------------------------------------------------------------------
# layer by layer


def _counts_float(layers, v_th, x_int, T, unit, batch_size=2000):
    """Float network: per hidden layer the spike counts ``[N, n_l]`` (numpy)."""
    counts = [[] for _ in range(len(layers) - 1)]
    fwd = jax.jit(lambda s: if_forward(layers, s, v_th, record_hidden=True)[1])
    for i in range(0, len(x_int), batch_size):
        hs = fwd(encode_regular(np.asarray(x_int[i : i + batch_size]), T, unit))
        for l, h in enumerate(hs):
            counts[l].append(np.asarray(jnp.sum(h, axis=0)))
    return [np.concatenate(c, axis=0) for c in counts]


def integerize_spiking_mlp(
    layers,
    x_int,
    y,
    *,
    T: int,
    unit: int,
    thresholds: Sequence[int],
    lo: int,
    hi: int,
    method: str = "round",
    time_limit=60.0,
    margin: float = 1.0,
    keep: str = "correct",
    bias_range=_BIAS_RANGE,
    output_scale=None,
    output_objective=None,
    mip_options: dict | None = None,
    bnb_options: dict | None = None,
    batch_size: int = 2000,
) -> tuple[IntegerSpikingMLP, list[IntegerResult]]:
    """Integer weights for a float IF network (threshold 1), layer by layer (module docstring).

    ``layers``: float ``(w, b)`` / ``Dense`` list; ``x_int [N, n_in]``: integer training inputs
    in ``[0, unit]`` (encoded with :func:`encode_regular` over ``T`` ticks); ``y``: labels;
    ``thresholds``: integer threshold of each hidden layer (its scale is ``1 / theta``);
    ``method``: ``"round"``, ``"mip"`` or ``"bnb"``; ``time_limit``: total seconds split equally
    over the layers; ``output_scale``: the output layer's scale (default
    :func:`spikejax.integer.choose_scale` on the integer hidden counts).
    Returns ``(IntegerSpikingMLP, per-layer results)``.
    """
    if method not in ("round", "mip", "bnb"):
        raise ValueError(f"method must be one of 'round', 'mip', 'bnb', got {method!r}")
    if layers is None or len(layers) == 0:
        raise ValueError("the model has no weights: no layers given")
    wbs = [(np.asarray(L[0], np.float64), np.asarray(L[1], np.float64)) for L in layers]
    thresholds = tuple(int(t) for t in thresholds)
    if len(thresholds) != len(wbs) - 1 or any(t < 1 for t in thresholds):
        raise ValueError(f"need {len(wbs) - 1} positive integer hidden thresholds, got {thresholds!r}")
    if time_limit is not None and not (float(time_limit) > 0):
        raise ValueError(f"time_limit must be > 0 seconds (or None), got {time_limit!r}")
    budget = None if time_limit is None else float(time_limit) / len(wbs)
    x_int = np.asarray(x_int)
    y = np.asarray(y, np.int64)
    f32 = [(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)) for w, b in wbs]
    float_counts = _counts_float(f32, [1.0] * len(thresholds), x_int, T, unit, batch_size)
    # float inputs (rates per tick) of each layer in the float network: targets of the hidden layers
    in_counts = (T * x_int.astype(np.int64) + unit // 2) // unit  # = encode_regular(x_int, T, unit).sum(0)
    x_float = [in_counts / T] + [c / T for c in float_counts]
    a = x_float[0]  # inputs of the current layer as seen by the integer network
    out_layers, results = [], []
    for i, (w, b) in enumerate(wbs):
        last = i == len(wbs) - 1
        if last:
            obj = output_objective or ("xent" if method == "bnb" else "hinge")
            kw = dict(objective=obj, margin=margin, keep=keep, y=y)
            scale = output_scale if output_scale is not None else choose_scale(w, b, a, y, lo=lo, hi=hi, bias_range=bias_range)
        else:
            kw = dict(objective="l1relu", targets=x_float[i] @ w + b[None, :], margin=margin, y=None)
            scale = 1.0 / thresholds[i]
        yy = kw.pop("y")
        common = dict(lo=lo, hi=hi, scale=scale, bias_range=bias_range, **kw)
        if method == "round":
            r = round_layer(w, b, a, yy, **common)
        elif method == "mip":
            r = mip_layer(w, b, a, yy, time_limit=budget, **common, **(mip_options or {}))
        else:
            r = bnb_layer(w, b, a, yy, time_limit=budget, **common, **(bnb_options or {}))
        out_layers.append(r.layer)
        results.append(r)
        if not last:
            part = IntegerSpikingMLP(tuple(out_layers) + (_dummy_out(r.layer),), thresholds[: i + 1], T)
            counts = []
            fwd = jax.jit(lambda s: integer_forward_float(part, s, record_hidden=True)[1][-1])
            for j in range(0, len(x_int), batch_size):
                h = fwd(encode_regular(x_int[j : j + batch_size], T, unit))
                counts.append(np.asarray(jnp.sum(h, axis=0)))
            a = np.concatenate(counts, axis=0).astype(np.float64) / T
    return IntegerSpikingMLP(tuple(out_layers), thresholds, T).check(), results


def _dummy_out(prev: IntegerLayer) -> IntegerLayer:
    """A 1-output zero layer so that a partial network can be run to read its hidden counts."""
    n = prev.w.shape[1]
    return IntegerLayer(np.zeros((n, 1), np.int32), np.zeros((1,), np.int32), 1.0, prev.lo, prev.hi)
