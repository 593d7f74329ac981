r"""SoftLIF rate activation (Hunsberger & Eliasmith 2015) and conversion of rate-trained dense
networks into spiking LIF networks.

Rate functions
--------------
``j`` is the input current normalised so that the threshold is 1 (``j = gain * x + bias``).
With ``y = j - 1`` (distance to threshold):

.. math::

    r(j) = \frac{a}{\tau_{ref} + \tau_{RC} \ln(1 + 1/\rho(y))}, \qquad
    \rho(y) = \max(y, 0) \;\; \text{(LIF)}, \qquad
    \rho_\gamma(y) = \gamma \ln(1 + e^{y/\gamma}) \;\; \text{(SoftLIF)}

(``r = 0`` for ``y <= 0`` in the LIF case).  ``a`` is the amplitude: ``a = 1`` gives rates in Hz;
an activation uses a small ``a`` (default 0.01) so that activations are O(1).  The SoftLIF
derivative is the nengo-extras one, written with ``p = rho_gamma(y)`` and ``z = y/gamma``:

.. math::

    \frac{dr}{dy} = \frac{\tau_{RC}\, r^2\, \sigma(z)}{a\, p\, (1 + p)}

Numerics (both float32 and float64, every finite input):

* ``z >= 34``: ``rho = y`` (softplus is the identity to working precision);
* ``z < -20``: ``ln(1 + 1/p)`` is evaluated as ``-ln(gamma) - z`` (the nengo-dl trick; the
  neglected term is ``< 3e-9`` relative) and ``sigma(z)/p`` as ``1/gamma``, so neither ``p``
  underflowing to 0 nor ``z -> -inf`` produces ``inf``/``NaN``;
* the rate is computed as ``a * q`` with ``q = 1/(tau_ref + tau_RC L)``; ``L = inf`` gives
  ``r = 0`` and a zero derivative.

Both rate functions carry a ``jax.custom_jvp`` with the analytic derivative with respect to the
input *and* to ``gamma``, ``tau_RC``, ``tau_ref`` and ``a`` (so parameters may be learned).  The
hard LIF rate has an infinite derivative at threshold (``dr/dy ~ 1/(y ln^2 y)``); it is exact
for normal ``y > 0`` and set to 0 for ``y`` below the smallest normal number.  ``gamma -> 0``
recovers the LIF rate.

Spiking LIF mapping
-------------------
The rate ``r(j)`` is the firing rate of a LIF neuron ``tau_RC dv/dt = -v + j``, threshold 1,
reset to 0, refractory ``tau_ref``.  In spikejax that neuron is
``LIF(input_mode="current", reset="zero")`` with ``tau_mem = tau_RC``, ``v_th = 1``,
``v_reset = v_leak = 0``, ``t_ref = tau_ref`` (:meth:`LIFRate.lif_params`).  spikejax integrates
the membrane exactly but detects the threshold crossing on the time grid and clamps for
``round(tau_ref/dt)`` whole steps, so with ``tau_ref`` a multiple of ``dt`` the simulated
steady-state period is exactly ``dt * (tau_ref/dt + ceil(t_free/dt))`` with
``t_free = tau_RC ln(1 + 1/(j - 1))`` (:func:`lif_rate_discrete`): the period is too long by
``[0, dt)``, i.e. ``1/r <= 1/r_sim < 1/r + dt``, a relative rate error below ``r dt``
(``O(dt)``; about ``r dt / 2`` on average).

Conversion
----------
:func:`convert` turns a dense network ``x -> [Dense -> rate activation] * (L-1) -> Dense``
(spikejax ``nn.Dense`` layers, or flax ``nn.Dense`` parameters via :func:`layers_from_flax`)
into a spiking network: every hidden unit becomes the LIF neuron above, its spikes (impulses of
area ``a``, i.e. ``a z / dt``) are filtered by the connection's synapse (``none``, ``lowpass``
exponential, ``alpha``; all with unit DC gain) and weighted by the same ``Dense`` weights.  The
input is injected as a constant current (``input_mode="current"``) or rate coded
(``input_mode="rate"``: Bernoulli spikes at ``x * max_rate``, decoded as spikes/(max_rate dt)).
Each sample is presented for ``presentation_time`` seconds; the readout is the filtered output
layer ``W^T (a z_filtered) + b`` averaged over the presentation after ``settle_time``.  Dropout
masks (permanent dropout, :mod:`spikejax.uncertainty`) silence the dropped neurons for the
whole presentation and scale the survivors by ``1/(1 - p)``, exactly as in the rate network.

The network runs step-major through :func:`spikejax.simulate` (one ``lax.scan`` over time, all
layers per step) so that memory does not grow with the presentation time.

References: E. Hunsberger, C. Eliasmith, "Spiking deep networks with LIF neurons",
arXiv:1510.08829 (2015); nengo-extras ``SoftLIFRate``; papers.md section 4.1.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_choice, check_positive, is_concrete
from .neurons import LIF, LIFParams
from .nn import Dense
from .simulate import simulate
from .surrogate import heaviside

__all__ = [
    "lif_rate",
    "softlif_rate",
    "lif_rate_discrete",
    "LIFRate",
    "SoftLIF",
    "softlif",
    "mlp_apply",
    "Synapse",
    "SYNAPSE_KINDS",
    "SpikingConfig",
    "ConvertedMLP",
    "RateNet",
    "SpikingNet",
    "convert",
    "run_converted",
    "layers_from_flax",
    "SoftLIFMLP",
    "convert_flax",
    "measure_lif_rates",
]

Array = jax.Array

_Z_LO = -20.0  # below: ln(1 + 1/p) = -ln(gamma) - z   (nengo-dl)
_Z_HI = 34.0  # at and above: softplus(z) = z          (nengo-extras)


# ---------------------------------------------------------------------------------------------
# Rate functions with analytic derivatives


def _softlif_parts(y, sigma):
    """``(L, p, S, Ps)`` with ``L = ln(1+1/p)``, ``p = rho_sigma(y)``, ``S = sigmoid(z)/p`` and
    ``Ps = (dp/dsigma)/p``; every entry finite for finite inputs (``L`` may be ``inf``)."""
    z = y / sigma
    lo = z < _Z_LO
    hi = z >= _Z_HI
    zc = jnp.clip(z, _Z_LO, _Z_HI)  # the middle-branch formulas only ever see a safe z
    ez = jnp.exp(zc)  # zc in [-20, 34]: no overflow, so softplus = log1p(exp) is safe here
    sp = jnp.log1p(ez)  # softplus(zc) >= 2e-9
    sg = ez / (1.0 + ez)
    p_mid = sigma * sp
    # low branch: p = sigma e^z (may underflow to 0; it is only used in 1 + p)
    p = jnp.where(hi, y, jnp.where(lo, sigma * jnp.exp(jnp.minimum(z, _Z_LO)), p_mid))
    y_hi = jnp.where(hi, y, jnp.ones_like(y))
    L = jnp.where(lo, -jnp.log(sigma) - z, jnp.log1p(1.0 / jnp.where(hi, y_hi, p_mid)))
    S = jnp.where(hi, 1.0 / y_hi, jnp.where(lo, 1.0 / sigma, sg / p_mid))
    # (dp/dsigma)/p = (softplus(z) - z sigmoid(z)) / (sigma softplus(z)); the numerator equals
    # log1p(e) + |z| e/(1 + e) with e = exp(-|z|) for either sign of z (no cancellation);
    # -> (1 - z)/sigma for z -> -inf
    e = jnp.exp(-jnp.abs(zc))
    num = jnp.log1p(e) + jnp.abs(zc) * e / (1.0 + e)
    zl = jnp.maximum(z, -1e15 * jnp.ones_like(z))  # keeps (1 - z) finite; q^2 kills it anyway
    Ps = jnp.where(hi, jnp.zeros_like(z), jnp.where(lo, (1.0 - zl) / sigma, num / (sigma * sp)))
    return L, p, S, Ps


@jax.custom_jvp
def _softlif_y(y, sigma, tau_rc, tau_ref, amp):
    L, _, _, _ = _softlif_parts(y, sigma)
    return amp / (tau_ref + tau_rc * L)


@_softlif_y.defjvp
def _softlif_y_jvp(primals, tangents):
    y, sigma, tau_rc, tau_ref, amp = primals
    dy, dsigma, dtau_rc, dtau_ref, damp = tangents
    L, p, S, Ps = _softlif_parts(y, sigma)
    q = 1.0 / (tau_ref + tau_rc * L)
    r = amp * q
    aq2 = amp * q * q
    Lf = jnp.where(jnp.isfinite(L), L, jnp.zeros_like(L))  # q = 0 there, so the term is 0
    d_y = aq2 * tau_rc * S / (1.0 + p)
    d_sigma = aq2 * tau_rc * Ps / (1.0 + p)
    d_tau_rc = -aq2 * Lf
    d_tau_ref = -aq2
    d_amp = q
    out_t = d_y * dy + d_sigma * dsigma + d_tau_rc * dtau_rc + d_tau_ref * dtau_ref + d_amp * damp
    return r, out_t


def _lif_parts(y):
    pos = y > 0
    tiny = jnp.finfo(y.dtype).tiny
    ok = y > tiny
    ys = jnp.where(ok, y, jnp.ones_like(y))
    L = jnp.where(pos, jnp.log1p(1.0 / jnp.where(pos, y, jnp.ones_like(y))), jnp.full_like(y, jnp.inf))
    inv = jnp.where(ok, (1.0 / ys) / (1.0 + ys), jnp.zeros_like(y))  # 1/(y(1+y)) = -dL/dy
    return L, inv


@jax.custom_jvp
def _lif_y(y, tau_rc, tau_ref, amp):
    L, _ = _lif_parts(y)
    return amp / (tau_ref + tau_rc * L)


@_lif_y.defjvp
def _lif_y_jvp(primals, tangents):
    y, tau_rc, tau_ref, amp = primals
    dy, dtau_rc, dtau_ref, damp = tangents
    L, inv = _lif_parts(y)
    q = 1.0 / (tau_ref + tau_rc * L)
    r = amp * q
    aq2 = amp * q * q
    Lf = jnp.where(jnp.isfinite(L), L, jnp.zeros_like(L))
    out_t = aq2 * tau_rc * inv * dy - aq2 * Lf * dtau_rc - aq2 * dtau_ref + q * damp
    return r, out_t


def _float(x):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def _check_rate_params(tau_rc, tau_ref, amplitude, sigma=None):
    check_positive("tau_rc", tau_rc)
    check_positive("tau_ref", tau_ref, allow_zero=True)
    check_positive("amplitude", amplitude)
    if sigma is not None:
        check_positive("sigma", sigma)


def lif_rate(j, tau_rc=0.02, tau_ref=0.002, amplitude=1.0):
    """LIF steady-state rate ``a / (tau_ref + tau_rc ln(1 + 1/(j - 1)))`` for ``j > 1``, else 0.

    ``j``: input current normalised to threshold 1; ``tau_rc``, ``tau_ref`` [s]; ``amplitude``
    ``a`` (1 gives Hz).  Differentiable (analytic custom JVP).
    """
    _check_rate_params(tau_rc, tau_ref, amplitude)
    j = _float(j)
    return _lif_rate_y(j - 1.0, tau_rc, tau_ref, amplitude)


def _lif_rate_y(y, tau_rc, tau_ref, amplitude):
    dt = y.dtype
    return _lif_y(y, jnp.asarray(tau_rc, dt), jnp.asarray(tau_ref, dt), jnp.asarray(amplitude, dt))


def softlif_rate(j, sigma=0.02, tau_rc=0.02, tau_ref=0.002, amplitude=1.0):
    """SoftLIF rate: :func:`lif_rate` with ``max(j - 1, 0)`` replaced by
    ``sigma * softplus((j - 1)/sigma)`` (``sigma`` is the nengo parameter, the seed's gamma)."""
    _check_rate_params(tau_rc, tau_ref, amplitude, sigma)
    j = _float(j)
    return _softlif_rate_y(j - 1.0, sigma, tau_rc, tau_ref, amplitude)


def _softlif_rate_y(y, sigma, tau_rc, tau_ref, amplitude):
    dt = y.dtype
    c = lambda v: jnp.asarray(v, dt)  # noqa: E731
    return _softlif_y(y, c(sigma), c(tau_rc), c(tau_ref), c(amplitude))


def lif_rate_discrete(j, dt, tau_rc=0.02, tau_ref=0.002):
    """Exact steady-state firing rate [Hz] of the spikejax ``LIF`` of :meth:`LIFRate.lif_params`
    simulated with step ``dt`` under constant drive ``j`` (numpy, float64).

    Period ``dt * (round(tau_ref/dt) + ceil(t_free/dt))``, ``t_free = tau_rc ln(1 + 1/(j-1))``.
    """
    j = np.asarray(j, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_free = tau_rc * np.log1p(1.0 / (j - 1.0))
        n = np.ceil(t_free / dt - 1e-9)
        period = dt * (round(tau_ref / dt) + n)
        return np.where(j > 1.0, 1.0 / period, 0.0)


# ---------------------------------------------------------------------------------------------
# Activations


@dataclasses.dataclass(frozen=True)
class LIFRate:
    """Hard LIF rate activation ``x -> amplitude * r(gain * x + bias)`` (threshold at
    ``gain * x + bias = 1``).  Frozen and hashable: use it as an activation anywhere (a flax
    module attribute, ``jax.jit`` static argument)."""

    tau_rc: float = 0.02
    tau_ref: float = 0.002
    amplitude: float = 0.01
    gain: float = 1.0
    bias: float = 1.0

    def __post_init__(self):
        _check_rate_params(self.tau_rc, self.tau_ref, self.amplitude)
        check_positive("gain", self.gain)

    def current(self, x):
        """Normalised current ``j = gain * x + bias`` (threshold 1)."""
        x = _float(x)
        return self.gain * x + self.bias

    def _y(self, x):
        x = _float(x)
        return self.gain * x + (self.bias - 1.0)  # exact for bias = 1

    def __call__(self, x):
        return _lif_rate_y(self._y(x), self.tau_rc, self.tau_ref, self.amplitude)

    @property
    def max_rate(self) -> float:
        """Upper bound of the rate in Hz, ``1/tau_ref``."""
        return math.inf if self.tau_ref == 0 else 1.0 / self.tau_ref

    def lif_params(self, dtype=jnp.float32) -> LIFParams:
        """spikejax LIF parameters of the neuron whose rate this is (see module docstring)."""
        return LIF.params(tau_mem=self.tau_rc, v_th=1.0, v_reset=0.0, v_leak=0.0, t_ref=self.tau_ref, dtype=dtype)

    def lif(self) -> LIF:
        return LIF(spike_fn=heaviside, reset="zero", input_mode="current")

    def hard(self) -> "LIFRate":
        return LIFRate(self.tau_rc, self.tau_ref, self.amplitude, self.gain, self.bias)


@dataclasses.dataclass(frozen=True)
class SoftLIF(LIFRate):
    """SoftLIF activation ``x -> amplitude * r_soft(gain * x + bias)`` with smoothing ``sigma``
    (papers.md 4.1; nengo's default is sigma = 1, Hunsberger's test call uses 0.002, n3ml 0.02).

    Use as ``SoftLIF(sigma=0.02)(h)`` or as ``activation=SoftLIF(...)`` in a flax module.
    ``.hard()`` is the LIF rate the converted spiking network approximates (``sigma -> 0``)."""

    sigma: float = 0.02

    def __post_init__(self):
        super().__post_init__()
        check_positive("sigma", self.sigma)

    def __call__(self, x):
        return _softlif_rate_y(self._y(x), self.sigma, self.tau_rc, self.tau_ref, self.amplitude)


def softlif(x, sigma=0.02, tau_rc=0.02, tau_ref=0.002, amplitude=0.01, gain=1.0, bias=1.0):
    """Plain-function SoftLIF activation (same as ``SoftLIF(...)(x)``)."""
    return SoftLIF(tau_rc=tau_rc, tau_ref=tau_ref, amplitude=amplitude, gain=gain, bias=bias, sigma=sigma)(x)


def _check_activation(activation, where="convert"):
    if not isinstance(activation, LIFRate):
        name = activation if isinstance(activation, str) else getattr(activation, "__name__", None) or repr(activation)
        raise ValueError(
            f"{where}: unsupported activation '{name}'; only SoftLIF / LIFRate activations map onto LIF "
            "neurons (train the network with spikejax.softlif.SoftLIF)"
        )


# ---------------------------------------------------------------------------------------------
# Rate network (the DNN), with optional dropout masks


def _broadcast_mask(m, h):
    m = jnp.asarray(m, h.dtype)
    if m.ndim > h.ndim:
        raise ValueError(f"dropout mask of shape {m.shape} has more dims than the activations {h.shape}")
    return jnp.broadcast_to(m.reshape((1,) * (h.ndim - m.ndim) + m.shape), h.shape)


def _check_masks(masks, layers):
    n_hidden = len(layers) - 1
    if masks is None:
        return None
    masks = tuple(masks)
    if len(masks) != n_hidden:
        raise ValueError(f"masks: expected one mask per hidden layer ({n_hidden}), got {len(masks)}")
    for i, (m, layer) in enumerate(zip(masks, layers[:-1])):
        if jnp.shape(m)[-1] != jnp.shape(layer.w)[1]:
            raise ValueError(f"masks[{i}]: last dim {jnp.shape(m)[-1]} != hidden width {jnp.shape(layer.w)[1]}")
    return masks


def _check_layers(layers, n_in=None):
    layers = tuple(layers)
    if not layers:
        raise ValueError("the network has no layers")
    n = n_in
    for i, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            layer = Dense(*layer)
        if jnp.ndim(layer.w) != 2 or jnp.shape(layer.b) != (jnp.shape(layer.w)[1],):
            raise ValueError(f"layer {i}: expected w [n_in, n_out] and b [n_out], got {jnp.shape(layer.w)}, {jnp.shape(layer.b)}")
        if n is not None and jnp.shape(layer.w)[0] != n:
            raise ValueError(f"layer {i}: weight expects {jnp.shape(layer.w)[0]} inputs, got {n}")
        n = jnp.shape(layer.w)[1]
    return tuple(Dense(*layer) for layer in layers)


def mlp_apply(layers: Sequence[Dense], x, activation: Callable, masks=None):
    """Rate network ``x -> [Dense -> activation -> * mask] * (L-1) -> Dense`` on ``x [..., n_in]``.

    ``masks``: ``None`` or one array per hidden layer, broadcastable to that layer's activations
    (``[n]`` shares the mask over the batch, ``[..., n]`` gives each row its own), holding the
    *scaled* dropout mask ``{0, 1/(1-p)}`` of :func:`spikejax.uncertainty.dropout_mask`.
    """
    layers = _check_layers(layers, jnp.shape(x)[-1])
    masks = _check_masks(masks, layers)
    h = jnp.asarray(x)
    for i, layer in enumerate(layers):
        h = _dense(h, layer)
        if i < len(layers) - 1:
            h = activation(h)
            if masks is not None:
                h = h * _broadcast_mask(masks[i], h)
    return h


def _dense(h, layer):
    out = h @ layer.w
    return out + jnp.reshape(layer.b, (1,) * (out.ndim - 1) + (-1,))


# ---------------------------------------------------------------------------------------------
# Synapses

SYNAPSE_KINDS = ("none", "lowpass", "alpha")


@dataclasses.dataclass(frozen=True)
class Synapse:
    """Synaptic filter of one connection, unit DC gain, exact for inputs held over a step.

    ``none``: ``y_n = x_n``; ``lowpass``: ``y_n = d y_{n-1} + (1 - d) x_n``, ``d = exp(-dt/tau)``
    (impulse response ``exp(-t/tau)/tau``); ``alpha``: two such lowpass stages in series
    (impulse response ``t exp(-t/tau)/tau^2``).  ``tau`` in seconds.
    """

    kind: str = "none"
    tau: float = 0.0

    def __post_init__(self):
        check_choice("synapse kind", self.kind, set(SYNAPSE_KINDS))
        if self.kind == "none":
            if self.tau != 0:
                raise ValueError(f"synapse 'none' takes no time constant, got tau={self.tau!r}")
        else:
            check_positive(f"tau of the {self.kind} synapse", self.tau)

    @property
    def n_stages(self) -> int:
        return {"none": 0, "lowpass": 1, "alpha": 2}[self.kind]

    def init(self, shape, dtype):
        return tuple(jnp.zeros(shape, dtype) for _ in range(self.n_stages))

    def step(self, state, x, dt):
        if self.n_stages == 0:
            return state, x
        d = jnp.exp(jnp.asarray(-dt / self.tau, x.dtype))
        new = []
        y = x
        for s in state:
            y = d * s + (1.0 - d) * y
            new.append(y)
        return tuple(new), y


def _as_synapse(s) -> Synapse:
    if isinstance(s, Synapse):
        return s
    if s is None or s == "none":
        return Synapse("none")
    if isinstance(s, (tuple, list)) and len(s) == 2:
        return Synapse(str(s[0]), float(s[1]))
    raise ValueError(f"synapse must be a Synapse, None/'none', or a (kind, tau) pair, got {s!r}")


# ---------------------------------------------------------------------------------------------
# Converted spiking network


@dataclasses.dataclass(frozen=True)
class SpikingConfig:
    """Static description of a converted network (hashable; a ``jit`` static argument).

    ``activation``: the :class:`LIFRate`/:class:`SoftLIF` the network was trained with (its LIF
    parameters define the neurons); ``synapses``: one :class:`Synapse` per connection (the first
    is input -> hidden 1, the last is hidden L-1 -> output); ``dt`` [s]; ``input_mode``
    ``"current"`` or ``"rate"``; ``max_rate`` [Hz] of an input equal to 1 in rate mode.
    """

    activation: LIFRate
    synapses: tuple
    dt: float = 1e-4
    input_mode: str = "current"
    max_rate: float = 1000.0

    def __post_init__(self):
        _check_activation(self.activation)
        check_choice("input_mode", self.input_mode, {"current", "rate"})
        check_positive("dt", self.dt)
        check_positive("max_rate", self.max_rate)
        if self.input_mode == "rate" and self.max_rate * self.dt > 1.0:
            raise ValueError(f"max_rate * dt = {self.max_rate * self.dt} must be <= 1 (one spike per step at most)")
        steps = self.activation.tau_ref / self.dt
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ValueError(
                f"tau_ref ({self.activation.tau_ref}) must be a whole number of steps dt ({self.dt}): the spikejax LIF "
                "clamps round(tau_ref/dt) steps"
            )
        object.__setattr__(self, "synapses", tuple(_as_synapse(s) for s in self.synapses))

    def steps(self, duration) -> int:
        n = int(round(float(duration) / self.dt))
        if n < 1:
            raise ValueError(f"duration {duration} s is shorter than one step dt = {self.dt} s")
        return n


class _NetState(NamedTuple):
    syn: tuple
    lif: tuple
    acc: Array


def _net_step(cfg: SpikingConfig, n_settle: int, params, state: _NetState, t, *, dt, key=None):
    layers, x, drive0, masks = params
    act = cfg.activation
    lif = act.lif()
    lp = act.lif_params(x.dtype)
    amp = jnp.asarray(act.amplitude / dt, x.dtype)
    syn_states, lif_states = list(state.syn), list(state.lif)
    h = None
    for i, layer in enumerate(layers):
        if i == 0:
            if cfg.input_mode == "current":
                cur = drive0  # x @ W1, constant over the presentation: computed once
            else:
                p = x * jnp.asarray(cfg.max_rate * dt, x.dtype)
                s = (jax.random.uniform(key, x.shape, x.dtype) < p).astype(x.dtype)
                cur = (s * jnp.asarray(1.0 / (cfg.max_rate * dt), x.dtype)) @ layer.w
        else:
            cur = h @ layer.w
        syn_states[i], cur = cfg.synapses[i].step(syn_states[i], cur, dt)
        pre = cur + jnp.reshape(layer.b, (1,) * (cur.ndim - 1) + (-1,))
        if i < len(layers) - 1:
            j = act.gain * pre + act.bias
            lif_states[i], z = lif.step(lp, lif_states[i], j, dt=dt)
            h = z * amp
            if masks is not None:
                h = h * _broadcast_mask(masks[i], h)
        else:
            y = pre
    on = (t >= n_settle).astype(y.dtype)
    return _NetState(tuple(syn_states), tuple(lif_states), state.acc + on * y), y


@partial(jax.jit, static_argnames=("cfg", "n_steps", "n_settle", "record"))
def _run(cfg, layers, x, masks, key, *, n_steps, n_settle, record):
    dtype = x.dtype
    drive0 = x @ layers[0].w if cfg.input_mode == "current" else None
    batch = x.shape[:-1]
    act = cfg.activation
    lif = act.lif()
    lp = act.lif_params(dtype)
    syn0 = tuple(s.init(batch + (layer.w.shape[1],), dtype) for s, layer in zip(cfg.synapses, layers))
    lif0 = tuple(lif.init(lp, batch + (layer.w.shape[1],), dtype) for layer in layers[:-1])
    state0 = _NetState(syn0, lif0, jnp.zeros(batch + (layers[-1].w.shape[1],), dtype))
    step = partial(_net_step, cfg, n_settle)
    final, trace = simulate(
        step, (layers, x, drive0, masks), state0, jnp.arange(n_steps, dtype=jnp.int32), dt=cfg.dt, key=key,
        record="out" if record else None,
    )
    mean = final.acc / jnp.asarray(n_steps - n_settle, dtype)
    return mean, trace


def run_converted(
    cfg: SpikingConfig,
    layers: Sequence[Dense],
    x,
    presentation_time: float,
    *,
    masks=None,
    key=None,
    settle_time: float = 0.0,
    record: bool = False,
):
    """Present ``x [..., n_in]`` (each row its own network copy) for ``presentation_time`` s.

    Returns the readout ``[..., n_out]``: the filtered output averaged over
    ``[settle_time, presentation_time)``; with ``record=True`` returns ``(readout, trace)`` with
    the output at every step ``[T, ..., n_out]``.  ``masks``: scaled dropout masks as in
    :func:`mlp_apply` (dropped neurons are silent the whole presentation).  ``key`` is needed
    for ``input_mode="rate"``.  Composes with ``jax.vmap`` (e.g. over dropout masks).
    """
    layers = _check_layers(layers, jnp.shape(x)[-1])
    if len(cfg.synapses) != len(layers):
        raise ValueError(f"config has {len(cfg.synapses)} synapses but the network has {len(layers)} connections")
    masks = _check_masks(masks, layers)
    x = _float(x)
    if x.ndim == 0:
        raise ValueError("x must have a feature axis [..., n_in]")
    x = x.astype(jnp.asarray(layers[0].w).dtype) if jnp.issubdtype(jnp.asarray(layers[0].w).dtype, jnp.floating) else x
    if cfg.input_mode == "rate":
        if key is None:
            raise ValueError("input_mode='rate' needs a PRNG key")
        if is_concrete(x) and (float(jnp.min(x)) < 0 or float(jnp.max(x)) > 1):
            raise ValueError("input_mode='rate' needs inputs in [0, 1]; use input_mode='current' for other inputs")
    n_steps = cfg.steps(presentation_time)
    n_settle = int(round(float(settle_time) / cfg.dt))
    if not 0 <= n_settle < n_steps:
        raise ValueError(f"settle_time {settle_time} must lie in [0, presentation_time={presentation_time})")
    mean, trace = _run(cfg, layers, x, masks, key, n_steps=n_steps, n_settle=n_settle, record=bool(record))
    return (mean, trace) if record else mean


@dataclasses.dataclass(frozen=True)
class ConvertedMLP:
    """A converted network: static :class:`SpikingConfig` plus the transferred ``layers``."""

    config: SpikingConfig
    layers: tuple

    def __call__(self, x, presentation_time, **kw):
        return run_converted(self.config, self.layers, x, presentation_time, **kw)

    run = __call__

    def rate_model(self, x, masks=None):
        """The rate network the spiking one approximates (the hard LIF rate, ``sigma -> 0``)."""
        return mlp_apply(self.layers, x, self.config.activation.hard(), masks)

    def apply_fn(self, presentation_time: float, settle_time: float = 0.0, seed: int = 0) -> "SpikingNet":
        """``apply_fn(layers, x, masks)`` for permanent-dropout sampling of this network."""
        return SpikingNet(self.config, float(presentation_time), float(settle_time), int(seed))

    def scaled(self, factor: float) -> "ConvertedMLP":
        """A deliberately wrong conversion: every weight matrix multiplied by ``factor``."""
        return ConvertedMLP(self.config, tuple(Dense(layer.w * factor, layer.b) for layer in self.layers))


@dataclasses.dataclass(frozen=True)
class RateNet:
    """Hashable ``apply_fn(layers, x, masks)`` of the rate network (for
    :func:`spikejax.uncertainty.permanent_dropout_samples`)."""

    activation: Callable

    def __call__(self, layers, x, masks=None):
        return mlp_apply(layers, x, self.activation, masks)


@dataclasses.dataclass(frozen=True)
class SpikingNet:
    """Hashable ``apply_fn(layers, x, masks)`` of a converted network presented for
    ``presentation_time`` s (rate-coded inputs use the fixed ``seed`` for every sample)."""

    config: SpikingConfig
    presentation_time: float
    settle_time: float = 0.0
    seed: int = 0

    def __call__(self, layers, x, masks=None):
        key = jax.random.PRNGKey(self.seed) if self.config.input_mode == "rate" else None
        return run_converted(
            self.config, layers, x, self.presentation_time, masks=masks, key=key, settle_time=self.settle_time
        )


def convert(
    layers: Sequence[Dense],
    activation,
    *,
    synapse: Any = None,
    dt: float = 1e-4,
    input_mode: str = "current",
    max_rate: float = 1000.0,
) -> ConvertedMLP:
    """Convert a rate-trained dense network into a spiking LIF network.

    Args:
      layers: ``Dense(w [n_in, n_out], b)`` layers; hidden layers use ``activation``, the last
        is linear (the readout).
      activation: the :class:`SoftLIF` / :class:`LIFRate` the network was trained with; any other
        activation raises ``ValueError``.
      synapse: one synapse for every connection or a sequence with one per connection; each a
        :class:`Synapse`, ``None``/``"none"`` or ``(kind, tau)`` e.g. ``("alpha", 0.005)``.
      dt: time step [s]; ``activation.tau_ref`` must be a whole number of steps.
      input_mode: ``"current"`` (inputs injected as constant currents) or ``"rate"``.
      max_rate: rate [Hz] of an input equal to 1 in ``"rate"`` mode.
    """
    _check_activation(activation)
    layers = _check_layers(layers)
    if isinstance(synapse, (list, tuple)) and not (len(synapse) == 2 and isinstance(synapse[0], str)):
        syns = tuple(_as_synapse(s) for s in synapse)
        if len(syns) != len(layers):
            raise ValueError(f"synapse: got {len(syns)} synapses for {len(layers)} connections")
    else:
        syns = (_as_synapse(synapse),) * len(layers)
    cfg = SpikingConfig(activation, syns, dt=dt, input_mode=input_mode, max_rate=max_rate)
    return ConvertedMLP(cfg, layers)


def measure_lif_rates(j, activation: LIFRate, *, dt: float, duration: float):
    """Firing rates [Hz] of spikejax LIF neurons (:meth:`LIFRate.lif_params`) under constant drive
    ``j``, measured from the first to the last spike (period-based; 0 if fewer than two spikes)."""
    j = _float(j)
    lif, p = activation.lif(), activation.lif_params(j.dtype)
    n = int(round(duration / dt))
    _, z = simulate(lif.step, p, lif.init(p, j.shape, j.dtype), jnp.broadcast_to(j[None], (n,) + j.shape), dt=dt)
    z = np.asarray(z).reshape(n, -1)
    out = np.zeros(z.shape[1])
    for i in range(z.shape[1]):
        idx = np.flatnonzero(z[:, i])
        if len(idx) >= 2:
            out[i] = (len(idx) - 1) / ((idx[-1] - idx[0]) * dt)
    return out.reshape(j.shape)


# ---------------------------------------------------------------------------------------------
# flax interoperability


def layers_from_flax(params) -> tuple:
    """``Dense`` layers from flax ``nn.Dense`` parameters ``{'Dense_0': {'kernel', 'bias'}, ...}``
    (also accepts the full variables dict ``{'params': ...}``), in layer order."""
    if "params" in params:
        params = params["params"]
    names = [k for k in params if isinstance(params[k], dict) and "kernel" in params[k]]
    if not names:
        raise ValueError(f"no Dense layers (entries with a 'kernel') in the parameters: {sorted(params)}")

    def order(k):
        tail = k.rsplit("_", 1)[-1]
        return (0, int(tail)) if tail.isdigit() else (1, k)

    out = []
    for k in sorted(names, key=order):
        d = params[k]
        if "bias" not in d:
            raise ValueError(f"layer {k} has no bias; conversion needs Dense layers with biases")
        out.append(Dense(jnp.asarray(d["kernel"]), jnp.asarray(d["bias"])))
    return tuple(out)


def _flax_mlp():
    import flax.linen as nn

    class SoftLIFMLP(nn.Module):
        """flax MLP ``features[0] -> ... -> features[-1]`` with a rate activation and dropout.

        ``deterministic=False`` with ``rngs={'dropout': key}`` draws dropout masks (a fresh mask
        per row, as Keras does); vmap ``apply`` over keys for permanent-dropout samples.
        """

        features: Sequence[int]
        activation: Callable = SoftLIF()
        dropout_rate: float = 0.0

        @nn.compact
        def __call__(self, x, *, deterministic: bool = True):
            for i, f in enumerate(self.features):
                x = nn.Dense(f, name=f"Dense_{i}")(x)
                if i < len(self.features) - 1:
                    x = self.activation(x)
                    if self.dropout_rate > 0:
                        x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
            return x

    return SoftLIFMLP


SoftLIFMLP = _flax_mlp()


def convert_flax(module, variables, **kwargs) -> ConvertedMLP:
    """:func:`convert` for a flax module with an ``activation`` attribute (e.g. :class:`SoftLIFMLP`)."""
    act = getattr(module, "activation", None)
    if act is None:
        raise ValueError(f"{type(module).__name__} has no 'activation' attribute; use convert(layers, activation)")
    _check_activation(act, where=f"convert_flax({type(module).__name__})")
    return convert(layers_from_flax(variables), act, **kwargs)
