"""SoftLIF / LIF rate functions against closed forms, finite differences and simulated spikejax
LIF neurons; conversion of rate networks into spiking networks; bad inputs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import spikejax as sj
from spikejax.neurons import LIF
from spikejax.nn import Dense, init_mlp
from spikejax.softlif import (
    LIFRate,
    SoftLIF,
    SoftLIFMLP,
    Synapse,
    convert,
    convert_flax,
    layers_from_flax,
    lif_rate,
    lif_rate_discrete,
    mlp_apply,
    run_converted,
    softlif,
    softlif_rate,
)
from spikejax.surrogate import heaviside

TAU_RC, TAU_REF = 0.02, 0.002


def closed_form(j, tau_rc=TAU_RC, tau_ref=TAU_REF, a=1.0):
    j = np.asarray(j, np.float64)
    out = np.zeros_like(j)
    on = j > 1
    out[on] = a / (tau_ref + tau_rc * np.log(1.0 + 1.0 / (j[on] - 1.0)))
    return out


def nengo_soft(j, sigma, tau_rc=TAU_RC, tau_ref=TAU_REF, a=1.0):
    """Independent float64 numpy SoftLIF rate and its derivative (papers.md 4.1 formulas)."""
    y = np.asarray(j, np.float64) - 1.0
    p = sigma * np.logaddexp(0.0, y / sigma)
    r = a / (tau_ref + tau_rc * np.log1p(1.0 / p))
    d = tau_rc * r**2 / (a * p * (p + 1.0) * (1.0 + np.exp(-y / sigma)))
    return r, d


# ---------------------------------------------------------------------------------------------
# rate functions


def test_lif_rate_closed_form(x64):
    j = np.concatenate([np.linspace(-3, 1, 9), 1 + np.logspace(-8, 2, 60)])
    r = np.asarray(lif_rate(jnp.asarray(j), TAU_RC, TAU_REF, 1.0))
    np.testing.assert_allclose(r, closed_form(j), rtol=1e-13, atol=0)
    assert np.all(r[j <= 1] == 0)
    # limits: 1/tau_ref for large drive
    assert abs(float(lif_rate(jnp.asarray(1e12))) - 1 / TAU_REF) < 1e-6


def test_lif_activation_matches_rate_with_gain_bias(x64):
    act = LIFRate(amplitude=0.5, gain=2.0, bias=0.7)
    x = jnp.linspace(-1, 3, 41)
    np.testing.assert_allclose(np.asarray(act(x)), closed_form(2.0 * np.asarray(x) + 0.7, a=0.5), rtol=1e-12)


@pytest.mark.parametrize("dt", [1e-3, 1e-4])
def test_lif_rate_vs_simulated_spikejax_neuron(x64, dt):
    """A spikejax LIF (tau_mem = tau_rc, v_th = 1, t_ref = tau_ref, current input) under constant
    J: its steady period is dt*(tau_ref/dt + ceil(t_free/dt)), so 1/r <= 1/r_sim < 1/r + dt."""
    j = np.array([1.02, 1.1, 1.3, 1.7, 2.5, 4.0, 8.0])
    lif = LIF(spike_fn=heaviside, reset="zero", input_mode="current")
    p = lif.params(tau_mem=TAU_RC, v_th=1.0, v_reset=0.0, t_ref=TAU_REF, dtype=jnp.float64)
    n = int(round(1.5 / dt))
    _, z = sj.simulate(lif.step, p, lif.init(p, j.shape), jnp.broadcast_to(jnp.asarray(j)[None], (n, len(j))), dt=dt)
    z = np.asarray(z)
    r = closed_form(j)
    for i in range(len(j)):
        idx = np.flatnonzero(z[:, i])
        periods = np.diff(idx) * dt
        np.testing.assert_allclose(periods, periods[0], rtol=1e-12)  # regular firing
        r_sim = 1.0 / periods[0]
        assert 1 / r[i] - 1e-12 <= 1 / r_sim < 1 / r[i] + dt
        assert abs(r_sim - r[i]) / r[i] < r[i] * dt  # O(dt) relative error bound
        assert r_sim == pytest.approx(float(lif_rate_discrete(j[i], dt, TAU_RC, TAU_REF)), rel=1e-12)


def test_simulated_rate_error_shrinks_linearly_with_dt(x64):
    j = np.array([1.3, 2.0, 4.0])
    errs = []
    for dt in [1e-3, 1e-4, 1e-5]:
        errs.append(np.max(np.abs(lif_rate_discrete(j, dt) - closed_form(j)) / closed_form(j)))
    assert errs[1] < errs[0] / 4 and errs[2] < errs[1] / 4 and errs[2] < 5e-3


@pytest.mark.parametrize("sigma", [1.0, 0.02, 0.002])
def test_softlif_value_and_derivative_vs_nengo_formula(x64, sigma):
    j = 1.0 + sigma * np.concatenate([np.linspace(-19.5, 33.5, 107), [-300.0, -40.0, 40.0, 300.0]])
    j = np.concatenate([j, [1.0 + 1e-3, 3.0, 10.0]])
    r_ref, d_ref = nengo_soft(j, sigma)
    r = np.asarray(softlif_rate(jnp.asarray(j), sigma, TAU_RC, TAU_REF, 1.0))
    d = np.asarray(jax.vmap(jax.grad(lambda v: softlif_rate(v, sigma, TAU_RC, TAU_REF, 1.0)))(jnp.asarray(j)))
    np.testing.assert_allclose(r, r_ref, rtol=1e-8)
    np.testing.assert_allclose(d, d_ref, rtol=1e-7, atol=1e-300)


def test_softlif_derivative_vs_finite_differences(x64):
    sigma = 0.05
    f = lambda v: softlif_rate(v, sigma, TAU_RC, TAU_REF, 1.0)  # noqa: E731
    # points well inside each numerical branch (z < -20, middle, z >= 34)
    z = np.concatenate([np.linspace(-60, -21, 8), np.linspace(-19, 33, 27), np.linspace(35, 200, 8)])
    j = 1.0 + sigma * z
    h = 1e-6 * sigma
    fd = (np.asarray(f(jnp.asarray(j + h))) - np.asarray(f(jnp.asarray(j - h)))) / (2 * h)
    g = np.asarray(jax.vmap(jax.grad(f))(jnp.asarray(j)))
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-12)
    # second-order check through jax.jvp as well
    _, t = jax.jvp(f, (jnp.asarray(j),), (jnp.ones_like(jnp.asarray(j)),))
    np.testing.assert_allclose(np.asarray(t), g, rtol=1e-12)


def _soft_decimal(y, sigma, tau_rc, tau_ref, amplitude):
    """SoftLIF rate in 60-digit decimal arithmetic (independent of float rounding)."""
    p = sigma * (1 + (y / sigma).exp()).ln()
    return amplitude / (tau_ref + tau_rc * (1 + 1 / p).ln())


@pytest.mark.parametrize("y", [-0.5, -0.01, 0.003, 0.05, 0.7, 3.0])
def test_softlif_parameter_derivatives_vs_finite_differences(x64, y):
    """Derivatives w.r.t. sigma, tau_rc, tau_ref, amplitude vs central differences computed in
    60-digit decimal arithmetic (float64 differences are too noisy where dr/dsigma ~ 1e-8)."""
    from decimal import Decimal, getcontext

    getcontext().prec = 60
    base = dict(sigma=0.03, tau_rc=0.02, tau_ref=0.002, amplitude=0.7)
    g = jax.grad(lambda s, a, b, c: softlif_rate(jnp.asarray(1.0 + y), s, a, b, c), argnums=(0, 1, 2, 3))(
        *(jnp.asarray(v) for v in base.values())
    )
    dec = {k: Decimal(repr(v)) for k, v in base.items()}
    yd = Decimal(repr(y))
    for gi, name in zip(g, base):
        h = Decimal("1e-20")
        fd = (_soft_decimal(yd, **{**dec, name: dec[name] + h}) - _soft_decimal(yd, **{**dec, name: dec[name] - h})) / (2 * h)
        assert float(gi) == pytest.approx(float(fd), rel=1e-7, abs=1e-300), name


def test_lif_rate_derivative_vs_finite_differences(x64):
    j = 1.0 + np.logspace(-4, 1, 30)
    h = 1e-7 * (j - 1.0)
    fd = (closed_form(j + h) - closed_form(j - h)) / (2 * h)
    g = np.asarray(jax.vmap(jax.grad(lambda v: lif_rate(v)))(jnp.asarray(j)))
    np.testing.assert_allclose(g, fd, rtol=1e-5)
    assert np.all(np.asarray(jax.vmap(jax.grad(lambda v: lif_rate(v)))(jnp.linspace(-2.0, 1.0, 7))) == 0)


def test_softlif_tends_to_lif_as_sigma_to_zero(x64):
    j = jnp.asarray(np.concatenate([np.linspace(-1, 0.99, 20), np.linspace(1.01, 6, 50)]))
    hard = np.asarray(lif_rate(j))
    errs = [np.max(np.abs(np.asarray(softlif_rate(j, s)) - hard)) for s in [0.1, 0.01, 1e-3, 1e-4, 1e-6]]
    assert all(b < a for a, b in zip(errs, errs[1:]))
    # below threshold r_soft ~ sigma a/(tau_rc |y|): the error is O(sigma)
    assert errs[-1] < 1e-2 and errs[-1] < errs[-2] / 50  # Hz
    # the near-threshold value converges too (slowly: r(threshold) ~ 1/(tau_rc ln(1/sigma)))
    at = [float(softlif_rate(jnp.asarray(1.0), s)) for s in [1e-2, 1e-4, 1e-8, 1e-16]]
    assert all(b < a for a, b in zip(at, at[1:]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", [SoftLIF(), SoftLIF(sigma=1.0), SoftLIF(sigma=1e-4), LIFRate()])
def test_activations_finite_everywhere(dtype, act, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    big = float(jnp.finfo(jnp.dtype(dtype)).max) / 10
    x = jnp.asarray([-big, -1e30, -1e6, -50.0, -1.0, -1e-3, -1e-30, 0.0, 1e-30, 1e-3, 1.0, 50.0, 1e6, 1e30, big], dtype)
    y = act(x)
    g = jax.vmap(jax.grad(act))(x)
    assert y.dtype == jnp.dtype(dtype) and g.dtype == jnp.dtype(dtype)
    assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(g)))
    assert bool(jnp.all(y >= 0)) and bool(jnp.all(y <= act.amplitude / act.tau_ref * (1 + 1e-6)))
    assert bool(jnp.all(g >= 0))
    assert bool(jnp.all(jnp.diff(y) >= 0))  # monotone
    # jit and second use in a flax-style pipeline
    assert bool(jnp.all(jnp.isfinite(jax.jit(act)(x))))


def test_plain_function_equals_class():
    x = jnp.linspace(-2.0, 2.0, 17)
    np.testing.assert_array_equal(np.asarray(softlif(x, sigma=0.1)), np.asarray(SoftLIF(sigma=0.1)(x)))
    assert hash(SoftLIF()) == hash(SoftLIF())  # usable as a static / module attribute


# ---------------------------------------------------------------------------------------------
# flax


def test_flax_mlp_trains_and_converts(key):
    model = SoftLIFMLP(features=(16, 16, 3), activation=SoftLIF(sigma=0.05), dropout_rate=0.2)
    x = jax.random.uniform(key, (8, 5))
    variables = model.init(key, x)
    y = model.apply(variables, x)
    assert y.shape == (8, 3)
    g = jax.grad(lambda v: jnp.sum(model.apply(v, x, deterministic=False, rngs={"dropout": key}) ** 2))(variables)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))
    layers = layers_from_flax(variables)
    np.testing.assert_allclose(np.asarray(mlp_apply(layers, x, model.activation)), np.asarray(y), rtol=1e-5, atol=1e-6)
    net = convert_flax(model, variables, dt=1e-3)
    assert net.run(x, 0.05).shape == (8, 3)


def test_unsupported_activation_is_rejected(key):
    layers = init_mlp(key, [4, 8, 2])
    with pytest.raises(ValueError, match="unsupported activation 'relu'"):
        convert(layers, jax.nn.relu)
    with pytest.raises(ValueError, match="unsupported activation 'tanh'"):
        convert(layers, "tanh")
    model = SoftLIFMLP(features=(8, 2), activation=jax.nn.relu)
    variables = model.init(key, jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match="convert_flax.*unsupported activation 'relu'"):
        convert_flax(model, variables)


# ---------------------------------------------------------------------------------------------
# conversion


def _net(key, sizes, scale=1.0):
    layers = init_mlp(key, sizes)
    return [Dense(layer.w * scale, layer.b + 0.3) for layer in layers]


def test_synapse_filters_unit_dc_gain_and_impulse_response(x64):
    dt = 1e-4
    for syn, peak in [(Synapse("lowpass", 0.01), 0.0), (Synapse("alpha", 0.01), 0.01)]:
        state = syn.init((1,), jnp.float64)
        ys = []
        for n in range(4000):
            x = jnp.asarray([1.0 / dt if n == 0 else 0.0])
            state, y = syn.step(state, x, dt)
            ys.append(float(y[0]))
        ys = np.asarray(ys)
        assert ys.sum() * dt == pytest.approx(1.0, rel=1e-6)  # unit area
        assert np.argmax(ys) * dt == pytest.approx(peak, abs=2 * dt)


@pytest.mark.parametrize("synapse", [None, ("lowpass", 0.005), ("alpha", 0.005)])
def test_spiking_output_approaches_lif_rate_network(key, synapse):
    """Readout error vs the LIF-rate network shrinks as the presentation time grows."""
    act = SoftLIF(sigma=0.02, amplitude=0.01)
    layers = _net(key, [6, 32, 3], scale=3.0)
    x = jax.random.normal(jax.random.PRNGKey(3), (20, 6))
    ref = np.asarray(mlp_apply(layers, x, act.hard()))
    scale = np.std(ref)
    net = convert(layers, act, synapse=synapse, dt=1e-4)
    errs = []
    for T in [0.02, 0.2, 1.0]:
        out = np.asarray(net(x, T, settle_time=0.0 if synapse is None else 0.01))
        errs.append(np.sqrt(np.mean((out - ref) ** 2)) / scale)
    assert errs[2] < errs[0] and errs[2] < 0.03, errs


def test_two_hidden_layers_with_long_synapse_match(key):
    act = SoftLIF(sigma=0.02, amplitude=0.01)
    layers = _net(key, [5, 24, 24, 2], scale=2.0)
    x = jax.random.normal(jax.random.PRNGKey(4), (10, 5))
    ref = np.asarray(mlp_apply(layers, x, act.hard()))
    out = np.asarray(convert(layers, act, synapse=("alpha", 0.02), dt=1e-4)(x, 1.0, settle_time=0.2))
    assert np.sqrt(np.mean((out - ref) ** 2)) < 0.05 * np.std(ref)


def test_dropped_neurons_are_silent_and_kept_ones_rescaled(x64, key):
    """Identity readout: the output is each hidden neuron's filtered activity."""
    act = LIFRate(amplitude=0.01)
    H = 12
    w1 = jax.random.uniform(key, (3, H), jnp.float64, 0.5, 2.0)
    layers = [Dense(w1, jnp.zeros(H)), Dense(jnp.eye(H), jnp.zeros(H))]
    x = jnp.ones((1, 3))
    p = 0.25
    mask = jnp.where(jnp.arange(H) % 3 == 0, 0.0, 1.0 / (1 - p))
    net = convert(layers, act, dt=1e-4)
    out, trace = net(x, 0.5, masks=(mask,), record=True)
    trace = np.asarray(trace)[:, 0]
    dropped = np.asarray(mask) == 0
    assert np.all(trace[:, dropped] == 0)  # silent for the whole presentation
    ref = np.asarray(mlp_apply(layers, x, act, (mask,)))[0]
    np.testing.assert_allclose(np.asarray(out)[0][~dropped], ref[~dropped], rtol=0.02)


