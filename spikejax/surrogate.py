"""Spike functions: exact Heaviside forward pass, pluggable surrogate backward pass.

Every surrogate here is a factory returning a callable ``spike(x) -> {0, 1}`` where ``x`` is the
distance to threshold (``v - v_th``).  The forward pass is exactly ``1[x >= 0]``; the backward
pass replaces the Dirac delta by a smooth or piecewise pseudo-derivative ``d(x)``.

The shape parameter (slope, width, sharpness) is passed to a ``jax.custom_vjp`` as an ordinary
array argument (with zero cotangent), so it may be a traced value: a vmapped hyperparameter
sweep over surrogate slopes compiles once.

All pseudo-derivatives are finite for every finite input, including ``|x| -> 1e30``.

=================  ==========================================================  ==============
name               pseudo-derivative ``d(x)``                                  reference
=================  ==========================================================  ==============
``boxcar``         ``1/(2w)`` for ``|x| < w`` else 0                           eRBP (Neftci 2017)
``fast_sigmoid``   ``1 / (1 + k|x|)^2``                                        SuperSpike (Zenke & Ganguli 2018)
``arctan``         ``(a/2) / (1 + (pi a x / 2)^2)``                            Fang et al. 2021
``triangle``       ``max(0, 1 - |x|/w) / w``                                   Esser et al. 2016
``sigmoid``        ``k s(kx)(1 - s(kx))``                                      logistic surrogate
``whetstone_sigmoid``  derivative of Whetstone's steep sigmoid at sharpness s  Severa et al. 2019
``whetstone_brelu``    derivative of Whetstone's bounded ReLU at sharpness s   Severa et al. 2019
=================  ==========================================================  ==============
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "SpikeFn",
    "heaviside",
    "make_surrogate",
    "boxcar",
    "fast_sigmoid",
    "superspike",
    "arctan",
    "triangle",
    "sigmoid",
    "whetstone_sigmoid",
    "whetstone_brelu",
    "WHETSTONE_LAMBDA",
    "whetstone_sigmoid_gain",
]

SpikeFn = Callable[[jax.Array], jax.Array]

#: Whetstone's width offset (lambda in papers.md section 3.1): width = 1 - sharpness + lambda.
WHETSTONE_LAMBDA = 1e-3
_KNEE = 4.0 * math.log(2.0 + math.sqrt(3.0))


def heaviside(x: jax.Array) -> jax.Array:
    """Exact step ``1[x >= 0]`` in the dtype of ``x`` (no gradient: zero almost everywhere)."""
    x = jnp.asarray(x)
    return (x >= 0).astype(x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32)


def make_surrogate(pseudo_derivative: Callable[[jax.Array, jax.Array], jax.Array]):
    """Build a surrogate family from ``pseudo_derivative(x, param) -> d``.

    Returns ``spike(x, param)``: forward ``1[x >= 0]``, backward ``g * pseudo_derivative(x, param)``.
    """

    @jax.custom_vjp
    def spike(x, param):
        return heaviside(x)

    def fwd(x, param):
        return heaviside(x), (x, param)

    def bwd(res, g):
        x, param = res
        d = pseudo_derivative(x, param).astype(g.dtype)
        return g * d, jnp.zeros_like(param)

    spike.defvjp(fwd, bwd)
    return spike


def _check_positive(name, value):
    if not isinstance(value, jax.core.Tracer):
        v = float(value)
        if not v > 0 or not math.isfinite(v):
            raise ValueError(f"surrogate parameter {name} must be a positive finite number, got {value!r}")


def _bind(family, param, name, dtype=None) -> SpikeFn:
    _check_positive(name, param)

    def spike(x):
        x = jnp.asarray(x)
        p = jnp.asarray(param, dtype=x.dtype)
        return family(x, p)

    spike.family = family  # type: ignore[attr-defined]
    spike.param = param  # type: ignore[attr-defined]
    spike.__name__ = f"{name}_surrogate"
    return spike


# ---------------------------------------------------------------------------------------------
# Pseudo-derivatives (public so that tests and plots can use the analytic form directly).


def d_boxcar(x, width):
    return jnp.where(jnp.abs(x) < width, 0.5 / width, 0.0).astype(x.dtype)


def d_fast_sigmoid(x, slope):
    return 1.0 / (1.0 + slope * jnp.abs(x)) ** 2


def d_arctan(x, alpha):
    return (alpha / 2.0) / (1.0 + (jnp.pi / 2.0 * alpha * x) ** 2)


def d_triangle(x, width):
    return jnp.maximum(0.0, 1.0 - jnp.abs(x) / width) / width


def d_sigmoid(x, slope):
    s = jax.nn.sigmoid(slope * x)
    return slope * s * (1.0 - s)


def whetstone_sigmoid_gain(sharpness):
    """Gain ``k`` of Whetstone's steep sigmoid ``sigma(k x)`` at ``sharpness`` in [0, 1]."""
    return _KNEE / (1.0 - sharpness + WHETSTONE_LAMBDA)


