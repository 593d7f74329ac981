"""Surrogate spikes: exact forward, analytic backward, finite differences, no NaN/inf."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import surrogate as S

X = np.array([-3.0, -1.0, -0.3, -0.05, 0.0, 0.02, 0.4, 1.0, 2.5])


def analytic(name, p, x):
    if name == "boxcar":
        return np.where(np.abs(x) < p, 0.5 / p, 0.0)
    if name == "fast_sigmoid":
        return 1.0 / (1.0 + p * np.abs(x)) ** 2
    if name == "arctan":
        return (p / 2) / (1 + (math.pi * p * x / 2) ** 2)
    if name == "triangle":
        return np.maximum(0.0, 1 - np.abs(x) / p) / p
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-p * x))
        return p * s * (1 - s)
    raise KeyError(name)


# smooth antiderivatives, for finite-difference checks of the backward pass
ANTI = {
    "fast_sigmoid": lambda p, x: x / (1 + p * np.abs(x)),
    "arctan": lambda p, x: np.arctan(math.pi * p * x / 2) / math.pi,
    "sigmoid": lambda p, x: 1 / (1 + np.exp(-p * x)),
}

CASES = [("boxcar", 0.5), ("fast_sigmoid", 10.0), ("arctan", 2.0), ("triangle", 1.0), ("sigmoid", 5.0)]


@pytest.mark.parametrize("name,p", CASES)
def test_forward_is_exact_heaviside_and_backward_analytic(x64, name, p):
    fn = getattr(S, name)(p)
    x = jnp.asarray(X)
    np.testing.assert_array_equal(np.asarray(fn(x)), (X >= 0).astype(float))
    g = jax.vmap(jax.grad(lambda v: fn(v)))(x)
    np.testing.assert_allclose(np.asarray(g), analytic(name, p, X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,p", [c for c in CASES if c[0] in ANTI])
def test_backward_matches_finite_differences_of_smooth_form(x64, name, p):
    fn = getattr(S, name)(p)
    h = 1e-6
    for x in X[X != 0.0]:
        fd = (ANTI[name](p, x + h) - ANTI[name](p, x - h)) / (2 * h)
        np.testing.assert_allclose(float(jax.grad(fn)(jnp.float64(x))), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name,p", CASES + [("whetstone_sigmoid", 0.5), ("whetstone_brelu", 0.99), ("whetstone_sigmoid", 1.0)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16])
def test_no_nan_or_inf_gradients_anywhere(name, p, dtype):
    fn = getattr(S, name)(p)
    x = jnp.array([-1e30, -1e5, -1.0, 0.0, 1e-30, 1.0, 1e5, 1e30, -jnp.inf, jnp.inf], jnp.float32).astype(dtype)
    g = jax.vmap(jax.grad(lambda v: fn(v)))(x)
    assert bool(jnp.all(jnp.isfinite(g))), (name, g)


def test_whetstone_surrogates_match_their_activations(x64):
    # steep sigmoid sigma(k x), k = 4 ln(2 + sqrt 3)/(1 - s + 1e-3): derivative k s (1 - s)
    for s in [0.0, 0.5, 0.9]:
        k = 4 * math.log(2 + math.sqrt(3)) / (1 - s + 1e-3)
        fn = S.whetstone_sigmoid(s)
        for x in [-0.3, 0.0, 0.1]:
            sig = 1 / (1 + math.exp(-k * x))
            np.testing.assert_allclose(float(jax.grad(fn)(jnp.float64(x))), k * sig * (1 - sig), rtol=1e-10)
    # bounded ReLU clip(x/w + 1/2, 0, 1): slope 1/w inside |x| < w/2, w = 1 - s + 1e-3
    fn = S.whetstone_brelu(0.5)
    w = 0.501
    assert float(jax.grad(fn)(jnp.float64(0.2))) == pytest.approx(1 / w)
    assert float(jax.grad(fn)(jnp.float64(0.3))) == 0.0


def test_traced_slope_compiles_once_under_vmap(x64):
    def g(slope, x):
        return jax.grad(lambda v: S.fast_sigmoid(slope)(v))(x)

    slopes = jnp.array([1.0, 10.0, 100.0])
    out = jax.jit(jax.vmap(g, in_axes=(0, None)))(slopes, jnp.float64(0.1))
    np.testing.assert_allclose(np.asarray(out), 1 / (1 + np.asarray(slopes) * 0.1) ** 2)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_surrogate_parameters(bad):
    with pytest.raises(ValueError, match="slope"):
        S.fast_sigmoid(bad)
    with pytest.raises(ValueError, match="width"):
        S.boxcar(bad)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bad_sharpness(bad):
    with pytest.raises(ValueError, match="sharpness"):
        S.whetstone_sigmoid(bad)
