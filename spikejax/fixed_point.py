"""Fixed-point, hardware-like (NSAT-style) arithmetic: integer LIF neurons, integer and blank-out
synapses, and a float <-> fixed bridge to run the same network both ways and compare.

Semantics follow the NSAT neuromorphic simulator (papers.md sections 1.5 and 1.6); this is an
independent implementation written from those equations.

Integer arithmetic
------------------
All integer quantities are computed in ``int32`` and *saturated* (clipped, never wrapped) to a
configurable signed bit width ``bits``: ``[-2**(bits-1), 2**(bits-1) - 1]`` (NSAT: 16 bits).

* :func:`saturate` clips to that range.
* :func:`shift` is NSAT's ``one_bit_shift``, the multiplier-less "multiply by ``2**a``":
  for ``-16 < a < 0`` it is ``x * 2**a`` rounded toward zero, except that a non-zero ``x``
  never becomes 0 (the result is then ``sign(x)``); for ``a >= 0`` it is ``x << a`` (saturated);
  for ``a <= OFF = -16`` it is 0.  A leak ``v - shift(v, -n)`` is thus a decay by
  ``1 - 2**-n`` per tick.

Fixed-point LIF (:class:`FixedPointLIF`), one tick (``dt`` is ignored: time is in ticks)
----------------------------------------------------------------------------------------

1. the integer synaptic input ``x`` of this tick (e.g. :func:`fixed_dense` of the presynaptic
   spikes) is scaled by ``2**w_gain`` and saturated to ``acm_bits`` (NSAT: 16 bits,
   ``[-32768, 32767]``; a negative ``w_gain`` rounds toward zero): ``acm = sat(x * 2**w_gain)``;
2. ``v <- sat(v - shift(v, leak_shift) + acm_used + bias)`` where ``acm_used`` is the
   accumulator of the *previous* tick when ``synaptic_delay=1`` (NSAT's one-tick synaptic delay,
   the default) or this tick's ``acm`` when ``synaptic_delay=0`` (then the step lines up with the
   float :class:`spikejax.neurons.LIF` in ``input_mode="delta"`` without shifting the inputs);
3. a neuron in its refractory period is clamped to ``v_reset`` and cannot spike;
4. spike when ``v >= v_th``; reset to ``v_reset`` (``reset="zero"``), subtract
   ``v_th - v_reset`` (``reset="subtract"``) or keep ``v`` (``reset="none"``: NSAT's
   ``XresetOn = False``, as in the eRBP ``erf_ntype``; refractoriness then only blocks spikes and
   does not clamp); a spike starts ``t_ref_steps`` refractory ticks.

This is the same step order as the float LIF family, so the two can be compared tick by tick.

Float <-> fixed bridge and the quantisation bound
-------------------------------------------------
A float LIF (``input_mode="delta"``, decay ``a = exp(-dt/tau_mem) = 1 - 2**-n``, see
:func:`tau_from_leak_shift`) and a :class:`FixedPointLIF` with ``leak_shift = -n``, and weights,
thresholds and membrane scaled by ``scale = 2**s`` (one LSB = ``2**-s`` float units; see
:func:`quantize`, :func:`quantize_lif_params`) compute

    float:  V_{t+1} = (1 - 2**-n) V_t + I_t
    fixed:  v_{t+1} = v_t - shift(v_t, -n) + i_t,   i_t = I_t * scale (exact integers).

``shift(v, -n)`` differs from ``v 2**-n`` by ``r_t`` with ``|r_t| < 1`` LSB (truncation toward
zero, or the never-round-to-zero rule when ``|v| < 2**n``), so the error
``E_t = v_t - scale V_t`` obeys ``E_{t+1} = (1 - 2**-n) E_t + r_t`` and

    |E_t| < sum_{k<t} (1 - 2**-n)**k = 2**n (1 - (1 - 2**-n)**t) < 2**n LSB = 2**(n-s) float units.

The bound holds while (i) the inputs are exactly representable (compare against the float
network built from the *dequantised* weights; with raw float weights add the weight rounding
error, at most 1/2 LSB per weight per event, filtered by the same geometric sum), (ii) nothing
saturates, and (iii) both networks spike at the same ticks: a zero reset or refractory clamp
sets ``E`` back to 0 and a subtractive reset leaves ``E`` unchanged.  A spike mismatch can only
happen when the float membrane is within the bound of the threshold; afterwards the traces are
no longer comparable.  :func:`compare_float_fixed` runs both with :func:`spikejax.simulate` and
reports spike agreement, the first mismatch and the maximum membrane difference.

Synapses
--------
:func:`fixed_dense` is an exact int32 ``spikes @ w``.  :func:`fixed_blankout_dense` transmits each
(spike, synapse) event with probability ``prob/15`` for an integer ``prob`` in ``0..15`` (NSAT's
``prob_syn``: the coin is a uniform integer in ``[0, 15)`` compared with ``prob``, so 15 always
and 0 never transmits), or with probability ``p`` for a float ``p`` in ``[0, 1]``.

Recipe (a layer driven by presynaptic spikes ``s`` of shape ``[T, n_pre]``)::

    lif = LIF(input_mode="delta")
    pf = LIF.params(tau_mem=tau_from_leak_shift(-4, dt), v_th=1.0)
    pq = quantize_lif_params(pf, scale=2**8, dt=dt)      # FixedPointLIFParams
    w_int = quantize(w, 2**8)                             # integer weights
    fx = FixedPointLIF(synaptic_delay=0)
    simulate(fx.step, pq, fx.init(pq, (n,)), s_int @ w_int)   # or fixed_dense per step
    # or simply: compare_float_fixed(pf, s, w=w, scale=2**8, dt=dt)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_choice, is_concrete

__all__ = [
    "OFF",
    "shift",
    "saturate",
    "int_range",
    "FixedPointLIF",
    "FixedPointLIFParams",
    "FixedPointLIFState",
    "fixed_dense",
    "fixed_blankout_dense",
    "fixed_blankout_mask",
    "quantize",
    "dequantize",
    "tau_from_leak_shift",
    "quantize_lif_params",
    "FloatFixedComparison",
    "compare_float_fixed",
]

Array = jax.Array

#: NSAT's "no coupling" exponent: ``shift(x, a) == 0`` for every ``a <= OFF``.
OFF = -16

_I32_MIN = -(2**31)
_I32_MAX = 2**31 - 1
_RESET_CODES = {"zero": 0, "subtract": 1, "none": 2}


# ---------------------------------------------------------------------------------------------
# validation helpers


def _check_bits(name: str, bits):
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise ValueError(f"{name} must be a Python int in [2, 32], got {bits!r}")
    if not 2 <= int(bits) <= 32:
        raise ValueError(f"{name} must lie in [2, 32], got {bits}")
    return int(bits)


def int_range(bits: int) -> tuple[int, int]:
    """``(lo, hi) = (-2**(bits-1), 2**(bits-1) - 1)``, the signed range of ``bits`` bits."""
    bits = _check_bits("bits", bits)
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _check_int(name: str, value, lo=None, hi=None, *, why: str = ""):
    """ValueError unless every element of a concrete ``value`` is an integer in ``[lo, hi]``."""
    if not is_concrete(value):
        return
    arr = np.asarray(value)
    if arr.dtype == bool:
        raise ValueError(f"{name} must be an integer, got a boolean {value!r}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be an integer, got {value!r} of dtype {arr.dtype}")
    f = arr.astype(np.float64)
    if np.any(~np.isfinite(f)) or np.any(f != np.round(f)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if (lo is not None and np.any(f < lo)) or (hi is not None and np.any(f > hi)):
        raise ValueError(f"{name} must lie in [{lo}, {hi}]{why}, got {value!r}")


def _as_int32(name: str, x) -> Array:
    """``x`` as int32, clipping (not wrapping) values beyond the int32 range.  Integer and bool
    dtypes only: floats raise ``TypeError`` (use :func:`quantize`)."""
    x = jnp.asarray(x)
    dt = x.dtype
    if dt == jnp.bool_:
        return x.astype(jnp.int32)
    if not jnp.issubdtype(dt, jnp.integer):
        raise TypeError(f"{name}: expected an integer (or bool) array, got dtype {dt}; use quantize() for floats")
    info = jnp.iinfo(dt)
    if info.min >= _I32_MIN and info.max <= _I32_MAX:
        return x.astype(jnp.int32)
    lo, hi = max(info.min, _I32_MIN), min(info.max, _I32_MAX)
    return jnp.clip(x, jnp.asarray(lo, dt), jnp.asarray(hi, dt)).astype(jnp.int32)


def _bcast(a, shape):
    return jnp.broadcast_to(a, jnp.broadcast_shapes(jnp.shape(a), shape))


# ---------------------------------------------------------------------------------------------
# integer primitives


def _sat_add(a: Array, b: Array) -> Array:
    """int32 addition that saturates at the int32 limits instead of wrapping."""
    s = a + b  # XLA integer overflow wraps (two's complement)
    pos_over = (a > 0) & (b > 0) & (s < 0)
    neg_over = (a < 0) & (b < 0) & (s >= 0)
    return jnp.where(pos_over, jnp.int32(_I32_MAX), jnp.where(neg_over, jnp.int32(_I32_MIN), s))


@functools.partial(jax.jit, static_argnames="keep_sign")
def _shift(x: Array, a: Array, lo, hi, *, keep_sign: bool) -> Array:
    """int32 ``x * 2**a`` saturated to ``[lo, hi]``; for ``a < 0`` rounded toward zero and, with
    ``keep_sign``, never rounding a non-zero ``x`` to 0.  ``a <= OFF`` gives 0."""
    shape = jnp.broadcast_shapes(jnp.shape(x), jnp.shape(a))
    x = jnp.broadcast_to(x, shape)
    a = jnp.broadcast_to(a, shape)
    # a >= 0: left shift; overflow of int32 detected by the round trip
    al = jnp.clip(a, 0, 31)
    left = jnp.left_shift(x, al)
    overflow = (jnp.right_shift(left, al) != x) | ((a > 31) & (x != 0))
    left = jnp.where(overflow, jnp.where(x > 0, jnp.int32(_I32_MAX), jnp.int32(_I32_MIN)), left)
    # a < 0: arithmetic right shift (floor), corrected to truncation toward zero
    n = jnp.clip(-a, 1, 31)
    floor = jnp.right_shift(x, n)
    rem = x - jnp.left_shift(floor, n)  # in [0, 2**n), no overflow
    trunc = floor + ((x < 0) & (rem != 0)).astype(jnp.int32)
    if keep_sign:
        trunc = jnp.where((trunc == 0) & (x != 0), jnp.sign(x), trunc)
    out = jnp.where(a >= 0, left, jnp.where(a > OFF, trunc, jnp.int32(0)))
    return jnp.clip(out, lo, hi)


def saturate(x, bits: int = 16) -> Array:
    """Clip an integer array to the signed ``bits``-bit range ``[-2**(bits-1), 2**(bits-1)-1]``.

    Returns int32.  ``bits`` must be a Python int in ``[2, 32]`` (``ValueError`` otherwise);
    ``x`` must have an integer or bool dtype (``TypeError`` otherwise)."""
    lo, hi = int_range(bits)
    return jnp.clip(_as_int32("saturate", x), lo, hi)


def shift(x, a, bits: int = 16) -> Array:
    """NSAT's ``one_bit_shift``: ``x * 2**a`` in integer arithmetic, saturated to ``bits`` bits.

    * ``-16 < a < 0``: ``x * 2**a`` rounded toward zero, except that a non-zero ``x`` never
      becomes 0 (gives ``sign(x)``): ``shift(7, -3) == 1``, ``shift(-9, -3) == -1``;
    * ``a >= 0``: ``x << a``, saturated (not wrapped) to the ``bits``-bit range;
    * ``a <= OFF`` (-16): 0.

    ``x`` (integer or bool dtype) and ``a`` (integer exponents) broadcast against each other; the
    result is int32.  The computation is exact for any int32 ``x``; only the result is
    saturated.  Vectorised and jittable.
    """
    lo, hi = int_range(bits)
    _check_int("a (shift exponent)", a)
    return _shift(_as_int32("shift", x), _int_param("shift exponent a", a), lo, hi, keep_sign=True)


def _int_param(name: str, v) -> Array:
    """An integer-valued parameter (already validated) as int32; integral floats are accepted."""
    v = jnp.asarray(v)
    if jnp.issubdtype(v.dtype, jnp.floating):
        return v.astype(jnp.int32)
    return _as_int32(name, v)


# ---------------------------------------------------------------------------------------------
# fixed-point LIF


class FixedPointLIFParams(NamedTuple):
    """Integer LIF parameters (all int32 arrays, scalar or per neuron).

    ``leak_shift`` leak exponent (decay ``1 - 2**leak_shift``; ``OFF`` = no leak);
    ``v_th``, ``v_reset``, ``bias`` in LSB; ``t_ref_steps`` refractory ticks; ``w_gain`` synaptic
    gain exponent; ``reset_mode`` 0 zero / 1 subtract / 2 none; ``v_min``/``v_max`` the membrane
    range (``bits``); ``acm_min``/``acm_max`` the synaptic accumulator range (``acm_bits``)."""

    leak_shift: Array
    v_th: Array
    v_reset: Array
    t_ref_steps: Array
    w_gain: Array
    bias: Array
    reset_mode: Array
    v_min: Array
    v_max: Array
    acm_min: Array
    acm_max: Array


class FixedPointLIFState(NamedTuple):
    """``v`` integer membrane; ``acm`` synaptic accumulator of this tick (after ``w_gain`` and
    saturation; used at the next tick when ``synaptic_delay=1``); ``ref`` refractory ticks left.
    All int32."""

    v: Array
    acm: Array
    ref: Array


@dataclasses.dataclass(frozen=True)
class FixedPointLIF:
    """Fixed-point (NSAT-like) LIF population over int32 state; see the module docstring.

    ``synaptic_delay``: 1 (default, as NSAT: input of tick ``t`` reaches the membrane at tick
    ``t+1``) or 0 (input acts in the same tick, like the float ``LIF(input_mode="delta")``).
    The step's input is the integer synaptic drive (e.g. :func:`fixed_dense` of spikes); its
    output is int32 spikes in {0, 1}.  ``dt`` is accepted for :func:`spikejax.simulate` and
    ignored (time is in ticks); ``key`` is unused (stochasticity lives in the synapses).
    """

    synaptic_delay: int = 1

    def __post_init__(self):
        check_choice("synaptic_delay", self.synaptic_delay, {0, 1})

    @staticmethod
    def params(
        bits: int = 16,
        leak_shift=-4,
        v_th=1000,
        v_reset=0,
        t_ref_steps=0,
        w_gain=0,
        bias=0,
        reset: str = "zero",
        acm_bits: int = 16,
    ) -> FixedPointLIFParams:
        """Validated integer parameters.

        ``bits`` in [2, 32] (membrane width), ``acm_bits`` in [2, 32] (accumulator width, NSAT 16);
        ``leak_shift`` integer in [OFF, 0] (-16 = no leak, -n: decay 1 - 2**-n, 0: full leak);
        ``v_th``, ``v_reset``, ``bias`` integers representable in ``bits`` with
        ``v_reset < v_th``; ``t_ref_steps >= 0``; ``w_gain`` integer in [-15, 31];
        ``reset`` in {"zero", "subtract", "none"}.  Every failure is a ``ValueError`` naming the
        parameter.
        """
        bits = _check_bits("bits", bits)
        acm_bits = _check_bits("acm_bits", acm_bits)
        check_choice("reset", reset, set(_RESET_CODES))
        lo, hi = int_range(bits)
        why = f" (representable in bits={bits})"
        _check_int("leak_shift", leak_shift, OFF, 0)
        _check_int("v_th", v_th, lo, hi, why=why)
        _check_int("v_reset", v_reset, lo, hi, why=why)
        _check_int("bias", bias, lo, hi, why=why)
        _check_int("t_ref_steps", t_ref_steps, 0, _I32_MAX)
        _check_int("w_gain", w_gain, -15, 31)
        if is_concrete(v_th) and is_concrete(v_reset):
            if np.any(np.asarray(v_reset, np.float64) >= np.asarray(v_th, np.float64)):
                raise ValueError(f"v_reset ({v_reset}) must be below v_th ({v_th})")
        alo, ahi = int_range(acm_bits)
        return FixedPointLIFParams(
            _int_param("leak_shift", leak_shift),
            _int_param("v_th", v_th),
            _int_param("v_reset", v_reset),
            _int_param("t_ref_steps", t_ref_steps),
            _int_param("w_gain", w_gain),
            _int_param("bias", bias),
            jnp.asarray(_RESET_CODES[reset], jnp.int32),
            jnp.asarray(lo, jnp.int32),
            jnp.asarray(hi, jnp.int32),
            jnp.asarray(alo, jnp.int32),
            jnp.asarray(ahi, jnp.int32),
        )

    @staticmethod
    def init(params: FixedPointLIFParams, shape, v0=0) -> FixedPointLIFState:
        """State with membrane ``v0`` (integer, saturated to the membrane range), empty
        accumulator and no refractoriness."""
        v = jnp.clip(jnp.broadcast_to(_as_int32("init v0", v0), tuple(shape)), params.v_min, params.v_max)
        z = jnp.zeros(tuple(shape), jnp.int32)
        return FixedPointLIFState(v, z, z)

    def step(self, params: FixedPointLIFParams, state: FixedPointLIFState, x, *, dt=1.0, key=None):
        """One tick: ``(new_state, spikes)`` with int32 spikes in {0, 1}."""
        x = _as_int32("FixedPointLIF.step input", x)
        if jnp.shape(x) != jnp.shape(state.v):
            raise ValueError(
                f"FixedPointLIF.step: input shape {jnp.shape(x)} does not match the state shape {jnp.shape(state.v)}"
            )
        shape = jnp.shape(state.v)
        p = FixedPointLIFParams(*(jnp.broadcast_to(jnp.asarray(f, jnp.int32), shape) for f in params))
        # 1. synaptic accumulator: x * 2**w_gain (toward zero), saturated to acm_bits
        acm = _shift(x, p.w_gain, p.acm_min, p.acm_max, keep_sign=False)
        acm_used = state.acm if self.synaptic_delay == 1 else acm
        # 2. leak (one_bit_shift), input, bias; saturated to bits
        leak = _shift(state.v, p.leak_shift, p.v_min, p.v_max, keep_sign=True)
        v = state.v - leak  # same sign, |leak| <= |v|: no overflow
        v = _sat_add(_sat_add(v, acm_used), p.bias)
        v = jnp.clip(v, p.v_min, p.v_max)
        # 3. refractory clamp (not for reset="none", as NSAT with XresetOn = False)
        refractory = state.ref > 0
        v = jnp.where(refractory & (p.reset_mode != 2), p.v_reset, v)
        # 4. spike and reset
        z = (v >= p.v_th) & ~refractory
        v_sub = (v - p.v_th) + p.v_reset  # v >= v_th: no overflow, result in [v_reset, v)
        v_new = jnp.where(p.reset_mode == 0, p.v_reset, jnp.where(p.reset_mode == 1, v_sub, v))
        v = jnp.where(z, v_new, v)
        ref = jnp.where(z, p.t_ref_steps, jnp.maximum(state.ref - 1, 0))
        return FixedPointLIFState(v, acm, ref), z.astype(jnp.int32)

    __call__ = step


# ---------------------------------------------------------------------------------------------
# integer synapses


def _check_syn(w, s):
    if jnp.ndim(w) != 2:
        raise ValueError(f"weights must be 2-D [n_pre, n_post], got shape {jnp.shape(w)}")
    if jnp.ndim(s) < 1 or jnp.shape(s)[-1] != jnp.shape(w)[0]:
        raise ValueError(f"presynaptic input has shape {jnp.shape(s)} but weights expect {jnp.shape(w)[0]} neurons")


def fixed_dense(w_int, spikes) -> Array:
    """Deterministic integer synapses: exact int32 ``spikes @ w_int``.

    ``w_int`` ``[n_pre, n_post]`` and ``spikes`` ``[..., n_pre]`` (integer or bool; spike counts
    allowed).  Exact as long as the sum fits int32 (e.g. 8-bit weights and fan-in < 2**23)."""
    _check_syn(w_int, spikes)
    return jnp.matmul(_as_int32("fixed_dense spikes", spikes), _as_int32("fixed_dense weights", w_int))


def _blankout_prob(prob):
    """Validate ``prob``: integer (0..15, NSAT's prob_syn, P = prob/15) or float p in [0, 1]."""
    arr_dtype = jnp.result_type(prob) if not isinstance(prob, bool) else jnp.bool_
    if isinstance(prob, bool) or arr_dtype == jnp.bool_:
        raise ValueError(f"prob must be an integer in 0..15 or a float probability in [0, 1], got {prob!r}")
    if isinstance(prob, (int, np.integer)) or jnp.issubdtype(arr_dtype, jnp.integer):
        if is_concrete(prob):
            arr = np.asarray(prob)
            if np.any((arr < 0) | (arr > 15)):
                raise ValueError(
                    f"prob must be an integer in 0..15 (transmission probability prob/15, as NSAT's prob_syn), got {prob!r}"
                )
        return "int"
    if isinstance(prob, float) or jnp.issubdtype(arr_dtype, jnp.floating):
        if is_concrete(prob):
            arr = np.asarray(prob, np.float64)
            if np.any(~np.isfinite(arr) | (arr < 0.0) | (arr > 1.0)):
                raise ValueError(f"p (float transmission probability) must lie in [0, 1], got {prob!r}")
        return "float"
    raise ValueError(f"prob must be an integer in 0..15 or a float probability in [0, 1], got {prob!r}")


def fixed_blankout_mask(key, shape, prob) -> Array:
    """int32 {0, 1} transmission mask, one coin per synapse and event.

    Integer ``prob`` in 0..15: P(1) = prob/15 exactly, drawn as NSAT does (a uniform integer in
    ``[0, 15)`` compared with ``prob``).  Float ``p`` in [0, 1]: Bernoulli(p).  ``prob`` may be an
    array broadcastable to ``shape`` (e.g. per postsynaptic neuron)."""
    kind = _blankout_prob(prob)
    if kind == "int":
        return _int_coins(key, tuple(shape), _as_int32("prob", prob))
    p = jnp.asarray(prob, jnp.float32) if isinstance(prob, float) else jnp.asarray(prob)
    return _float_coins(key, tuple(shape), p)


@functools.partial(jax.jit, static_argnums=1)
def _int_coins(key, shape, prob):
    coin = jax.random.randint(key, shape, 0, 15, dtype=jnp.int32)  # uniform in [0, 15)
    return (coin < _bcast(prob, shape)).astype(jnp.int32)


@functools.partial(jax.jit, static_argnums=1)
def _float_coins(key, shape, p):
    u = jax.random.uniform(key, shape, p.dtype)
    return (u < _bcast(p, shape)).astype(jnp.int32)


def fixed_blankout_dense(key, w_int, spikes, prob):
    """Integer blank-out synapses: every (presynaptic spike, synapse) event is transmitted with
    probability ``prob/15`` (integer ``prob`` in 0..15, NSAT's ``prob_syn``; 15 always, 0 never)
    or ``p`` (float in [0, 1]).

    Returns ``(x, mask)``: the int32 drive ``x_j = sum_i s_i w_ij m_ij`` and the int32 mask
    (same convention as :func:`spikejax.synapses.blankout_dense`).  One coin per synapse per
    call: a spike count ``s_i > 1`` shares its coin."""
    _check_syn(w_int, spikes)
    w = _as_int32("fixed_blankout_dense weights", w_int)
    mask = fixed_blankout_mask(key, jnp.shape(w), prob)
    return jnp.matmul(_as_int32("fixed_blankout_dense spikes", spikes), w * mask), mask


# ---------------------------------------------------------------------------------------------
# float <-> fixed bridge


def _check_scale(scale):
    if not is_concrete(scale):
        return
    s = np.asarray(scale, np.float64)
    if np.any(~np.isfinite(s) | (s <= 0)):
        raise ValueError(f"scale must be positive and finite, got {scale!r}")


def quantize(x, scale, bits: int = 16) -> Array:
    """Float -> integer: ``saturate(round(x * scale), bits)`` (round half to even), int32.

    With ``scale`` a power of two the multiplication is exact, so the only error is the final
    rounding (at most 1/2 LSB) and saturation."""
    lo, hi = int_range(bits)
    _check_scale(scale)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    y = jnp.round(x * jnp.asarray(scale, x.dtype))
    y = jnp.clip(y, jnp.asarray(lo, x.dtype), jnp.asarray(hi, x.dtype))
    # float32 rounds 2**31 - 1 up to 2**31: map it back to the int32 limit before converting
    big = y >= jnp.asarray(2.0**31, x.dtype)
    yi = jnp.where(big, jnp.asarray(0, x.dtype), y).astype(jnp.int32)
    return jnp.where(big, jnp.int32(hi), yi)


def dequantize(x_int, scale, dtype=None) -> Array:
    """Integer -> float: ``x_int / scale`` in ``dtype`` (default: float64 if enabled, else float32)."""
    _check_scale(scale)
    dtype = dtype or jnp.result_type(float)
    return _as_int32("dequantize", x_int).astype(dtype) / jnp.asarray(scale, dtype)


def tau_from_leak_shift(leak_shift: int, dt: float) -> float:
    """``tau_mem`` whose float LIF decay ``exp(-dt/tau_mem)`` equals ``1 - 2**leak_shift``."""
    _check_int("leak_shift", leak_shift, -15, -1)
    return -dt / math.log1p(-(2.0 ** int(leak_shift)))


def _is_integral(y, tol=1e-6):
    y = np.asarray(y, np.float64)
    return bool(np.all(np.abs(y - np.round(y)) <= tol * np.maximum(1.0, np.abs(y))))


def quantize_lif_params(
    lif_params,
    *,
    scale,
    dt: float,
    bits: int = 16,
    reset: str = "zero",
    acm_bits: int = 16,
    w_gain: int = 0,
) -> FixedPointLIFParams:
    """:class:`FixedPointLIFParams` equivalent to float ``LIFParams`` (``input_mode="delta"``).

    ``exp(-dt/tau_mem)`` must equal ``1 - 2**-n`` for an integer ``n`` in 1..15 (build ``tau_mem``
    with :func:`tau_from_leak_shift`) -> ``leak_shift = -n``; ``v_th * scale`` and
    ``v_reset * scale`` must be integers (thresholds scaled by a power of two); a leak toward
    ``v_leak`` becomes ``bias = v_leak * scale * 2**-n``, which must be an integer too;
    ``t_ref_steps = round(t_ref/dt)``.  Otherwise ``ValueError`` naming the parameter.  The
    initial membrane ``v_leak * scale`` is ``init(..., v0=quantize(v_leak, scale))``.
    """
    _check_scale(scale)
    lp = lif_params
    a = np.exp(-dt / np.asarray(lp.tau_mem, np.float64))
    n = -np.log2(1.0 - a)
    if not _is_integral(n) or np.any(np.round(n) < 1) or np.any(np.round(n) > 15):
        raise ValueError(
            f"tau_mem: decay exp(-dt/tau_mem) = {a} is not 1 - 2**-n for an integer n in 1..15 "
            f"(use tau_from_leak_shift(-n, dt))"
        )
    n = np.round(n).astype(np.int64)
    s = np.asarray(scale, np.float64)
    fields = {
        "v_th": np.asarray(lp.v_th, np.float64) * s,
        "v_reset": np.asarray(lp.v_reset, np.float64) * s,
        "v_leak": np.asarray(lp.v_leak, np.float64) * s,
    }
    for name, y in fields.items():
        if not _is_integral(y):
            raise ValueError(f"{name} * scale = {y} is not an integer: choose {name} on the 2**-s grid of scale")
    bias = fields["v_leak"] * np.exp2(-n.astype(np.float64))
    if not _is_integral(bias):
        raise ValueError(f"v_leak: bias v_leak * scale * 2**-n = {bias} is not an integer")
    t_ref = np.round(np.asarray(lp.t_ref, np.float64) / dt)
    lo, hi = int_range(bits)

    def as_int(name, y):  # range-checked here so that the int32 conversion is exact
        y = np.round(y)
        if np.any((y < lo) | (y > hi)):
            raise ValueError(f"{name} * scale = {y} is not representable in bits={bits}")
        return y.astype(np.int32)

    return FixedPointLIF.params(
        bits=bits,
        leak_shift=(-n).astype(np.int32),
        v_th=as_int("v_th", fields["v_th"]),
        v_reset=as_int("v_reset", fields["v_reset"]),
        t_ref_steps=t_ref.astype(np.int32),
        w_gain=w_gain,
        bias=as_int("bias (v_leak)", bias),
        reset=reset,
        acm_bits=acm_bits,
    )


class FloatFixedComparison(NamedTuple):
    """Result of :func:`compare_float_fixed` (traces are ``[T, n]``, membranes in float units)."""

    spike_agreement: float  # fraction of (tick, neuron) with identical spikes
    spikes_equal: bool
    first_mismatch: int  # first tick with any spike mismatch, -1 if none
    max_v_diff: float  # max |v_float - v_fixed / scale| over all ticks
    max_v_diff_agreeing: float  # same, over the ticks before the first mismatch
    bound: float  # 2**n / scale: the quantisation bound (float units) valid before a mismatch
    v_float: np.ndarray
    v_fixed: np.ndarray
    z_float: np.ndarray
    z_fixed: np.ndarray


def compare_float_fixed(
    lif_params,
    inputs,
    *,
    scale,
    dt: float,
    w=None,
    bits: int = 16,
    acm_bits: int = 16,
    reset: str = "zero",
    synaptic_delay: int = 1,
    dequantized_reference: bool = True,
) -> FloatFixedComparison:
    """Run a float ``LIF(input_mode="delta")`` layer and its :class:`FixedPointLIF` twin with
    :func:`spikejax.simulate` and compare them.

    ``inputs``: with ``w=None``, float drives ``[T, n]`` (voltage jumps per tick, float units);
    otherwise presynaptic spikes ``[T, n_pre]`` (0/1) and float weights ``w`` ``[n_pre, n]``.
    Drives / weights are quantised with ``scale`` (ideally a power of two); the fixed layer gets
    the exact integer drive (:func:`fixed_dense`).  With ``dequantized_reference=True`` the float
    layer is driven by the dequantised values, so the only difference is the integer leak and
    the membrane difference stays below ``bound = 2**n/scale`` until the first spike mismatch;
    with ``False`` it uses the raw float values (adds the input rounding error).  For
    ``synaptic_delay=1`` the float inputs are delayed by one tick so the traces line up.
    The float layer runs in float64 when x64 is enabled, else float32.
    """
    from .neurons.lif import LIF  # local import: keep this module importable on its own
    from .simulate import simulate

    if reset not in ("zero", "subtract"):
        raise ValueError(f"reset must be 'zero' or 'subtract' to compare with the float LIF, got {reset!r}")
    check_choice("synaptic_delay", synaptic_delay, {0, 1})
    fdt = jnp.result_type(float)
    pq = quantize_lif_params(lif_params, scale=scale, dt=dt, bits=bits, reset=reset, acm_bits=acm_bits)
    inputs = jnp.asarray(inputs)
    if w is None:
        x_int = quantize(inputs.astype(fdt), scale, 32)
        x_float = dequantize(x_int, scale, fdt) if dequantized_reference else inputs.astype(fdt)
    else:
        w = jnp.asarray(w, fdt)
        w_int = quantize(w, scale, 32)
        s_int = inputs.astype(jnp.int32)
        x_int = fixed_dense(w_int, s_int)
        w_ref = dequantize(w_int, scale, fdt) if dequantized_reference else w
        x_float = s_int.astype(fdt) @ w_ref
    n = jnp.shape(x_int)[1:]
    if synaptic_delay == 1:
        x_float = jnp.concatenate([jnp.zeros((1,) + tuple(n), fdt), x_float[:-1]], axis=0)

    lif = LIF(input_mode="delta", reset=reset)
    pf = type(lif_params)(*(jnp.asarray(f, fdt) for f in lif_params))
    _, (zf, rf) = simulate(lif.step, pf, LIF.init(pf, n, fdt), x_float, dt=dt, record=("v",))
    fx = FixedPointLIF(synaptic_delay=synaptic_delay)
    v0 = quantize(jnp.asarray(lif_params.v_leak, fdt), scale, bits)
    _, (zq, rq) = simulate(fx.step, pq, fx.init(pq, n, v0), x_int, dt=dt, record=("v",))

    v_float = np.asarray(rf["v"], np.float64)
    v_fixed = np.asarray(rq["v"], np.float64) / float(scale)
    z_float = np.asarray(zf) > 0
    z_fixed = np.asarray(zq) > 0
    diff = np.abs(v_float - v_fixed)
    mismatch_t = np.nonzero(np.any(z_float != z_fixed, axis=tuple(range(1, z_float.ndim))))[0]
    first = int(mismatch_t[0]) if mismatch_t.size else -1
    agreeing = diff[:first] if first >= 0 else diff
    n_shift = -np.asarray(pq.leak_shift, np.float64)
    return FloatFixedComparison(
        spike_agreement=float(np.mean(z_float == z_fixed)),
        spikes_equal=first < 0,
        first_mismatch=first,
        max_v_diff=float(diff.max()) if diff.size else 0.0,
        max_v_diff_agreeing=float(agreeing.max()) if agreeing.size else 0.0,
        bound=float(np.max(np.exp2(n_shift)) / float(scale)),
        v_float=v_float,
        v_fixed=v_fixed,
        z_float=z_float,
        z_fixed=z_fixed,
    )