def d_whetstone_sigmoid(x, sharpness):
    k = whetstone_sigmoid_gain(sharpness)
    z = jnp.clip(k * x, -40.0, 40.0)
    s = jax.nn.sigmoid(z)
    return jnp.where(jnp.abs(k * x) < 40.0, k * s * (1.0 - s), 0.0)


def d_whetstone_brelu(x, sharpness):
    # Bounded ReLU clip(x/(w + lam) + 1/2, 0, 1), centred on the threshold (x = v - v_th).
    w = 1.0 - sharpness + WHETSTONE_LAMBDA
    return jnp.where(jnp.abs(x) < 0.5 * w, 1.0 / w, 0.0).astype(x.dtype)


_boxcar = make_surrogate(d_boxcar)
_fast_sigmoid = make_surrogate(d_fast_sigmoid)
_arctan = make_surrogate(d_arctan)
_triangle = make_surrogate(d_triangle)
_sigmoid = make_surrogate(d_sigmoid)
_whetstone_sigmoid = make_surrogate(d_whetstone_sigmoid)
_whetstone_brelu = make_surrogate(d_whetstone_brelu)


def boxcar(width=0.5) -> SpikeFn:
    """Boxcar pseudo-derivative of unit area, ``1/(2 width)`` on ``|x| < width`` (eRBP's gate)."""
    return _bind(_boxcar, width, "width")


def fast_sigmoid(slope=25.0) -> SpikeFn:
    """Fast sigmoid / SuperSpike pseudo-derivative ``1/(1 + slope |x|)^2``."""
    return _bind(_fast_sigmoid, slope, "slope")


superspike = fast_sigmoid


def arctan(alpha=2.0) -> SpikeFn:
    """Arctan pseudo-derivative ``(alpha/2)/(1 + (pi alpha x / 2)^2)`` (unit area)."""
    return _bind(_arctan, alpha, "alpha")


def triangle(width=1.0) -> SpikeFn:
    """Triangular pseudo-derivative ``max(0, 1 - |x|/width)/width`` (unit area)."""
    return _bind(_triangle, width, "width")


def sigmoid(slope=5.0) -> SpikeFn:
    """Logistic pseudo-derivative ``slope s(slope x)(1 - s(slope x))`` (unit area)."""
    return _bind(_sigmoid, slope, "slope")


def _check_sharpness(s):
    if not isinstance(s, jax.core.Tracer):
        v = float(s)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"sharpness must lie in [0, 1], got {s!r}")


def whetstone_sigmoid(sharpness=0.0) -> SpikeFn:
    """Backward pass of Whetstone's steep sigmoid at ``sharpness`` in [0, 1] (papers.md 3.1)."""
    _check_sharpness(sharpness)

    def spike(x):
        x = jnp.asarray(x)
        return _whetstone_sigmoid(x, jnp.asarray(sharpness, x.dtype))

    return spike


def whetstone_brelu(sharpness=0.0) -> SpikeFn:
    """Backward pass of Whetstone's bounded ReLU at ``sharpness`` in [0, 1] (papers.md 3.1)."""
    _check_sharpness(sharpness)

    def spike(x):
        x = jnp.asarray(x)
        return _whetstone_brelu(x, jnp.asarray(sharpness, x.dtype))

    return spike
