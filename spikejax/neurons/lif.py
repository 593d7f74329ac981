"""Leaky integrate-and-fire neurons with instantaneous, first- and second-order synapses, and the
two-compartment LIF of eRBP.

Units: time in seconds, membrane quantities in volts (or dimensionless threshold units: every
model is linear below threshold, so any consistent voltage unit works).  Inputs are expressed as
*voltage drive*: an input ``x`` held constant moves the membrane towards ``v_leak + x`` (i.e.
``x = R I``).  Synaptic events are jumps of the synaptic variable.

All sub-threshold dynamics are integrated *exactly* (the propagator of the linear ODE over one
step of length ``dt``), so a discrete trace equals the continuous solution sampled at
``t = n dt``; only threshold crossings are quantised to the grid.

Step order within one step of length ``dt`` (all models):

1. synaptic events ``x`` arriving in this step are added to the synaptic variables;
2. the linear sub-threshold system is advanced exactly by ``dt``;
3. a neuron in its refractory period is clamped to ``v_reset`` and cannot spike;
4. spike ``z = spike_fn(v - v_th)``; reset to ``v_reset`` (``reset="zero"``) or subtract
   ``v_th - v_reset`` (``reset="subtract"``); a spike starts ``round(t_ref/dt)`` refractory steps.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

import numpy as np

from .._checks import check_choice, check_positive, is_concrete
from ..surrogate import fast_sigmoid

__all__ = [
    "LIF",
    "LIFParams",
    "LIFState",
    "LIFSyn1",
    "LIFSyn1Params",
    "LIFSyn1State",
    "LIFSyn2",
    "LIFSyn2Params",
    "LIFSyn2State",
    "TwoCompartmentLIF",
    "TwoCompartmentParams",
    "TwoCompartmentState",
    "exp_pair",
]

Array = jax.Array


def _exprel(u):
    """``expm1(u)/u``, equal to 1 at u = 0, stable near 0."""
    small = jnp.abs(u) < 1e-6
    safe_u = jnp.where(small, 1.0, u)
    return jnp.where(small, 1.0 + 0.5 * u, jnp.expm1(safe_u) / safe_u)


def exp_pair(tau_a, tau_b, t):
    """``tau_a/(tau_a - tau_b) (exp(-t/tau_a) - exp(-t/tau_b))``, with its limit
    ``(t/tau_b) exp(-t/tau_b)`` at ``tau_a = tau_b``.

    This is the response at time ``t`` of ``y' = (-y + f)/tau_b`` to ``f(t) = exp(-t/tau_a)``
    (``y(0) = 0``): the impulse response of a first-order synapse seen through a membrane.
    """
    u = t * (tau_a - tau_b) / (tau_a * tau_b)
    return (t / tau_b) * jnp.exp(-t / tau_b) * _exprel(u)


def _ref_steps(t_ref, dt):
    return jnp.round(jnp.asarray(t_ref) / dt).astype(jnp.int32)


def _fire_and_reset(v, ref, p, dt, spike_fn, reset, detach_reset):
    refractory = ref > 0
    v = jnp.where(refractory, p.v_reset, v)
    z = jnp.where(refractory, jnp.zeros((), v.dtype), spike_fn(v - p.v_th))
    zr = jax.lax.stop_gradient(z) if detach_reset else z
    if reset == "zero":
        v = v - zr * (v - p.v_reset)
    else:
        v = v - zr * (p.v_th - p.v_reset)
    ref = jnp.where(z > 0, _ref_steps(p.t_ref, dt), jnp.maximum(ref - 1, 0))
    return v, ref, z


def _as(dtype, p):
    return type(p)(*(jnp.asarray(f, dtype) for f in p))


def _check_input(name, x, shape, dtype):
    if jnp.shape(x) != tuple(shape):
        raise ValueError(f"{name}: input shape {jnp.shape(x)} does not match the state shape {tuple(shape)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"{name}: input dtype must be floating, got {jnp.result_type(x)}")


def _common_checks(tau_mem, v_th, v_reset, t_ref):
    check_positive("tau_mem", tau_mem)
    check_positive("t_ref", t_ref, allow_zero=True)
    if is_concrete(v_reset) and is_concrete(v_th):
        if np.any(np.asarray(v_reset, float) >= np.asarray(v_th, float)):
            raise ValueError(f"v_reset ({v_reset}) must be below v_th ({v_th})")


# ---------------------------------------------------------------------------------------------
# 1. LIF with instantaneous synapses


class LIFParams(NamedTuple):
    """LIF parameters. ``tau_mem`` [s], ``v_th``/``v_reset``/``v_leak`` [V], ``t_ref`` [s]."""

    tau_mem: Array
    v_th: Array
    v_reset: Array
    v_leak: Array
    t_ref: Array


class LIFState(NamedTuple):
    """``v`` membrane [V]; ``ref`` remaining refractory steps (int32)."""

    v: Array
    ref: Array


@dataclasses.dataclass(frozen=True)
class LIF:
    """LIF neuron with instantaneous synapses.

    ``input_mode="current"``: ``x`` is a drive held over the step,
    ``v <- v_leak + (v - v_leak) a + (1 - a) x``, ``a = exp(-dt/tau_mem)``.
    ``input_mode="delta"``: ``x`` is an instantaneous jump (weighted spikes through delta
    synapses), ``v <- v_leak + (v - v_leak) a + x``.
    For stochastic (blank-out) synapses build ``x`` with :func:`spikejax.synapses.blankout_dense`.
    """

    spike_fn: Callable = dataclasses.field(default_factory=fast_sigmoid)
    reset: str = "zero"
    input_mode: str = "current"
    detach_reset: bool = False

    def __post_init__(self):
        check_choice("reset", self.reset, {"zero", "subtract"})
        check_choice("input_mode", self.input_mode, {"current", "delta"})

    @staticmethod
    def params(tau_mem=20e-3, v_th=1.0, v_reset=0.0, v_leak=0.0, t_ref=0.0, dtype=jnp.float32) -> LIFParams:
        _common_checks(tau_mem, v_th, v_reset, t_ref)
        return _as(dtype, LIFParams(tau_mem, v_th, v_reset, v_leak, t_ref))

    @staticmethod
    def init(params: LIFParams, shape, dtype=None) -> LIFState:
        dtype = dtype or jnp.result_type(params.v_leak)
        return LIFState(jnp.broadcast_to(params.v_leak, shape).astype(dtype), jnp.zeros(shape, jnp.int32))

    def step(self, params: LIFParams, state: LIFState, x, *, dt, key=None):
        _check_input("LIF.step", x, state.v.shape, None)
        p = _as(state.v.dtype, params)
        a = jnp.exp(-dt / p.tau_mem)
        drive = (1 - a) * x if self.input_mode == "current" else x
        v = p.v_leak + (state.v - p.v_leak) * a + drive
        v, ref, z = _fire_and_reset(v, state.ref, p, dt, self.spike_fn, self.reset, self.detach_reset)
        return LIFState(v, ref), z

    __call__ = step


# ---------------------------------------------------------------------------------------------
# 2. LIF with a first-order kinetic (exponential) synapse


class LIFSyn1Params(NamedTuple):
    """``tau_mem``, ``tau_syn`` [s]; ``v_th``, ``v_reset``, ``v_leak`` [V]; ``t_ref`` [s]."""

    tau_mem: Array
    tau_syn: Array
    v_th: Array
    v_reset: Array
    v_leak: Array
    t_ref: Array


class LIFSyn1State(NamedTuple):
    """``v`` membrane [V]; ``i`` synaptic drive [V]; ``ref`` refractory steps left."""

    v: Array
    i: Array
    ref: Array


@dataclasses.dataclass(frozen=True)
class LIFSyn1:
    """LIF with an exponential (first-order kinetic) current synapse.

    ``tau_syn di/dt = -i + tau_syn sum_k w_k delta(t - t_k)`` (each event jumps ``i`` by ``x``),
    ``tau_mem dv/dt = -(v - v_leak) + i``.  Impulse response of ``v`` to a unit jump of ``i``:
    :func:`exp_pair` ``(tau_syn, tau_mem, t)``.
    """

    spike_fn: Callable = dataclasses.field(default_factory=fast_sigmoid)
    reset: str = "zero"
    detach_reset: bool = False

    def __post_init__(self):
        check_choice("reset", self.reset, {"zero", "subtract"})

    @staticmethod
    def params(tau_mem=20e-3, tau_syn=5e-3, v_th=1.0, v_reset=0.0, v_leak=0.0, t_ref=0.0, dtype=jnp.float32):
        _common_checks(tau_mem, v_th, v_reset, t_ref)
        check_positive("tau_syn", tau_syn)
        return _as(dtype, LIFSyn1Params(tau_mem, tau_syn, v_th, v_reset, v_leak, t_ref))

    @staticmethod
    def init(params, shape, dtype=None) -> LIFSyn1State:
        dtype = dtype or jnp.result_type(params.v_leak)
        return LIFSyn1State(
            jnp.broadcast_to(params.v_leak, shape).astype(dtype), jnp.zeros(shape, dtype), jnp.zeros(shape, jnp.int32)
        )

    def step(self, params, state, x, *, dt, key=None):
        _check_input("LIFSyn1.step", x, state.v.shape, None)
        p = _as(state.v.dtype, params)
        i = state.i + x
        a_m = jnp.exp(-dt / p.tau_mem)
        v = p.v_leak + (state.v - p.v_leak) * a_m + i * exp_pair(p.tau_syn, p.tau_mem, dt)
        i = i * jnp.exp(-dt / p.tau_syn)
        v, ref, z = _fire_and_reset(v, state.ref, p, dt, self.spike_fn, self.reset, self.detach_reset)
        return LIFSyn1State(v, i, ref), z

    __call__ = step


# ---------------------------------------------------------------------------------------------
# 3. LIF with a second-order kinetic synapse, bias and noise


class LIFSyn2Params(NamedTuple):
    """``tau_mem``, ``tau_rise``, ``tau_syn`` [s] (``tau_rise < tau_syn``); ``v_th``, ``v_reset``,
    ``v_leak`` [V]; ``t_ref`` [s]; ``bias`` [V] constant drive; ``noise_std`` [V] stationary
    standard deviation of the membrane's Ornstein-Uhlenbeck noise."""

    tau_mem: Array
    tau_rise: Array
    tau_syn: Array
    v_th: Array
    v_reset: Array
    v_leak: Array
    t_ref: Array
    bias: Array
    noise_std: Array


