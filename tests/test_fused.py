"""The fused LIF layer (spikejax.neurons.fused.lif_sequence) against the generic simulate() path and
against finite differences of a smooth stand-in for the spike function."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax.neurons import LIF
from spikejax.neurons.fused import fused_supported, lif_sequence
from spikejax.nn import SpikingMLP, init_mlp
from spikejax.neurons.mihalas_niebur import MihalasNiebur
from spikejax.simulate import simulate
from spikejax.surrogate import arctan, boxcar, fast_sigmoid, triangle

DT = 1e-3


def _generic(neuron, p, C):
    return simulate(neuron.step, p, neuron.init(p, C.shape[1:]), C, dt=DT)[1]


def _fused(neuron, p, C, lean=True):
    # lean: t_ref is replaced by a constant zero so that the forward scan needs no refractory counter
    # even while the other parameters are traced (differentiated)
    return lif_sequence(neuron, p._replace(t_ref=jnp.zeros((), C.dtype)) if lean else p, C, dt=DT)


def _params(neuron, n, dtype, t_ref=0.0):
    return neuron.params(
        tau_mem=jnp.linspace(5e-3, 30e-3, n),  # per-neuron time constants
        v_th=1.0,
        v_reset=-0.2 if neuron.reset == "zero" else 0.0,
        v_leak=0.1,
        t_ref=t_ref,
        dtype=dtype,
    )


@pytest.mark.parametrize(
    "reset,input_mode,detach,spike_fn",
    [
        (r, m, d, s)
        for (r, m, d), s in zip(
            itertools.product(["zero", "subtract"], ["current", "delta"], [False, True]),
            itertools.cycle([fast_sigmoid(10.0), arctan(2.0), boxcar(0.5), triangle(1.0)]),
        )
    ],
)
@pytest.mark.parametrize("t_ref", [0.0, 3e-3])
def test_fused_equals_generic_forward_and_gradients(x64, reset, input_mode, detach, spike_fn, t_ref):
    T, N = 60, 21  # per-neuron parameters broadcast against [N] under strict rank promotion
    neuron = LIF(spike_fn=spike_fn, reset=reset, input_mode=input_mode, detach_reset=detach)
    p = _params(neuron, N, jnp.float64, t_ref)
    C = jax.random.normal(jax.random.PRNGKey(0), (T, N), jnp.float64) * 3.0 + 1.0
    if input_mode == "delta":
        C = 0.3 * C
    w = jax.random.normal(jax.random.PRNGKey(1), (T, N), jnp.float64)

    lean = t_ref == 0.0  # with t_ref > 0 the parameters are traced under grad: the counting forward scan
    z_gen, z_fus = _generic(neuron, p, C), _fused(neuron, p, C, lean)
    assert 0.01 < float(jnp.mean(z_gen)) < 0.5  # the test exercises spikes and resets
    np.testing.assert_array_equal(np.asarray(z_fus), np.asarray(z_gen))
    if not lean:
        assert int(jnp.sum((z_gen[:-1] > 0) & (z_gen[1:] > 0))) == 0  # refractoriness is active

    g_gen = jax.grad(lambda p, C: jnp.sum(w * _generic(neuron, p, C)), argnums=(0, 1))(p, C)
    g_fus = jax.grad(lambda p, C: jnp.sum(w * _fused(neuron, p, C, lean)), argnums=(0, 1))(p, C)
    for name, a, b in zip(["tau_mem", "v_th", "v_reset", "v_leak", "t_ref"], g_gen[0], g_fus[0]):
        if name == "t_ref":
            continue
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-11, atol=1e-11, err_msg=name)
    np.testing.assert_allclose(np.asarray(g_fus[1]), np.asarray(g_gen[1]), rtol=1e-11, atol=1e-12)
    assert float(jnp.max(jnp.abs(g_fus[1]))) > 0


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_fused_gradient_matches_finite_differences_with_a_smooth_spike_function(x64, reset):
    """With a smooth, ordinarily differentiable "spike" function the network is a smooth map, so the
    hand-written adjoint must equal central finite differences (independent of any autodiff rule)."""
    smooth = lambda x: jax.nn.sigmoid(4.0 * x)  # noqa: E731
    neuron = LIF(spike_fn=smooth, reset=reset)
    T, N = 40, 4
    p = _params(neuron, N, jnp.float64)
    C = 1.5 + jax.random.normal(jax.random.PRNGKey(2), (T, N), jnp.float64)
    w = jax.random.normal(jax.random.PRNGKey(3), (T, N), jnp.float64)

    @jax.jit
    def loss(C, tau, v_th):
        q = p._replace(tau_mem=tau, v_th=v_th)
        return jnp.sum(w * _fused(neuron, q, C))

    gC, gtau, gth = jax.grad(loss, argnums=(0, 1, 2))(C, p.tau_mem, p.v_th)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for _ in range(6):
        t, n = int(rng.integers(T)), int(rng.integers(N))
        d = jnp.zeros_like(C).at[t, n].set(eps)
        fd = (loss(C + d, p.tau_mem, p.v_th) - loss(C - d, p.tau_mem, p.v_th)) / (2 * eps)
        np.testing.assert_allclose(float(gC[t, n]), float(fd), rtol=1e-6, atol=1e-9)
    for n in range(N):
        d = jnp.zeros_like(p.tau_mem).at[n].set(1e-9)
        fd = (loss(C, p.tau_mem + d, p.v_th) - loss(C, p.tau_mem - d, p.v_th)) / 2e-9
        np.testing.assert_allclose(float(gtau[n]), float(fd), rtol=1e-5)
    fd = (loss(C, p.tau_mem, p.v_th + eps) - loss(C, p.tau_mem, p.v_th - eps)) / (2 * eps)
    np.testing.assert_allclose(float(gth), float(fd), rtol=1e-6)


def test_spiking_mlp_uses_fused_layer_automatically_and_matches_generic(monkeypatch):
    neuron = LIF(spike_fn=fast_sigmoid(25.0), reset="subtract")
    nparams = neuron.params(tau_mem=20e-3, v_th=1.0)
    layers = init_mlp(jax.random.PRNGKey(0), (20, 16, 5), gain=8.0)
    x = jax.random.bernoulli(jax.random.PRNGKey(1), 0.3, (30, 4, 20)).astype(jnp.float32)

    calls = []
    import spikejax.nn as nn_mod

    real = nn_mod.lif_sequence
    monkeypatch.setattr(nn_mod, "lif_sequence", lambda *a, **k: calls.append(1) or real(*a, **k))

    def loss(layers, fused):
        net = SpikingMLP(neuron=neuron, readout="spikes", fused=fused)
        return jnp.sum((jnp.sum(net(layers, nparams, x), axis=0) - 2.0) ** 2)

    l_auto, g_auto = jax.value_and_grad(loss)(layers, None)
    assert len(calls) == 2  # both spiking layers went through the fused path
    l_gen, g_gen = jax.value_and_grad(loss)(layers, False)
    assert len(calls) == 2
    assert float(l_auto) == float(l_gen)
    for a, b in zip(jax.tree.leaves(g_auto), jax.tree.leaves(g_gen)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)

    # refractory neurons and parameters traced inside jit take the fused layer's counting scan
    ref_params = neuron.params(tau_mem=20e-3, v_th=1.0, t_ref=2e-3)
    assert fused_supported(neuron, ref_params)
    net = SpikingMLP(neuron=neuron, readout="spikes")
    out_auto = net(layers, ref_params, x)
    assert len(calls) == 4
    out_gen = SpikingMLP(neuron=neuron, readout="spikes", fused=False)(layers, ref_params, x)
    np.testing.assert_array_equal(np.asarray(out_auto), np.asarray(out_gen))
    out_jit = jax.jit(lambda p: net(layers, p, x))(ref_params)
    assert len(calls) == 6
    np.testing.assert_array_equal(np.asarray(out_jit), np.asarray(out_gen))
    # rematerialisation and unrolling are only implemented by the generic scan
    SpikingMLP(neuron=neuron, readout="spikes", remat=True)(layers, nparams, x)
    SpikingMLP(neuron=neuron, readout="spikes", unroll=2)(layers, nparams, x)
    assert len(calls) == 6


def test_fused_bad_input_errors():
    neuron = LIF()
    mn = MihalasNiebur()
    with pytest.raises(ValueError, match="fused=True"):
        SpikingMLP(neuron=mn, readout="spikes", fused=True)(init_mlp(jax.random.PRNGKey(0), (3, 2)), neuron.params(), jnp.zeros((5, 3)))
    with pytest.raises(TypeError, match="plain"):
        lif_sequence(mn, neuron.params(), jnp.zeros((5, 3)), dt=DT)
    with pytest.raises(TypeError, match="LIFParams"):
        lif_sequence(neuron, tuple(neuron.params()), jnp.zeros((5, 3)), dt=DT)
    with pytest.raises(ValueError, match="floating"):
        lif_sequence(neuron, neuron.params(), jnp.zeros((5, 3), jnp.int32), dt=DT)
    with pytest.raises(ValueError, match="fused must be"):
        SpikingMLP(fused="yes")
    with pytest.raises(ValueError, match="bias of shape"):
        lif_sequence(neuron, neuron.params(), jnp.zeros((5, 2, 3)), dt=DT, bias=jnp.zeros(4))
    with pytest.raises(ValueError, match="bias must be a floating"):
        lif_sequence(neuron, neuron.params(), jnp.zeros((5, 3)), dt=DT, bias=jnp.zeros(3, jnp.int32))


@pytest.mark.parametrize("t_ref", [0.0, 3e-3])
@pytest.mark.parametrize("bias_shape", [(7,), (1, 7), (4, 7)])
def test_fused_bias_equals_generic_on_biased_currents(x64, t_ref, bias_shape):
    """A bias added inside the time loop == the generic scan on ``currents + bias``, forward (bit for
    bit) and gradients w.r.t. currents, bias (summed over time and broadcast axes) and parameters."""
    T, B, N = 50, 4, 7
    neuron = LIF(spike_fn=fast_sigmoid(10.0), reset="subtract")
    p = _params(neuron, N, jnp.float64, t_ref)
    p = p._replace(tau_mem=p.tau_mem[None, :])  # per-neuron, [1, N] against the [B, N] state
    C = jax.random.normal(jax.random.PRNGKey(2), (T, B, N), jnp.float64) * 2.0
    b = 1.0 + 0.5 * jax.random.normal(jax.random.PRNGKey(3), bias_shape, jnp.float64)
    w = jax.random.normal(jax.random.PRNGKey(4), (T, B, N), jnp.float64)
    pad = (1,) * (2 - len(bias_shape))

    def gen(p, C, b):
        return _generic(neuron, p, C + jnp.reshape(b, pad + bias_shape)[None])

    def fus(p, C, b):
        q = p._replace(t_ref=jnp.zeros((), C.dtype)) if t_ref == 0.0 else p
        return lif_sequence(neuron, q, C, dt=DT, bias=b)

    z_gen, z_fus = gen(p, C, b), fus(p, C, b)
    assert 0.01 < float(jnp.mean(z_gen)) < 0.5
    np.testing.assert_array_equal(np.asarray(z_fus), np.asarray(z_gen))
    g_gen = jax.grad(lambda *a: jnp.sum(w * gen(*a)), argnums=(0, 1, 2))(p, C, b)
    g_fus = jax.grad(lambda *a: jnp.sum(w * fus(*a)), argnums=(0, 1, 2))(p, C, b)
    assert g_fus[2].shape == bias_shape and float(jnp.max(jnp.abs(g_fus[2]))) > 0
    for name, a, c in zip(["tau_mem", "v_th", "v_reset", "v_leak"], g_gen[0], g_fus[0]):
        np.testing.assert_allclose(np.asarray(c), np.asarray(a), rtol=1e-10, atol=1e-11, err_msg=name)
    np.testing.assert_allclose(np.asarray(g_fus[1]), np.asarray(g_gen[1]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g_fus[2]), np.asarray(g_gen[2]), rtol=1e-10, atol=1e-11)
