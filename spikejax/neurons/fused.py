"""A whole LIF population run over time as one differentiable primitive, with a lean backward pass.

:func:`lif_sequence` gives exactly what ``simulate(LIF(...).step, params, LIF.init(params, shape),
currents, dt=dt)`` gives for a LIF neuron **without refractory period** started from rest, but its
gradient is a hand-derived adjoint (``jax.custom_vjp``) instead of the transpose of the scan:

* forward: one ``lax.scan`` whose only saved output is the pre-reset membrane ``P[t]``
  (one ``[T, ...]`` array; autodiff of the generic step keeps three float arrays and a mask);
* backward: one reverse ``lax.scan`` for the adjoint ``G[t] = dL/dP[t]``::

      G[t] = dz[t] * S'(P[t] - v_th) + R'(P[t]) * a * G[t+1],   G[T] = 0

  with ``R(P) = P - z (v_th - v_reset)`` (reset by subtraction) or ``P - z (P - v_reset)`` (reset
  to a value), ``z = S(P - v_th)`` the spike function with its surrogate derivative ``S'``, and
  ``a = exp(-dt / tau_mem)``.  ``R'`` and ``S'`` are taken from ``jax.vjp`` of the same functions the
  forward pass uses, so every surrogate and ``detach_reset`` behave as in :class:`LIF`.
* gradients for the input currents and the neuron parameters are then one vectorised VJP of the
  single-step map ``P[t] = F(R(P[t-1]), C[t]; theta)`` with ``P`` held fixed (the adjoint method:
  ``dL/dtheta = sum_t G[t] dF/dtheta + dz[t] dS/dtheta``), so trainable time constants and
  thresholds (scalars or per-neuron arrays) get exact gradients as well.

:class:`spikejax.nn.SpikingMLP` uses it automatically for plain :class:`LIF` layers whose ``t_ref``
is known to be zero when the network is traced; it is tested against the generic path (forward
spikes bit-identical, gradients equal to rounding) in ``tests/test_fused.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import is_concrete
from .lif import LIF, LIFParams, _as

__all__ = ["lif_sequence", "fused_supported"]


def fused_supported(neuron, params) -> bool:
    """True when :func:`lif_sequence` reproduces ``simulate(neuron.step, ...)`` for these parameters:
    ``neuron`` is a plain :class:`LIF` and ``t_ref`` is concretely zero (not a tracer)."""
    if type(neuron) is not LIF or not isinstance(params, LIFParams):
        return False
    t_ref = params.t_ref
    if not is_concrete(t_ref):
        return False
    return bool(np.all(np.asarray(t_ref) == 0))


def lif_sequence(neuron: LIF, params: LIFParams, currents, *, dt: float):
    """Spike trains ``[T, ...]`` of a LIF population driven by ``currents [T, ...]`` from rest.

    Equal to ``simulate(neuron.step, params, neuron.init(params, currents.shape[1:]), currents,
    dt=dt)[1]`` for ``t_ref == 0``, with a cheaper gradient (see the module docstring).  Raises
    ``ValueError`` if ``t_ref`` is non-zero or unknown at trace time (use the generic path then).
    """
    if type(neuron) is not LIF:
        raise TypeError(f"lif_sequence: needs a plain spikejax.neurons.LIF, got {type(neuron).__name__}")
    if not isinstance(params, LIFParams):
        raise TypeError(f"lif_sequence: params must be LIFParams, got {type(params).__name__}")
    if not fused_supported(neuron, params):
        raise ValueError(
            "lif_sequence: needs t_ref == 0 known when the function is traced (got "
            f"{'a traced value' if not is_concrete(params.t_ref) else params.t_ref}); use "
            "simulate(neuron.step, ...) for refractory neurons"
        )
    currents = jnp.asarray(currents)
    if currents.ndim < 1 or not jnp.issubdtype(currents.dtype, jnp.floating):
        raise ValueError(
            f"lif_sequence: currents must be a floating array [T, ...], got shape {currents.shape} dtype {currents.dtype}"
        )
    p = _as(currents.dtype, params)
    fn = _make(neuron.spike_fn, neuron.reset, neuron.input_mode, neuron.detach_reset, float(dt))
    return fn(p, currents)


def _make(spike_fn, reset, input_mode, detach_reset, dt):
    def leak(p):
        return jnp.exp(-dt / p.tau_mem)

    def advance(p, a, v, c):  # same arithmetic, in the same order, as LIF.step
        drive = (1 - a) * c if input_mode == "current" else c
        return p.v_leak + (v - p.v_leak) * a + drive

    def spikes(p, P):
        return spike_fn(P - p.v_th)

    def after_reset(p, P):  # membrane after the spike decision (t_ref = 0: no refractory masking)
        z = spikes(p, P)
        zr = lax.stop_gradient(z) if detach_reset else z
        if reset == "zero":
            return P - zr * (P - p.v_reset)
        return P - zr * (p.v_th - p.v_reset)

    def forward(p, C):
        a = leak(p)
        v0 = jnp.broadcast_to(p.v_leak, C.shape[1:]).astype(C.dtype)

        def body(v, c):
            P = advance(p, a, v, c)
            return after_reset(p, P), P

        _, P = lax.scan(body, v0, C)
        return P

    @jax.custom_vjp
    def run(p, C):
        return spikes(p, forward(p, C))

    def run_fwd(p, C):
        P = forward(p, C)
        return spikes(p, P), (p, P, C)

    def run_bwd(res, dz):
        p, P, C = res
        a = leak(p)

        def body(g_next, xs):
            P_t, dz_t = xs
            _, vjp_r = jax.vjp(lambda q: after_reset(p, q), P_t)
            _, vjp_s = jax.vjp(lambda q: spikes(p, q), P_t)
            g = vjp_s(dz_t)[0] + vjp_r(a * g_next)[0]
            return g, g

        _, G = lax.scan(body, jnp.zeros_like(P[0]), (P, dz), reverse=True)
        P = lax.stop_gradient(P)

        def local(q, Cq):
            # the single-step map with the previous pre-reset membrane held fixed, vectorised over time
            v0 = jnp.broadcast_to(q.v_leak, P.shape[1:]).astype(P.dtype)[None]
            q = type(q)(*(f[None] if jnp.ndim(f) else f for f in q))  # per-neuron params: add the time axis
            v_prev = jnp.concatenate([v0, after_reset(q, P[:-1])], axis=0)
            return advance(q, leak(q), v_prev, Cq), spikes(q, P)

        _, vjp_local = jax.vjp(local, p, C)
        dp, dC = vjp_local((G, dz))
        return dp, dC

    run.defvjp(run_fwd, run_bwd)
    return run