class LIFSyn2State(NamedTuple):
    """``v`` membrane; ``i`` synaptic drive; ``h`` rise variable; ``ref`` refractory steps left."""

    v: Array
    i: Array
    h: Array
    ref: Array


@dataclasses.dataclass(frozen=True)
class LIFSyn2:
    """LIF with a second-order kinetic synapse (difference of exponentials), bias and noise.

    ``tau_rise dh/dt = -h`` (events jump ``h`` by ``x``), ``di/dt = -i/tau_syn + h/tau_rise``,
    ``tau_mem dv/dt = -(v - v_leak) + bias + i + noise``.  The synaptic impulse response is
    ``i(t) = tau_syn/(tau_syn - tau_rise) (exp(-t/tau_syn) - exp(-t/tau_rise))``.  The noise is
    an exact Ornstein-Uhlenbeck increment with stationary standard deviation ``noise_std``
    (needs ``key`` when ``noise_std > 0``).
    """

    spike_fn: Callable = dataclasses.field(default_factory=fast_sigmoid)
    reset: str = "zero"
    detach_reset: bool = False

    def __post_init__(self):
        check_choice("reset", self.reset, {"zero", "subtract"})

    @staticmethod
    def params(
        tau_mem=20e-3,
        tau_rise=1e-3,
        tau_syn=5e-3,
        v_th=1.0,
        v_reset=0.0,
        v_leak=0.0,
        t_ref=0.0,
        bias=0.0,
        noise_std=0.0,
        dtype=jnp.float32,
    ):
        _common_checks(tau_mem, v_th, v_reset, t_ref)
        check_positive("tau_rise", tau_rise)
        check_positive("tau_syn", tau_syn)
        check_positive("noise_std", noise_std, allow_zero=True)
        if is_concrete(tau_rise) and is_concrete(tau_syn):
            if not np.all(np.asarray(tau_rise, float) < np.asarray(tau_syn, float) * (1 - 1e-3)):
                raise ValueError(
                    f"tau_rise ({tau_rise}) must be smaller than tau_syn ({tau_syn}); for a single "
                    "exponential synapse use LIFSyn1"
                )
        return _as(dtype, LIFSyn2Params(tau_mem, tau_rise, tau_syn, v_th, v_reset, v_leak, t_ref, bias, noise_std))

    @staticmethod
    def init(params, shape, dtype=None) -> LIFSyn2State:
        dtype = dtype or jnp.result_type(params.v_leak)
        z = jnp.zeros(shape, dtype)
        return LIFSyn2State(jnp.broadcast_to(params.v_leak, shape).astype(dtype), z, z, jnp.zeros(shape, jnp.int32))

    def step(self, params, state, x, *, dt, key=None):
        _check_input("LIFSyn2.step", x, state.v.shape, None)
        p = _as(state.v.dtype, params)
        h = state.h + x
        a_m = jnp.exp(-dt / p.tau_mem)
        kappa = p.tau_syn / (p.tau_syn - p.tau_rise)
        v_from_h = kappa * (exp_pair(p.tau_syn, p.tau_mem, dt) - exp_pair(p.tau_rise, p.tau_mem, dt))
        v = (
            p.v_leak
            + (state.v - p.v_leak) * a_m
            + (1 - a_m) * p.bias
            + state.i * exp_pair(p.tau_syn, p.tau_mem, dt)
            + h * v_from_h
        )
        if key is not None:
            v = v + p.noise_std * jnp.sqrt(1 - a_m**2) * jax.random.normal(key, v.shape, v.dtype)
        i = state.i * jnp.exp(-dt / p.tau_syn) + h * exp_pair(p.tau_syn, p.tau_rise, dt)
        h = h * jnp.exp(-dt / p.tau_rise)
        v, ref, z = _fire_and_reset(v, state.ref, p, dt, self.spike_fn, self.reset, self.detach_reset)
        return LIFSyn2State(v, i, h, ref), z

    __call__ = step


