"""The simulate driver: gradients vs finite differences, recording, vmap, remat, keys, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import spikejax as sj
from spikejax.neurons import LIF, LIFSyn1
from spikejax.synapses import blankout_dense


def test_gradient_through_simulate_matches_finite_differences(x64):
    # sub-threshold LIFSyn1: the loss is smooth, so central differences are exact to O(h^2)
    m = LIFSyn1()

    def loss(theta):
        tau_mem, w = theta[0], theta[1]
        p = m.params(tau_mem=0.02, tau_syn=0.005, v_th=1e6, dtype=jnp.float64)._replace(tau_mem=tau_mem)
        xs = w * jnp.sin(jnp.arange(60.0))[:, None] ** 2
        _, v = sj.simulate(m.step, p, m.init(p, (1,)), xs, dt=1e-3, record=lambda s, z: s.v)
        return jnp.sum(v**2)

    theta = jnp.array([0.02, 0.7])
    g = jax.grad(loss)(theta)
    h = 1e-7
    for i in range(2):
        e = jnp.zeros(2).at[i].set(h)
        fd = (loss(theta + e) - loss(theta - e)) / (2 * h)
        np.testing.assert_allclose(float(g[i]), float(fd), rtol=1e-6)


def test_remat_gives_identical_gradients():
    m = LIF()
    p = m.params(tau_mem=0.01)

    def loss(x, remat):
        _, z = sj.simulate(m.step, p, m.init(p, (4,)), x, dt=1e-3, remat=remat)
        return jnp.sum(z * jnp.arange(4.0)[None, :])

    x = jax.random.uniform(jax.random.PRNGKey(1), (200, 4), minval=0.0, maxval=3.0)
    # equal up to float32 reassociation in the rematerialised backward pass (a few ulp)
    np.testing.assert_allclose(jax.grad(loss)(x, False), jax.grad(loss)(x, True), rtol=2e-5, atol=1e-7)


def test_record_modes():
    m = LIF()
    p = m.params()
    s0 = m.init(p, (2,))
    xs = jnp.full((30, 2), 2.0)
    final, z = sj.simulate(m.step, p, s0, xs)
    assert z.shape == (30, 2)
    f2, nothing = sj.simulate(m.step, p, s0, xs, record=None)
    assert nothing is None
    np.testing.assert_array_equal(final.v, f2.v)
    _, (z3, fields) = sj.simulate(m.step, p, s0, xs, record=("v",))
    assert set(fields) == {"v"} and fields["v"].shape == (30, 2)
    np.testing.assert_array_equal(z3, z)
    with pytest.raises(ValueError, match="valid fields"):
        sj.simulate(m.step, p, s0, xs, record=("nope",))
    with pytest.raises(ValueError, match="record"):
        sj.simulate(m.step, p, s0, xs, record=3)


def test_vmap_over_batch_equals_per_sample_runs():
    m = LIF()
    p = m.params(tau_mem=0.01)
    xs = jax.random.uniform(jax.random.PRNGKey(2), (5, 80, 3), maxval=3.0)

    def one(x):
        return sj.simulate(m.step, p, m.init(p, (3,)), x, dt=1e-3)[1]

    batched = jax.vmap(one)(xs)
    for b in range(5):
        np.testing.assert_array_equal(batched[b], one(xs[b]))


def test_input_validation():
    m = LIF()
    p = m.params()
    s0 = m.init(p, (2,))
    with pytest.raises(ValueError, match="time axis"):
        sj.simulate(m.step, p, s0, (jnp.ones((5, 2)), jnp.ones((6, 2))))
    with pytest.raises(ValueError, match="time-major"):
        sj.simulate(m.step, p, s0, jnp.float32(1.0))


def test_blankout_transmits_fraction_p(key):
    p = 0.65
    w = jnp.ones((200, 300))
    s = jnp.ones((200,))
    x, mask = blankout_dense(key, w, s, p)
    frac = float(mask.mean())
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / mask.size)
    np.testing.assert_allclose(np.asarray(x), np.asarray(mask.sum(0)))
    assert float(blankout_dense(key, w, s, 1.0)[1].mean()) == 1.0
    assert float(blankout_dense(key, w, s, 0.0)[1].mean()) == 0.0
    with pytest.raises(ValueError, match="probability"):
        blankout_dense(key, w, s, 1.2)
    with pytest.raises(ValueError, match="probability"):
        blankout_dense(key, w, s, -0.1)


def test_stochastic_lif_network_runs_under_simulate_with_keys(key):
    # LIF with stochastic synapses: the per-step key drives the blank-out coins
    m = LIF(input_mode="delta")
    p = m.params(tau_mem=0.02)
    w = jnp.full((10, 4), 0.3)
    pre = (jax.random.uniform(jax.random.PRNGKey(3), (100, 10)) < 0.2).astype(jnp.float32)

    def step(params, state, s, *, dt, key):
        x, _ = blankout_dense(key, w, s, 0.5)
        return m.step(params, state, x, dt=dt)

    _, z1 = sj.simulate(step, p, m.init(p, (4,)), pre, key=key)
    _, z2 = sj.simulate(step, p, m.init(p, (4,)), pre, key=key)
    _, z3 = sj.simulate(step, p, m.init(p, (4,)), pre, key=jax.random.PRNGKey(9))
    np.testing.assert_array_equal(z1, z2)  # reproducible from the key
    assert not np.array_equal(np.asarray(z1), np.asarray(z3))


def test_spiking_mlp_unroll_gives_identical_outputs_and_gradients(key, x64):
    import jax
    import jax.numpy as jnp
    import pytest

    from spikejax.neurons import LIF
    from spikejax.nn import SpikingMLP, init_mlp
    from spikejax.surrogate import fast_sigmoid

    neuron = LIF(spike_fn=fast_sigmoid(25.0), reset="subtract")
    p = neuron.params(tau_mem=20e-3, dtype=jnp.float64)
    layers = init_mlp(key, [12, 16, 3], gain=3.0, dtype=jnp.float64)
    x = jax.random.bernoulli(jax.random.fold_in(key, 1), 0.3, (30, 4, 12)).astype(jnp.float64)

    def loss(layers, net):
        return jnp.sum(net(layers, p, x) ** 2)

    nets = [SpikingMLP(neuron=neuron, readout="membrane", unroll=u) for u in (1, 4, 7)]
    outs = [net(layers, p, x) for net in nets]
    grads = [jax.grad(loss)(layers, net) for net in nets]
    for o, g in zip(outs[1:], grads[1:]):
        assert jnp.allclose(o, outs[0], rtol=1e-12, atol=1e-13)  # same spikes; only reassociation
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(grads[0])):
            assert jnp.allclose(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="unroll"):
        SpikingMLP(unroll=0)
