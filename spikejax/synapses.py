"""Connections: dense and stochastic (blank-out) synapses.

A connection turns presynaptic spikes ``s`` (shape ``[n_pre]``) into postsynaptic input
(``[n_post]``) through weights ``w`` of shape ``[n_pre, n_post]`` (row = presynaptic neuron).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._checks import check_probability

__all__ = ["dense", "blankout_dense", "blankout_mask"]


def _check(w, s):
    if jnp.ndim(w) != 2:
        raise ValueError(f"weights must be 2-D [n_pre, n_post], got shape {jnp.shape(w)}")
    if jnp.shape(s)[-1] != jnp.shape(w)[0]:
        raise ValueError(f"presynaptic input has {jnp.shape(s)[-1]} neurons but weights expect {jnp.shape(w)[0]}")


def dense(w, s):
    """Deterministic synapses: ``s @ w``."""
    _check(w, s)
    return s @ w


def blankout_mask(key, shape, p, dtype=jnp.float32):
    """Bernoulli(p) transmission mask, one coin per synapse and event."""
    check_probability("p (transmission probability)", p)
    return jax.random.bernoulli(key, p, shape).astype(dtype)


def blankout_dense(key, w, s, p):
    """Stochastic synapses: each synaptic event is transmitted with probability ``p``.

    Every (presynaptic spike, synapse) pair draws its own coin, as in NSAT's blank-out
    synapses and Auryn's peRBP connection: ``x_j = sum_i s_i w_ij m_ij``, ``m_ij ~ Bernoulli(p)``.
    Returns ``(x, mask)`` so that learning rules can gate their updates with the same coins.
    """
    _check(w, s)
    mask = blankout_mask(key, jnp.shape(w), p, jnp.result_type(w))
    return s @ (w * mask), mask
