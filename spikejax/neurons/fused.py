"""A whole LIF population run over time as one differentiable primitive, with a lean backward pass.

:func:`lif_sequence` gives exactly what ``simulate(LIF(...).step, params, LIF.init(params, shape),
currents, dt=dt)`` gives for a LIF population started from rest, but its
gradient is a hand-derived adjoint (``jax.custom_vjp``) instead of the transpose of the scan:

* forward: one ``lax.scan`` whose only saved output is the pre-reset membrane ``P[t]``
  (one ``[T, ...]`` array; autodiff of the generic step keeps three float arrays and a mask) when
  ``t_ref`` is known to be zero;
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

:class:`spikejax.nn.SpikingMLP` uses it automatically for plain :class:`LIF` layers.  With a refractory
period (or a ``t_ref`` that is traced, so not known to be zero) the forward scan also carries the
refractory counter and saves a boolean mask ``M[t]``; a clamped neuron passes no gradient through
``P[t]`` (``G[t] = 0`` where ``M[t]``), exactly as ``LIF.step``'s masking does.  Tested against the
generic path (forward spikes bit-identical, gradients equal to rounding) in ``tests/test_fused.py``.
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
    """True when :func:`lif_sequence` can stand in for ``simulate(neuron.step, ...)``: ``neuron`` is a
    plain :class:`LIF` and ``params`` are :class:`LIFParams` (any ``t_ref``, concrete or traced)."""
    return type(neuron) is LIF and isinstance(params, LIFParams)


def _refractory_free(params) -> bool:
    """``t_ref`` is known at trace time to be zero everywhere: the forward scan needs no counter."""
    t_ref = params.t_ref
    return is_concrete(t_ref) and bool(np.all(np.asarray(t_ref) == 0))


def lif_sequence(neuron: LIF, params: LIFParams, currents, *, dt: float, bias=None):
    """Spike trains ``[T, ...]`` of a LIF population driven by ``currents [T, ...]`` from rest.

    Equal to ``simulate(neuron.step, params, neuron.init(params, currents.shape[1:]), currents + bias,
    dt=dt)[1]``, with a cheaper gradient (see the module docstring).  ``bias`` (optional, any shape
    that broadcasts to ``currents.shape[1:]``, e.g. a layer's ``[n]`` bias) is added inside the time
    loop, which saves a pass over ``[T, ...]`` in both directions.  When ``t_ref`` is known to be
    zero at trace time the forward scan carries the membrane only; otherwise it also carries the
    refractory counter and saves a boolean refractory mask for the backward pass.
    """
    if type(neuron) is not LIF:
        raise TypeError(f"lif_sequence: needs a plain spikejax.neurons.LIF, got {type(neuron).__name__}")
    if not isinstance(params, LIFParams):
        raise TypeError(f"lif_sequence: params must be LIFParams, got {type(params).__name__}")
    currents = jnp.asarray(currents)
    if currents.ndim < 1 or not jnp.issubdtype(currents.dtype, jnp.floating):
        raise ValueError(
            f"lif_sequence: currents must be a floating array [T, ...], got shape {currents.shape} dtype {currents.dtype}"
        )
    if bias is None:
        bias = jnp.zeros((1,) * (currents.ndim - 1), currents.dtype)
    else:
        bias = jnp.asarray(bias)
        if not jnp.issubdtype(bias.dtype, jnp.floating):
            raise ValueError(f"lif_sequence: bias must be a floating array, got dtype {bias.dtype}")
        try:
            ok = jnp.broadcast_shapes(bias.shape, currents.shape[1:]) == currents.shape[1:]
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"lif_sequence: bias of shape {bias.shape} does not broadcast to one step of the currents, "
                f"{currents.shape[1:]}"
            )
        # same rank as one step (strict rank promotion): a [n] bias of a [B, n] population -> [1, n]
        bias = jnp.reshape(bias.astype(currents.dtype), (1,) * (currents.ndim - 1 - bias.ndim) + bias.shape)
    refractory = not _refractory_free(params)
    p = _as(currents.dtype, params)
    fn = _make(neuron.spike_fn, neuron.reset, neuron.input_mode, neuron.detach_reset, float(dt), refractory)
    return fn(p, currents, bias)


def _sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (the transpose of broadcasting ``shape`` up to ``x.shape``)."""
    lead = x.ndim - len(shape)
    x = jnp.sum(x, axis=tuple(range(lead))) if lead else x
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    return jnp.sum(x, axis=axes, keepdims=True) if axes else x


def _make(spike_fn, reset, input_mode, detach_reset, dt, refractory):
    def leak(p):
        return jnp.exp(-dt / p.tau_mem)

    def advance(p, a, v, c):  # same arithmetic, in the same order, as LIF.step
        drive = (1 - a) * c if input_mode == "current" else c
        return p.v_leak + (v - p.v_leak) * a + drive

    def spikes(p, P):
        return spike_fn(P - p.v_th)

    def after_reset(p, P):  # membrane after the spike decision of a non-refractory neuron
        z = spikes(p, P)
        zr = lax.stop_gradient(z) if detach_reset else z
        if reset == "zero":
            return P - zr * (P - p.v_reset)
        return P - zr * (p.v_th - p.v_reset)

    def forward(p, C, b, emit="P"):
        """Pre-reset membranes ``P [T, ...]`` and the refractory mask (``None`` without refractoriness);
        with ``emit="z"`` (the primal call, no gradient wanted) the spike trains instead."""
        a = leak(p)
        v0 = jnp.broadcast_to(p.v_leak, C.shape[1:]).astype(C.dtype)
        if not refractory:

            def body(v, c):
                P = advance(p, a, v, c + b)
                return after_reset(p, P), (P if emit == "P" else spikes(p, P))

            _, P = lax.scan(body, v0, C)
            return P, None

        n_ref = jnp.round(p.t_ref / dt).astype(jnp.int32)

        def body_ref(carry, c):  # LIF.step with _fire_and_reset, written out
            v, ref = carry
            P = advance(p, a, v, c + b)
            masked = ref > 0
            v = jnp.where(masked, p.v_reset, P)
            z = jnp.where(masked, jnp.zeros((), v.dtype), spikes(p, v))
            v = jnp.where(masked, v, after_reset(p, v))
            ref = jnp.where(z > 0, n_ref, jnp.maximum(ref - 1, 0))
            return (v, ref), ((P, masked) if emit == "P" else z)

        _, out = lax.scan(body_ref, (v0, jnp.zeros(C.shape[1:], jnp.int32)), C)
        return out if emit == "P" else (out, None)

    def output(p, P, R):
        z = spikes(p, P)
        return z if R is None else jnp.where(R, jnp.zeros((), z.dtype), z)

    @jax.custom_vjp
    def run(p, C, b):
        return forward(p, C, b, emit="z")[0]

    def run_fwd(p, C, b):
        P, R = forward(p, C, b)
        return output(p, P, R), (p, P, R, C, b)

    def run_bwd(res, dz):
        p, P, R, C, b = res
        a = leak(p)
        # P[t] depends on the current C[t] only through the linear drive term: dP/dC is a constant
        _, vjp_drive = jax.vjp(lambda c: advance(p, a, jnp.zeros((), c.dtype), c), jnp.zeros(P.shape[1:], P.dtype))

        def body(g_next, xs):
            P_t, dz_t = xs[0], xs[1]
            _, vjp_r = jax.vjp(lambda q: after_reset(p, q), P_t)
            _, vjp_s = jax.vjp(lambda q: spikes(p, q), P_t)
            g = vjp_s(dz_t)[0] + vjp_r(a * g_next)[0]
            if R is not None:  # a refractory neuron's membrane is clamped: no path through P
                g = jnp.where(xs[2], jnp.zeros((), g.dtype), g)
            # both the adjoint (for the neuron parameters; XLA drops it when those need no gradient)
            # and the current gradient leave the loop, so no extra pass scales G afterwards
            return g, (g, vjp_drive(g)[0])

        xs = (P, dz) if R is None else (P, dz, R)
        _, (G, dC) = lax.scan(body, jnp.zeros_like(P[0]), xs, reverse=True)
        P = lax.stop_gradient(P)
        Cb = C + b[None]

        def local(q):
            # the single-step map with the previous pre-reset membrane held fixed, vectorised over time
            v0 = jnp.broadcast_to(q.v_leak, P.shape[1:]).astype(P.dtype)[None]
            q = type(q)(*(f[None] if jnp.ndim(f) else f for f in q))  # per-neuron params: add the time axis
            v_after = after_reset(q, P[:-1])
            if R is not None:
                v_after = jnp.where(R[:-1], q.v_reset, v_after)
            v_prev = jnp.concatenate([v0, v_after], axis=0)
            return advance(q, leak(q), v_prev, Cb), output(q, P, R)

        _, vjp_local = jax.vjp(local, p)
        (dp,) = vjp_local((G, dz))
        return dp, dC, _sum_to(dC, jnp.shape(b))

    run.defvjp(run_fwd, run_bwd)
    return run