# ---------------------------------------------------------------------------------------------
# 4. Two-compartment LIF (eRBP)


class TwoCompartmentParams(NamedTuple):
    """Soma: ``tau_mem``, ``tau_syn`` [s], ``v_th``, ``v_reset`` [V], ``t_ref`` [s], ``bias`` [V].
    Dendrite: ``tau_dend`` [s], ``bias_dend``."""

    tau_mem: Array
    tau_syn: Array
    tau_dend: Array
    v_th: Array
    v_reset: Array
    t_ref: Array
    bias: Array
    bias_dend: Array


class TwoCompartmentState(NamedTuple):
    """``v`` soma; ``i`` somatic synaptic current (eRBP gates learning on it); ``u`` dendrite
    (error) compartment; ``ref`` refractory steps left."""

    v: Array
    i: Array
    u: Array
    ref: Array


@dataclasses.dataclass(frozen=True)
class TwoCompartmentLIF:
    """Two-compartment LIF as used by eRBP (papers.md 2.2).

    Input ``x = (x_soma, x_dend)``: ``x_soma`` jumps the somatic synaptic current ``i``
    (exponential synapse, ``tau_syn``) that drives ``tau_mem dv/dt = -v + bias + i``;
    ``x_dend`` jumps the dendrite ``tau_dend du/dt = -u + bias_dend``.  The dendrite does not
    drive the soma: it carries the error used by the learning rule.
    """

    spike_fn: Callable = dataclasses.field(default_factory=fast_sigmoid)
    reset: str = "zero"

    def __post_init__(self):
        check_choice("reset", self.reset, {"zero", "subtract"})

    @staticmethod
    def params(
        tau_mem=1e-3,
        tau_syn=4e-3,
        tau_dend=5e-3,
        v_th=0.1,
        v_reset=0.0,
        t_ref=3.9e-3,
        bias=0.0,
        bias_dend=0.0,
        dtype=jnp.float32,
    ):
        _common_checks(tau_mem, v_th, v_reset, t_ref)
        check_positive("tau_syn", tau_syn)
        check_positive("tau_dend", tau_dend)
        return _as(dtype, TwoCompartmentParams(tau_mem, tau_syn, tau_dend, v_th, v_reset, t_ref, bias, bias_dend))

    @staticmethod
    def init(params, shape, dtype=None) -> TwoCompartmentState:
        dtype = dtype or jnp.result_type(params.v_reset)
        z = jnp.zeros(shape, dtype)
        return TwoCompartmentState(z, z, z, jnp.zeros(shape, jnp.int32))

    def step(self, params, state, x, *, dt, key=None):
        if not (isinstance(x, (tuple, list)) and len(x) == 2):
            raise ValueError("TwoCompartmentLIF.step: input must be a pair (x_soma, x_dend)")
        x_soma, x_dend = x
        _check_input("TwoCompartmentLIF.step (x_soma)", x_soma, state.v.shape, None)
        _check_input("TwoCompartmentLIF.step (x_dend)", x_dend, state.v.shape, None)
        p = _as(state.v.dtype, params)
        i = state.i + x_soma
        a_m = jnp.exp(-dt / p.tau_mem)
        v = state.v * a_m + (1 - a_m) * p.bias + i * exp_pair(p.tau_syn, p.tau_mem, dt)
        i = i * jnp.exp(-dt / p.tau_syn)
        a_u = jnp.exp(-dt / p.tau_dend)
        u = state.u * a_u + (1 - a_u) * p.bias_dend + x_dend
        v, ref, z = _fire_and_reset(v, state.ref, p, dt, self.spike_fn, self.reset, False)
        return TwoCompartmentState(v, i, u, ref), z

    __call__ = step
