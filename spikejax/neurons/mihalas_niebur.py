"""Mihalas–Niebur generalised leaky integrate-and-fire neuron (Neural Computation 21:704, 2009).

Continuous model (papers.md section 1.1), state ``(V, Theta, I_1, I_2)``::

    dV/dt     = I_e/C + I_1 + I_2 - (G/C) (V - E_L)
    dTheta/dt = a (V - E_L) - b (Theta - Theta_inf)
    dI_j/dt   = -k_j I_j                                   (j = 1, 2)

where the internal currents ``I_j`` are stored already divided by ``C`` (V/s), as in the paper's
tables.  A spike is emitted when ``V >= Theta``; then

    V <- V_r,   Theta <- max(Theta_r, Theta),   I_j <- R_j I_j + A_j.

Units: time in seconds, potentials in volts, rates (``G/C``, ``k_1``, ``k_2``, ``a``, ``b``) in
s^-1, currents divided by capacitance (``I_e/C``, ``I_j``, ``A_j``) in V/s.  Unlike the LIF
family (which stores ``tau_*``), the rates are stored as rates here because that is how the
paper tabulates them and ``a`` may be zero or negative.

Integration follows the ReScience reproduction (Detorakis 2017, papers.md 1.1/1.3): **forward
Euler** with every right-hand side evaluated at the old state, the external drive ``x`` of the
step included; the spike test runs *after* the update (at most one spike per step, no refractory
period).  The default step of the presets is ``dt = 0.1 ms``.  Step order:

1. ``V, Theta, I_1, I_2`` advance by one Euler step of length ``dt``;
2. ``z = spike_fn((V - Theta) / v_scale)`` (exact ``1[V >= Theta]`` forward, surrogate backward);
3. reset with ``z`` as a gate, so gradients flow through the reset as well.

:func:`mn_preset` / :func:`run_preset` give the paper's 20 behaviours (panels A–T of figure 1,
parameters of ReScience tables 4 and 5); ``tests/test_mihalas_niebur.py`` checks each one on its
spike train.  What the Euler presets actually do, where it differs from the textbook reading:

* D (phasic spiking) fires 5 spikes in the first 176 ms, then never again: phasic, but not the
  single onset spike of Izhikevich's definition;
* H (class 2): with ``a = 5 s^-1`` firing starts near ``I_e/C = 1.69 V/s`` (long transients
  below ~1.70), not at the nominal 2 V/s of the protocol; the rate jumps from 0 to ~15 Hz;
* F (threshold variability): the spike comes 24.5 ms into the final 25 ms pulse, a narrow
  margin (from rest the first spike would come at 25.1 ms);
* B (class 1) needs float64: its drive is 2e-8 V above threshold in steady state, below float32
  resolution at -50 mV (float32 never fires).  All other presets agree in float32.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive, check_range, is_concrete
from ..simulate import simulate
from ..surrogate import fast_sigmoid
from .lif import _as, _check_input

__all__ = [
    "MihalasNiebur",
    "MNParams",
    "MNState",
    "MNPreset",
    "MNTrace",
    "MN_PRESETS",
    "mn_preset",
    "mn_preset_names",
    "mn_stimulus",
    "run_preset",
]

Array = jax.Array


class MNParams(NamedTuple):
    """Mihalas–Niebur parameters (SI units).

    * ``g_over_c`` [s^-1]: membrane leak rate ``G/C`` (paper: 50 s^-1, i.e. tau_m = 20 ms);
    * ``k1``, ``k2`` [s^-1]: decay rates of the internal currents ``I_1``, ``I_2``;
    * ``a`` [s^-1]: coupling of the threshold to the sub-threshold voltage (any sign);
    * ``b`` [s^-1]: relaxation rate of the threshold towards ``theta_inf``;
    * ``r1``, ``r2`` [1]: multiplicative reset of ``I_j`` at a spike;
    * ``a1``, ``a2`` [V/s]: additive jump of ``I_j`` at a spike (``A_j/C``);
    * ``e_l``, ``v_r``, ``theta_r``, ``theta_inf`` [V]: reversal potential, voltage reset,
      threshold reset floor and threshold rest value.
    """

    g_over_c: Array
    k1: Array
    k2: Array
    a: Array
    b: Array
    r1: Array
    r2: Array
    a1: Array
    a2: Array
    e_l: Array
    v_r: Array
    theta_r: Array
    theta_inf: Array


class MNState(NamedTuple):
    """``v`` membrane [V]; ``theta`` threshold [V]; ``i1``, ``i2`` internal currents / C [V/s]."""

    v: Array
    theta: Array
    i1: Array
    i2: Array


def _check_finite(name, value):
    check_range(name, value)


@dataclasses.dataclass(frozen=True)
class MihalasNiebur:
    """Mihalas–Niebur generalised LIF neuron, forward-Euler integrated.

    ``x`` is the external drive ``I_e/C`` in V/s (held over the step; the same number as the
    paper's mV/ms).  ``spike_fn`` receives ``(v - theta) / v_scale``: the distance to threshold in
    units of ``v_scale`` (1 mV by default), so a surrogate's shape parameter is expressed per mV;
    the forward pass is unaffected.  ``detach_reset`` stops gradients through the reset gate.
    """

    spike_fn: Callable = dataclasses.field(default_factory=fast_sigmoid)
    v_scale: float = 1e-3
    detach_reset: bool = False

    def __post_init__(self):
        check_positive("v_scale", self.v_scale)

    @staticmethod
    def params(
        g_over_c=50.0,
        k1=200.0,
        k2=20.0,
        a=0.0,
        b=10.0,
        r1=0.0,
        r2=1.0,
        a1=0.0,
        a2=0.0,
        e_l=-0.07,
        v_r=-0.07,
        theta_r=-0.06,
        theta_inf=-0.05,
        dtype=jnp.float32,
    ) -> MNParams:
        """Validated parameters; defaults are the paper's common values (papers.md 1.2) with
        ``a = A_1 = A_2 = 0`` (tonic spiking)."""
        for name, value in (("g_over_c", g_over_c), ("k1", k1), ("k2", k2), ("b", b)):
            check_positive(name, value)
        for name, value in (
            ("a", a),
            ("r1", r1),
            ("r2", r2),
            ("a1", a1),
            ("a2", a2),
            ("e_l", e_l),
            ("v_r", v_r),
            ("theta_r", theta_r),
            ("theta_inf", theta_inf),
        ):
            _check_finite(name, value)
        if is_concrete(v_r) and is_concrete(theta_r):
            if np.any(np.asarray(v_r, float) >= np.asarray(theta_r, float)):
                raise ValueError(f"v_r ({v_r}) must be below theta_r ({theta_r}), else a reset neuron fires again")
        return _as(dtype, MNParams(g_over_c, k1, k2, a, b, r1, r2, a1, a2, e_l, v_r, theta_r, theta_inf))

    @staticmethod
    def init(params: MNParams, shape, v0=None, theta0=None, i1_0=0.0, i2_0=0.0, dtype=None) -> MNState:
        """State of ``shape``; defaults: ``v = e_l``, ``theta = theta_inf``, ``i1 = i2 = 0``
        (the resting point without input)."""
        dtype = dtype or jnp.result_type(params.e_l)
        v0 = params.e_l if v0 is None else v0
        theta0 = params.theta_inf if theta0 is None else theta0

        def full(value):
            return jnp.broadcast_to(jnp.asarray(value, dtype), shape)

        return MNState(full(v0), full(theta0), full(i1_0), full(i2_0))

    @staticmethod
    def check_dt(params: MNParams, dt):
        """Raise ``ValueError`` if forward Euler with this ``dt`` is not a contraction for the
        linear decays (``rate * dt >= 1`` for ``G/C``, ``k1``, ``k2`` or ``b``)."""
        check_positive("dt", dt)
        if not (is_concrete(dt) and all(is_concrete(f) for f in params)):
            return
        for name in ("g_over_c", "k1", "k2", "b"):
            if np.any(np.asarray(getattr(params, name), float) * float(dt) >= 1.0):
                raise ValueError(
                    f"dt = {dt} s is too large for forward Euler: {name} * dt must be < 1 "
                    f"({name} = {np.asarray(getattr(params, name))} s^-1)"
                )

    def step(self, params: MNParams, state: MNState, x, *, dt, key=None):
        _check_input("MihalasNiebur.step", x, state.v.shape, None)
        self.check_dt(params, dt)
        p = _as(state.v.dtype, params)
        v, th, i1, i2 = state
        # 1. forward Euler, every right-hand side at the old state
        dv = x + i1 + i2 - p.g_over_c * (v - p.e_l)
        dth = p.a * (v - p.e_l) - p.b * (th - p.theta_inf)
        v = v + dt * dv
        th = th + dt * dth
        i1 = i1 - dt * p.k1 * i1
        i2 = i2 - dt * p.k2 * i2
        # 2. spike test after the update
        z = self.spike_fn((v - th) / self.v_scale)
        zr = jax.lax.stop_gradient(z) if self.detach_reset else z
        # 3. gated reset: V <- V_r, Theta <- max(Theta_r, Theta), I_j <- R_j I_j + A_j
        v = v + zr * (p.v_r - v)
        th = th + zr * (jnp.maximum(p.theta_r, th) - th)
        i1 = i1 + zr * ((p.r1 - 1) * i1 + p.a1)
        i2 = i2 + zr * ((p.r2 - 1) * i2 + p.a2)
        return MNState(v, th, i1, i2), z

    __call__ = step


# ---------------------------------------------------------------------------------------------
# The 20 behaviours of Mihalas & Niebur (2009), figure 1 / table 1, as reproduced by ReScience
# (Detorakis 2017, tables 4 and 5).  Values in SI: a in s^-1, A_j and I_e/C in V/s, durations s.

# Initial condition of every panel but H (ReScience code): I_1 = 0.01, I_2 = 0.001 V/s,
# V = -70 mV, Theta = -50 mV.
_IC = (-0.07, -0.05, 0.01, 0.001)
_IC_H = (-0.03, -0.03, 0.01, 0.001)


class _Spec(NamedTuple):
    letter: str
    name: str
    title: str
    a: float
    a1: float
    a2: float
    t_f: float
    pulses: tuple  # ((I_e/C [V/s], duration [s]), ...) in order from t = 0
    ic: tuple = _IC  # (v0, theta0, i1_0, i2_0)


# fmt: off
_SPECS = (
    #     panel, name, title,
    #     a [1/s], A_1/C [V/s], A_2/C [V/s], t_f [s], ((I_e/C [V/s], duration [s]), ...)[, IC]
    _Spec("A", "tonic_spiking", "Tonic spiking",
          0.0, 0.0, 0.0, 0.2, ((1.5, 0.2),)),
    _Spec("B", "class_1", "Class 1 excitability",
          0.0, 0.0, 0.0, 0.5, ((1.0 + 1e-6, 0.5),)),
    _Spec("C", "spike_frequency_adaptation", "Spike-frequency adaptation",
          5.0, 0.0, 0.0, 0.2, ((2.0, 0.2),)),
    _Spec("D", "phasic_spiking", "Phasic spiking",
          5.0, 0.0, 0.0, 0.5, ((1.5, 0.5),)),
    _Spec("E", "accommodation", "Accommodation",
          5.0, 0.0, 0.0, 1.0, ((1.5, 0.1), (0.0, 0.5), (0.5, 0.1), (1.0, 0.1), (1.5, 0.1), (0.0, 0.1))),
    _Spec("F", "threshold_variability", "Threshold variability",
          5.0, 0.0, 0.0, 0.4,
          ((1.5, 0.02), (0.0, 0.18), (-1.5, 0.025), (0.0, 0.025), (1.5, 0.025), (0.0, 0.125))),
    # Panel G: the ReScience *table* gives 0.756 s of -3.5 V/s (its code 0.755 s, brainpy 0.75 s
    # after 50 ms); we follow the table.  All three give the same single rebound spike, 48.7 ms
    # after release.
    _Spec("G", "rebound_spike", "Rebound spike",
          5.0, 0.0, 0.0, 1.0, ((0.0, 0.05), (-3.5, 0.756), (0.0, 0.194))),
    # Panel H starts at V = Theta = -30 mV (ReScience; brainpy leaves V at -70 mV).
    _Spec("H", "class_2", "Class 2 excitability",
          5.0, 0.0, 0.0, 0.3, ((2.0 * (1 + 1e-6), 0.3),), _IC_H),
    _Spec("I", "integrator", "Integrator",
          5.0, 0.0, 0.0, 0.4,
          ((1.5, 0.02), (0.0, 0.01), (1.5, 0.02), (0.0, 0.25),
           (1.5, 0.02), (0.0, 0.02), (1.5, 0.02), (0.0, 0.04))),
    _Spec("J", "input_bistability", "Input bistability",
          5.0, 0.0, 0.0, 1.0, ((1.5, 0.1), (1.7, 0.4), (1.5, 0.1), (1.7, 0.4))),
    # Panels K, L: ReScience values (a = 30 s^-1, Theta_inf = -50 mV); brainpy uses a = 0 with
    # Theta_inf = -120 mV instead (papers.md 1.3).
    _Spec("K", "hyperpolarization_induced_spiking", "Hyperpolarization-induced spiking",
          30.0, 0.0, 0.0, 0.4, ((-1.0, 0.4),)),
    _Spec("L", "hyperpolarization_induced_bursting", "Hyperpolarization-induced bursting",
          30.0, 10.0, -0.6, 0.4, ((-1.0, 0.4),)),
    _Spec("M", "tonic_bursting", "Tonic bursting",
          5.0, 10.0, -0.6, 0.5, ((2.0, 0.5),)),
    _Spec("N", "phasic_bursting", "Phasic bursting",
          5.0, 10.0, -0.6, 0.5, ((1.5, 0.5),)),
    _Spec("O", "rebound_burst", "Rebound burst",
          5.0, 10.0, -0.6, 1.0, ((0.0, 0.1), (-3.5, 0.5), (0.0, 0.4))),
    _Spec("P", "mixed_mode", "Mixed mode",
          5.0, 5.0, -0.3, 0.5, ((2.0, 0.5),)),
    _Spec("Q", "afterpotentials", "Afterpotentials",
          5.0, 5.0, -0.3, 0.2, ((2.0, 0.015), (0.0, 0.185))),
    _Spec("R", "basal_bistability", "Basal bistability",
          0.0, 8.0, -0.1, 0.2, ((5.0, 0.01), (0.0, 0.09), (5.0, 0.01), (0.0, 0.09))),
    _Spec("S", "preferred_frequency", "Preferred frequency",
          5.0, -3.0, 0.5, 0.8,
          ((5.0, 0.005), (0.0, 0.005), (4.0, 0.005), (0.0, 0.385),
           (5.0, 0.005), (0.0, 0.045), (4.0, 0.005), (0.0, 0.345))),
    _Spec("T", "spike_latency", "Spike latency",
          -80.0, 0.0, 0.0, 0.05, ((8.0, 0.002), (0.0, 0.048))),
)
# fmt: on

#: Preset name -> panel letter, in the paper's order A..T.
MN_PRESETS = {s.name: s.letter for s in _SPECS}
_BY_KEY = {**{s.name: s for s in _SPECS}, **{s.letter: s for s in _SPECS}}


def mn_preset_names() -> list[str]:
    """The 20 preset names in panel order A..T."""
    return [s.name for s in _SPECS]


def _lookup(name: str) -> _Spec:
    if isinstance(name, str):
        key = name.strip()
        key = key.upper() if len(key) == 1 else key.lower().replace("-", "_").replace(" ", "_")
        if key in _BY_KEY:
            return _BY_KEY[key]
    valid = ", ".join(f"{s.letter}/{s.name}" for s in _SPECS)
    raise ValueError(f"unknown Mihalas-Niebur preset {name!r}; valid names (panel letter or name): {valid}")


def mn_stimulus(pulses, dt: float, dtype=None) -> jax.Array:
    """Time-major ``[T]`` drive from ``((value, duration), ...)`` pulses applied in order from
    ``t = 0``; each duration is rounded to a whole number of steps of ``dt``."""
    check_positive("dt", dt)
    chunks = []
    for value, duration in pulses:
        n = int(round(duration / dt))
        if n < 0 or abs(n * dt - duration) > 1e-6 * max(duration, dt):
            raise ValueError(f"pulse duration {duration} s is not a whole number of steps of dt = {dt} s")
        chunks.append(np.full(n, value, dtype=np.float64))
    arr = np.concatenate(chunks) if chunks else np.zeros(0)
    return jnp.asarray(arr, dtype or _default_dtype())


def _default_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


@dataclasses.dataclass(frozen=True)
class MNPreset:
    """One behaviour of the paper: panel ``letter``, ``name``, ``title``, validated ``params``,
    initial ``state`` (scalar), step ``dt`` [s] and time-major ``stimulus`` ``[T]`` (I_e/C, V/s)."""

    letter: str
    name: str
    title: str
    params: MNParams
    state0: MNState
    dt: float
    stimulus: jax.Array
    pulses: tuple

    @property
    def duration(self) -> float:
        return self.stimulus.shape[0] * self.dt


class MNTrace(NamedTuple):
    """Traces of :func:`run_preset`, each ``[T]``.  Entry ``n`` is the state at the *end* of step
    ``n``, i.e. at ``t[n] = (n + 1) dt``; ``stimulus[n]`` is the drive during that step and
    ``spikes[n]`` is 1 when the neuron fired (and was reset) in it."""

    t: np.ndarray
    v: np.ndarray
    theta: np.ndarray
    i1: np.ndarray
    i2: np.ndarray
    stimulus: np.ndarray
    spikes: np.ndarray

    @property
    def spike_times(self) -> np.ndarray:
        return self.t[self.spikes > 0]


def mn_preset(name: str, *, dt: float = 1e-4, dtype=None, **overrides) -> MNPreset:
    """The paper's behaviour ``name`` (e.g. ``"tonic_spiking"`` or panel letter ``"A"``).

    Common parameters from papers.md 1.2, panel ``a``, ``A_1``, ``A_2``, pulse protocol and
    initial condition from 1.3 (ReScience tables 4/5).  ``overrides`` replace entries of
    :meth:`MihalasNiebur.params` (e.g. ``a=0.0``).  ``dtype`` defaults to float64 when
    ``jax_enable_x64`` is on, else float32; note that panels B and H sit only 10^-6 above their
    bifurcation, a margin float32 cannot resolve (see the tests).
    """
    spec = _lookup(name)
    dtype = dtype or _default_dtype()
    kw = dict(a=spec.a, a1=spec.a1, a2=spec.a2)
    kw.update(overrides)
    params = MihalasNiebur.params(dtype=dtype, **kw)
    v0, th0, i10, i20 = spec.ic
    state0 = MihalasNiebur.init(params, (), v0=v0, theta0=th0, i1_0=i10, i2_0=i20)
    stim = mn_stimulus(spec.pulses, dt, dtype)
    n_total = int(round(spec.t_f / dt))
    if stim.shape[0] != n_total:  # pragma: no cover - guards the table above
        raise AssertionError(f"preset {spec.name}: pulses last {stim.shape[0]} steps, t_f = {n_total}")
    return MNPreset(spec.letter, spec.name, spec.title, params, state0, dt, stim, spec.pulses)


def run_preset(name, *, model: MihalasNiebur | None = None, stimulus=None, **kwargs) -> MNTrace:
    """Simulate preset ``name`` (a name, a panel letter or an :class:`MNPreset`) with
    :func:`spikejax.simulate`; ``stimulus`` replaces the preset's drive.  ``kwargs`` go to
    :func:`mn_preset`.  Returns numpy traces (:class:`MNTrace`)."""
    if isinstance(name, MNPreset):
        if kwargs:
            raise ValueError(f"run_preset: {sorted(kwargs)} apply to mn_preset, not to a ready MNPreset")
        preset = name
    else:
        preset = mn_preset(name, **kwargs)
    model = model or MihalasNiebur()
    stim = preset.stimulus if stimulus is None else jnp.asarray(stimulus, preset.state0.v.dtype)
    _, (spikes, rec) = simulate(
        model.step, preset.params, preset.state0, stim, dt=preset.dt, record=("v", "theta", "i1", "i2")
    )
    t = (np.arange(stim.shape[0]) + 1) * preset.dt
    return MNTrace(
        t,
        np.asarray(rec["v"]),
        np.asarray(rec["theta"]),
        np.asarray(rec["i1"]),
        np.asarray(rec["i2"]),
        np.asarray(stim),
        np.asarray(spikes),
    )
