"""Integer-weight spiking MLPs: the integer spike encoder, the fixed-point run against the integer
model in float32 (and a hand-written int64 reference), layer-by-layer integer weights, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax.integer import IntegerLayer
from spikejax.integer_snn import (
    IntegerSpikingMLP,
    encode_regular,
    fixed_point_forward_snn,
    if_forward,
    integer_forward_dequantized,
    integer_forward_float,
    integerize_spiking_mlp,
    worst_case_membrane,
)


def reference_int(net, spikes):
    """Plain int64 numpy IF network (no leak, subtractive reset), output = membrane after T."""
    x = np.asarray(spikes, np.int64)
    for i, L in enumerate(net.layers):
        cur = x @ L.w.astype(np.int64) + L.b.astype(np.int64)[None, None, :]
        if i == len(net.layers) - 1:
            return cur.sum(axis=0)
        v = np.zeros(cur.shape[1:], np.int64)
        out = np.zeros_like(cur)
        for t in range(cur.shape[0]):
            v = v + cur[t]
            z = v >= net.thresholds[i]
            v = np.where(z, v - net.thresholds[i], v)
            out[t] = z
        x = out
    raise AssertionError


def random_net(seed, sizes=(12, 9, 4), T=6, lo=-8, hi=7, theta=5):
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append(IntegerLayer(rng.integers(lo, hi + 1, (a, b)).astype(np.int32), rng.integers(-3, 4, b).astype(np.int32), 1.0 / theta, lo, hi))
    return IntegerSpikingMLP(tuple(layers), (theta,) * (len(sizes) - 2), T)


# ---------------------------------------------------------------------------------------------
# encoder


def test_encode_regular_counts_and_at_most_one_spike_per_tick():
    x = np.arange(0, 256, dtype=np.int32)[None, :]
    for T in (1, 4, 8, 13):
        s = encode_regular(x, T, 255)
        assert s.shape == (T, 1, 256) and set(np.unique(s)) <= {0, 1}
        np.testing.assert_array_equal(s.sum(axis=0), (T * x + 127) // 255)
    # phase 0: first spike at tick ceil(unit / x) - 1
    s = encode_regular(np.array([85], np.int32), 6, 255, phase=0)
    np.testing.assert_array_equal(s[:, 0], [0, 0, 1, 0, 0, 1])
    # jax and numpy agree, also under jit
    xj = jnp.asarray(x)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda a: encode_regular(a, 8, 255))(xj)), encode_regular(x, 8, 255))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x_int=np.array([256]), T=4, unit=255), "lie in"),
        (dict(x_int=np.array([-1]), T=4, unit=255), "lie in"),
        (dict(x_int=np.array([0.5]), T=4, unit=255), "integer array"),
        (dict(x_int=np.array([1]), T=0, unit=255), "T must"),
        (dict(x_int=np.array([1]), T=4, unit=255, phase=255), "phase"),
    ],
)
def test_encode_regular_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        encode_regular(**kwargs)


# ---------------------------------------------------------------------------------------------
# fixed point vs float


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fixed_point_equals_integer_model_in_float_and_reference(seed):
    net = random_net(seed, sizes=(12, 9, 7, 4), T=7)
    rng = np.random.default_rng(100 + seed)
    spikes = rng.integers(0, 2, (7, 50, 12)).astype(np.int32)
    ref = reference_int(net, spikes)
    zf, hf = integer_forward_float(net, spikes, record_hidden=True)
    zx, hx = fixed_point_forward_snn(net, spikes, record_hidden=True)
    assert zx.dtype == jnp.int32 and zf.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(zx), ref)
    np.testing.assert_array_equal(np.asarray(zf), ref.astype(np.float32))
    for a, b in zip(hf, hx):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(np.asarray(hx[0]).sum()) > 0  # the hidden layers do spike
    np.testing.assert_array_equal(np.argmax(np.asarray(zf), axis=1), np.argmax(np.asarray(zx), axis=1))


def test_dequantized_model_matches_when_scale_is_exact():
    net = random_net(3, theta=4)  # scale 1/4: exact in float32
    spikes = np.random.default_rng(0).integers(0, 2, (6, 40, 12)).astype(np.int32)
    zd = np.asarray(integer_forward_dequantized(net, spikes))
    zx = np.asarray(fixed_point_forward_snn(net, spikes))
    np.testing.assert_array_equal(zd, (zx * net.layers[-1].scale).astype(np.float32))  # exact: scales are powers of 2


def test_fixed_point_refuses_possible_saturation():
    net = random_net(0, T=6)
    wc = max(worst_case_membrane(net))
    assert wc < 2**15  # small net: 16 bits are enough and chosen
    spikes = np.zeros((6, 2, 12), np.int32)
    fixed_point_forward_snn(net, spikes, bits=16)
    big = IntegerSpikingMLP(net.layers, net.thresholds, 6000)
    with pytest.raises(ValueError, match="could saturate"):
        fixed_point_forward_snn(big, np.zeros((6000, 1, 12), np.int32), bits=16)
    with pytest.raises(ValueError, match="T=6"):
        fixed_point_forward_snn(net, np.zeros((5, 2, 12), np.int32))


def test_integer_spiking_mlp_checks():
    net = random_net(0)
    with pytest.raises(ValueError, match="hidden thresholds"):
        IntegerSpikingMLP(net.layers, (), 6).check()
    with pytest.raises(ValueError, match="positive integers"):
        IntegerSpikingMLP(net.layers, (0,), 6).check()
    with pytest.raises(ValueError, match="no layers"):
        IntegerSpikingMLP((), (), 6).check()


# ---------------------------------------------------------------------------------------------
# layer by layer


def _float_problem(seed=0, n=160, n_in=16, n_h=12, k=3, unit=16):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, unit + 1, (n, n_in)).astype(np.int32)
    w1 = rng.normal(0, 0.4, (n_in, n_h))
    b1 = rng.normal(0, 0.05, n_h)
    w2 = rng.normal(0, 1.0, (n_h, k))
    b2 = np.zeros(k)
    layers = [(w1, b1), (w2, b2)]
    s = encode_regular(x, 8, unit)
    y = np.argmax(np.asarray(if_forward([(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)) for w, b in layers], s, [1.0])), axis=1)
    return layers, x, y


@pytest.mark.parametrize("method", ["round", "mip", "bnb"])
def test_integerize_spiking_mlp_layer_by_layer(method):
    layers, x, y = _float_problem()
    net, results = integerize_spiking_mlp(layers, x, y, T=8, unit=16, thresholds=[6], lo=-8, hi=7, method=method, time_limit=2.0)
    assert len(results) == 2 and net.thresholds == (6,) and net.T == 8
    assert abs(net.layers[0].scale - 1 / 6) < 1e-12
    for L in net.layers:
        assert L.w.min() >= -8 and L.w.max() <= 7
    for r in results:  # never worse than rounding on its own objective
        assert r.value <= r.round_value + 1e-9
    s = encode_regular(x, 8, 16)
    zf = np.asarray(integer_forward_float(net, s))
    zx = np.asarray(fixed_point_forward_snn(net, s))
    np.testing.assert_array_equal(zf, zx.astype(np.float32))
    acc = np.mean(np.argmax(zx, axis=1) == y)
    assert acc >= 0.5  # labels are the float network's own predictions (chance 1/3); time-limited solvers vary


def test_integerize_spiking_mlp_bad_input():
    layers, x, y = _float_problem()
    kw = dict(T=8, unit=16, lo=-8, hi=7)
    with pytest.raises(ValueError, match="no weights"):
        integerize_spiking_mlp([], x, y, thresholds=[], **kw)
    with pytest.raises(ValueError, match="thresholds"):
        integerize_spiking_mlp(layers, x, y, thresholds=[], **kw)
    with pytest.raises(ValueError, match="time_limit"):
        integerize_spiking_mlp(layers, x, y, thresholds=[4], method="mip", time_limit=0, **kw)
    with pytest.raises(ValueError, match="method"):
        integerize_spiking_mlp(layers, x, y, thresholds=[4], method="anneal", **kw)
    with pytest.raises(ValueError, match="empty"):
        integerize_spiking_mlp(layers, x, y, thresholds=[4], T=8, unit=16, lo=3, hi=2)