def test_rate_coded_input_approaches_rate_network(key):
    """Bernoulli input spikes (decoded as spikes/(max_rate dt)) through a slow input synapse."""
    act = SoftLIF(amplitude=0.01)
    layers = _net(key, [8, 16, 2], scale=1.5)
    x = jax.random.uniform(jax.random.PRNGKey(1), (6, 8))
    ref = np.asarray(mlp_apply(layers, x, act.hard()))
    net = convert(layers, act, synapse=[("alpha", 0.03), ("lowpass", 0.01)], dt=5e-4, input_mode="rate")
    out = np.asarray(net(x, 2.0, key=key, settle_time=0.2))
    assert np.sqrt(np.mean((out - ref) ** 2)) < 0.1 * np.std(ref)


def test_conversion_bad_inputs(key):
    act = SoftLIF()
    layers = init_mlp(key, [4, 8, 2])
    with pytest.raises(ValueError, match="tau_ref"):
        convert(layers, act, dt=3e-4)  # 2 ms is not a whole number of 0.3 ms steps
    with pytest.raises(ValueError, match="synapse kind"):
        convert(layers, act, synapse=("gauss", 0.01))
    with pytest.raises(ValueError, match="tau of the lowpass synapse"):
        convert(layers, act, synapse=("lowpass", -1.0))
    with pytest.raises(ValueError, match="3 synapses for 2 connections"):
        convert(layers, act, synapse=[None, None, None])
    net = convert(layers, act, dt=1e-3, input_mode="rate")
    with pytest.raises(ValueError, match=r"inputs in \[0, 1\]"):
        net(jnp.full((1, 4), 2.0), 0.01, key=key)
    with pytest.raises(ValueError, match="PRNG key"):
        net(jnp.full((1, 4), 0.5), 0.01)
    with pytest.raises(ValueError, match="settle_time"):
        convert(layers, act, dt=1e-3)(jnp.ones((1, 4)), 0.01, settle_time=0.02)
    with pytest.raises(ValueError, match="masks"):
        convert(layers, act, dt=1e-3)(jnp.ones((1, 4)), 0.01, masks=(jnp.ones(8), jnp.ones(2)))
    with pytest.raises(ValueError, match="sigma"):
        SoftLIF(sigma=0.0)
    with pytest.raises(ValueError, match="tau_rc"):
        lif_rate(jnp.ones(2), tau_rc=-1.0)


def test_run_converted_vmaps_over_masks(key):
    act = SoftLIF()
    layers = tuple(init_mlp(key, [3, 8, 1]))
    net = convert(layers, act, dt=1e-3)
    masks = (jnp.stack([jnp.ones(8), jnp.zeros(8)]),)
    out = jax.vmap(lambda m: run_converted(net.config, layers, jnp.ones((2, 3)), 0.05, masks=(m,)))(masks[0])
    assert out.shape == (2, 2, 1)
    np.testing.assert_allclose(np.asarray(out[1]), np.broadcast_to(np.asarray(layers[1].b), (2, 1)), atol=1e-7)
    assert math.isfinite(float(out.sum()))
