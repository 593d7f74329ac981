"""spikejax.encoding: encoders against statistics and hand-computed arrays, decoders on hand-built rasters."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import encoding as enc

# --------------------------------------------------------------------------------------------
# rate / Poisson
# --------------------------------------------------------------------------------------------


def test_rate_empirical_probability(key):
    T = 20000
    x = jnp.array([0.0, 0.05, 0.3, 0.5, 0.9, 1.0], dtype=jnp.float32)
    s = jax.jit(enc.rate, static_argnums=2)(key, x, T)
    assert s.shape == (T, 6) and s.dtype == jnp.float32
    assert set(np.unique(np.asarray(s)).tolist()) <= {0.0, 1.0}
    emp = np.asarray(jnp.mean(s, axis=0))
    p = np.asarray(x)
    tol = 5.0 * np.sqrt(p * (1 - p) / T) + 1e-12  # 5 sigma
    assert np.all(np.abs(emp - p) <= tol), (emp, p)
    assert emp[0] == 0.0 and emp[-1] == 1.0
    # max_prob scales the probability; batch dims are just extra input dims
    s = enc.rate(key, jnp.full((2, 3), 1.0, dtype=jnp.float32), T, max_prob=0.2)
    assert s.shape == (T, 2, 3)
    assert abs(float(jnp.mean(s)) - 0.2) < 5 * math.sqrt(0.2 * 0.8 / (T * 6))
    # seeded: same key, same spikes; a different key, different spikes
    np.testing.assert_array_equal(enc.rate(key, x, 50), enc.rate(key, x, 50))
    assert not np.array_equal(enc.rate(key, x, 50), enc.rate(jax.random.PRNGKey(1), x, 50))


def test_poisson_hz(key):
    T = 20000
    s = enc.poisson(key, jnp.array([0.0, 100.0, 400.0], dtype=jnp.float32), T, dt=1e-3)
    emp = np.asarray(jnp.mean(s, axis=0))
    np.testing.assert_allclose(emp, [0.0, 0.1, 0.4], atol=5 * math.sqrt(0.25 / T))
    with pytest.raises(ValueError, match=r"rate_hz \* dt"):
        enc.poisson(key, jnp.array([2000.0], dtype=jnp.float32), 10, dt=1e-3)
    with pytest.raises(ValueError, match="rate_hz"):
        enc.poisson(key, jnp.array([-1.0], dtype=jnp.float32), 10)


def test_rate_bad_inputs(key):
    x = jnp.array([0.5], dtype=jnp.float32)
    with pytest.raises(ValueError, match="x must lie in"):
        enc.rate(key, jnp.array([0.5, 1.5], dtype=jnp.float32), 10)
    with pytest.raises(ValueError, match="x must lie in"):
        enc.rate(key, np.array([0, 255], dtype=np.uint8), 10)  # forgot to scale
    with pytest.raises(ValueError, match="max_prob"):
        enc.rate(key, x, 10, max_prob=1.5)
    for T in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="T must"):
            enc.rate(key, x, T)


# --------------------------------------------------------------------------------------------
# latency
# --------------------------------------------------------------------------------------------


def test_latency_linear_hand_computed():
    T = 11
    x = jnp.array([1.0, 0.5, 0.9, 0.1, 0.04, 0.0], dtype=jnp.float32)
    # t = floor((1 - x) * (T - 1) + 1/2): 0, 5, 1, 9, floor(10.1) = 10; x = 0 -> no spike (T)
    t = enc.latency_times(x, T)
    assert t.dtype == jnp.int32 and t.tolist() == [0, 5, 1, 9, 10, 11]
    s = jax.jit(enc.latency, static_argnums=1)(x, T)
    assert s.shape == (T, 6)
    assert np.asarray(jnp.sum(s, axis=0)).tolist() == [1, 1, 1, 1, 1, 0]
    for i, ti in enumerate([0, 5, 1, 9, 10]):
        assert float(s[ti, i]) == 1.0


def test_latency_log_hand_computed():
    T, tau, th, dt = 100, 20e-3, 0.2, 1e-3
    xs = [1.0, 0.5, 0.25, 0.21, 0.1, 0.0]
    expected = []
    for v in xs:
        if v == 0:
            expected.append(T)
        elif v <= th:
            expected.append(T - 1)
        else:
            expected.append(min(math.floor(tau / dt * math.log(v / (v - th)) + 0.5), T - 1))
    assert expected == [4, 10, 32, 61, 99, 100]  # 20 ln 1.25 = 4.46, 20 ln(5/3) = 10.2, 20 ln 5 = 32.2, 20 ln 21
    t = enc.latency_times(jnp.array(xs, dtype=jnp.float32), T, "log", tau=tau, threshold=th, dt=dt)
    assert t.tolist() == expected
    s = enc.latency(jnp.array(xs, dtype=jnp.float32), T, "log")
    assert np.asarray(jnp.sum(s, axis=0)).tolist() == [1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize("method", ["linear", "log"])
def test_latency_one_spike_larger_is_earlier(key, method):
    x = jax.random.uniform(key, (200,), dtype=jnp.float32)
    x = x.at[:5].set(0.0)
    T = 30
    s = enc.latency(x, T, method)
    counts = np.asarray(jnp.sum(s, axis=0))
    np.testing.assert_array_equal(counts, (np.asarray(x) > 0).astype(np.float32))
    t = np.asarray(enc.latency_times(x, T, method))
    order = np.argsort(np.asarray(x))
    assert np.all(np.diff(t[order]) <= 0)  # non-increasing as x grows


def test_latency_bad_inputs():
    with pytest.raises(ValueError, match="x must lie in"):
        enc.latency(jnp.array([-0.1], dtype=jnp.float32), 5)
    with pytest.raises(ValueError, match="method"):
        enc.latency(jnp.array([0.1], dtype=jnp.float32), 5, "exp")
    with pytest.raises(ValueError, match="threshold"):
        enc.latency(jnp.array([0.1], dtype=jnp.float32), 5, "log", threshold=1.0)
    with pytest.raises(ValueError, match="tau"):
        enc.latency(jnp.array([0.1], dtype=jnp.float32), 5, "log", tau=0.0)
    with pytest.raises(ValueError, match="T must"):
        enc.latency(jnp.array([0.1], dtype=jnp.float32), 0)


# --------------------------------------------------------------------------------------------
# binarise, contour, direct, regular
# --------------------------------------------------------------------------------------------


def test_binarize():
    x = jnp.array([[0.0, 0.49, 0.5], [0.51, 1.0, 0.2]], dtype=jnp.float32)
    np.testing.assert_array_equal(enc.binarize(x), [[0, 0, 1], [1, 1, 0]])
    np.testing.assert_array_equal(enc.binarize(x, 0.2), [[0, 1, 1], [1, 1, 1]])
    assert enc.binarize(x).dtype == jnp.float32


def _square(n=9, lo=2, size=5):
    img = np.zeros((n, n), dtype=np.float32)
    img[lo : lo + size, lo : lo + size] = 1.0
    return img


def test_sobel_square_hand_computed():
    mag = np.asarray(enc.sobel(jnp.asarray(_square())))
    # interior of the square and far background: no gradient
    assert np.all(mag[3:6, 3:6] == 0) and np.all(mag[0] == 0) and np.all(mag[:, 8] == 0)
    # middle of an edge, on the square (2, 4) and just outside it (1, 4): gy = 1 + 2 + 1 = 4
    assert mag[2, 4] == 4.0 and mag[1, 4] == 4.0 and mag[4, 2] == 4.0 and mag[4, 7] == 4.0
    # square corner (2, 2): gx = 2 + 1 = 3, gy = 2 + 1 = 3 -> 3 sqrt 2
    np.testing.assert_allclose(mag[2, 2], 3 * math.sqrt(2), rtol=1e-6)
    # diagonal outside corner (1, 1): only (2, 2) is lit -> gx = gy = 1 -> sqrt 2
    np.testing.assert_allclose(mag[1, 1], math.sqrt(2), rtol=1e-6)
    # (1, 2): gy = 2 + 1 = 3, gx = (2, 3) - (2, 1) = 1 -> sqrt 10
    np.testing.assert_allclose(mag[1, 2], math.sqrt(10), rtol=1e-6)
    # symmetric under the square's symmetries
    np.testing.assert_allclose(mag, mag.T, rtol=1e-6)
    np.testing.assert_allclose(mag, mag[::-1, ::-1], rtol=1e-6)


def test_contour_square_hand_computed():
    # threshold 2: the two-pixel band around the square's border, minus the 4 diagonal outer corners
    expected = np.zeros((9, 9), dtype=np.float32)
    expected[1:8, 1:8] = 1.0
    expected[3:6, 3:6] = 0.0
    for i, j in ((1, 1), (1, 7), (7, 1), (7, 7)):
        expected[i, j] = 0.0
    c = enc.contour(jnp.asarray(_square()), threshold=2.0)
    np.testing.assert_array_equal(c, expected)
    # batch dims; the default threshold 1.0 also keeps the sqrt 2 corners
    batch = jnp.stack([jnp.asarray(_square()), jnp.zeros((9, 9), dtype=jnp.float32)])
    cb = jax.jit(enc.contour)(batch)
    assert cb.shape == (2, 9, 9)
    assert float(cb[0, 1, 1]) == 1.0 and float(jnp.sum(cb[1])) == 0.0
    # a square touching the border still gets an edge there (zero padding = black background)
    edge = enc.contour(jnp.ones((4, 4), dtype=jnp.float32))
    np.testing.assert_array_equal(edge[0], [1, 1, 1, 1])
    assert float(jnp.sum(enc.contour(jnp.ones((4, 4), dtype=jnp.float32), pad_mode="edge"))) == 0.0
    with pytest.raises(ValueError, match="x must have rank >= 2"):
        enc.contour(jnp.ones((4,), dtype=jnp.float32))
    with pytest.raises(ValueError, match="pad_mode"):
        enc.sobel(jnp.ones((4, 4), dtype=jnp.float32), pad_mode="wrap")


def test_direct():
    x = jnp.array([[0.2, 0.7]], dtype=jnp.float32)
    d = enc.direct(x, 4)
    assert d.shape == (4, 1, 2)
    np.testing.assert_array_equal(d, np.broadcast_to(np.asarray(x), (4, 1, 2)))
    assert enc.direct(jnp.array([1, 2]), 2).dtype == jnp.float32
    with pytest.raises(ValueError, match="T must"):
        enc.direct(x, 0)


def test_regular():
    s = enc.regular(jnp.array([250.0, 100.0, 0.0], dtype=jnp.float32), 12, dt=1e-3)
    assert s.shape == (12, 3)
    assert np.flatnonzero(np.asarray(s[:, 0])).tolist() == [3, 7, 11]  # p = 1/4
    assert np.flatnonzero(np.asarray(s[:, 1])).tolist() == [9]  # p = 1/10: first at ceil(10) - 1
    assert float(jnp.sum(s[:, 2])) == 0.0
    s = enc.regular(jnp.array([250.0], dtype=jnp.float32), 12, phase=0.75)
    assert np.flatnonzero(np.asarray(s[:, 0])).tolist() == [0, 4, 8]
    s = enc.regular(jnp.array([37.0, 1000.0], dtype=jnp.float32), 1000, dt=1e-3)
    assert np.asarray(jnp.sum(s, axis=0)).tolist() == [37.0, 1000.0]
    with pytest.raises(ValueError, match="spikes per step"):
        enc.regular(jnp.array([2000.0], dtype=jnp.float32), 10)
    with pytest.raises(ValueError, match="phase"):
        enc.regular(jnp.array([20.0], dtype=jnp.float32), 10, phase=1.0)


# --------------------------------------------------------------------------------------------
# decoders
# --------------------------------------------------------------------------------------------


def _raster(T, C, spikes):
    s = np.zeros((T, C), dtype=np.float32)
    for t, c in spikes:
        s[t, c] = 1.0
    return jnp.asarray(s)


def test_count_and_rate_decode():
    a = _raster(5, 3, [(0, 0), (1, 2), (2, 2), (4, 1)])  # counts 1, 1, 2 -> 2
    b = _raster(5, 3, [(0, 1), (3, 0)])  # tie 1-1 -> lowest index 0
    c = _raster(5, 3, [])  # silent -> no_spike
    batch = jnp.stack([a, b, c], axis=1)  # [T, B, C]
    assert enc.count_decode(batch).tolist() == [2, 0, -1]
    assert enc.count_decode(batch, no_spike=3).tolist() == [2, 0, 3]
    np.testing.assert_array_equal(enc.spike_count(a), [1, 1, 2])
    np.testing.assert_allclose(enc.rate_decode(a), [0.2, 0.2, 0.4])
    np.testing.assert_allclose(enc.rate_decode(a, dt=1e-3), [200.0, 200.0, 400.0], rtol=1e-6)
    with pytest.raises(ValueError, match="spikes must have rank >= 2"):
        enc.count_decode(jnp.zeros((5,), dtype=jnp.float32))


def test_first_spike_decode():
    a = _raster(6, 3, [(3, 0), (1, 2), (4, 1), (5, 2)])  # first times 3, 4, 1 -> 2
    b = _raster(6, 3, [(2, 0), (2, 1), (3, 1)])  # tie at t=2 between 0 and 1; class 1 has more spikes
    c = _raster(6, 3, [])
    batch = jnp.stack([a, b, c], axis=1)
    assert enc.first_spike_times(a).tolist() == [3, 4, 1]
    assert enc.first_spike_times(c).tolist() == [6, 6, 6]
    assert enc.first_spike_decode(batch).tolist() == [2, 0, -1]
    assert enc.first_spike_decode(batch, tie_break="count").tolist() == [2, 1, -1]
    assert jax.jit(partial(enc.first_spike_decode, tie_break="count"))(batch).tolist() == [2, 1, -1]
    with pytest.raises(ValueError, match="tie_break"):
        enc.first_spike_decode(batch, tie_break="random")


def test_membrane_decode():
    v = jnp.array([[0.0, 0.0, 0.0], [0.9, 0.2, 0.5], [0.1, 0.3, 0.5], [0.1, 0.4, 0.3]], dtype=jnp.float32)
    # max over time: 0.9, 0.4, 0.5 -> 0; last: 0.1, 0.4, 0.3 -> 1; mean: 0.275, 0.225, 0.325 -> 2
    assert int(enc.membrane_decode(v, "max")) == 0
    assert int(enc.membrane_decode(v, "last")) == 1
    assert int(enc.membrane_decode(v, "mean")) == 2
    np.testing.assert_allclose(enc.membrane_readout(v, "mean"), [0.275, 0.225, 0.325], rtol=1e-6)
    with pytest.raises(ValueError, match="reduce"):
        enc.membrane_decode(v, "min")


# --------------------------------------------------------------------------------------------
# N-hot population code
# --------------------------------------------------------------------------------------------


def test_nhot_decode_hand_built():
    K = jnp.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=jnp.float32)
    y = jnp.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=jnp.float32)
    # scores (2y-1)(2K-1)^T: [4,-4], [-4,4], [-2,2], [0,0] (tie -> 0), [0,0] (tie -> 0)
    np.testing.assert_array_equal(enc.nhot_scores(y, K), [[4, -4], [-4, 4], [-2, 2], [0, 0], [0, 0]])
    assert enc.nhot_decode(y, K).tolist() == [0, 1, 1, 0, 0]
    assert enc.nhot_decode(y.astype(jnp.bool_), K.astype(jnp.int32)).tolist() == [0, 1, 1, 0, 0]
    # three classes, overlapping codes
    K3 = jnp.array([[1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1]], dtype=jnp.float32)
    y3 = jnp.array([0, 1, 1, 0, 0, 0], dtype=jnp.float32)
    assert int(enc.nhot_decode(y3, K3)) == 1
    np.testing.assert_array_equal(enc.nhot_targets(jnp.array([2, 0]), K3), K3[jnp.array([2, 0])])
    with pytest.raises(ValueError, match="y's last axis"):
        enc.nhot_decode(jnp.zeros((3,), dtype=jnp.float32), K)
    with pytest.raises(ValueError, match="key_matrix must be"):
        enc.nhot_decode(y, K[0])
    with pytest.raises(ValueError, match="only 0 and 1"):
        enc.nhot_decode(y, 2.0 * K)
    with pytest.raises(ValueError, match="labels must lie"):
        enc.nhot_targets(jnp.array([2]), K)


def test_nhot_key(key):
    K = enc.nhot_key(key, 10, 100, overlapping=False)
    assert K.shape == (10, 100) and K.dtype == jnp.float32
    assert np.asarray(jnp.sum(K, axis=1)).tolist() == [10] * 10
    assert float(jnp.max(jnp.sum(K, axis=0))) == 1.0  # disjoint
    # a clean code decodes to its own class
    assert enc.nhot_decode(K, K).tolist() == list(range(10))
    K = jax.jit(enc.nhot_key, static_argnums=(1, 2, 3))(key, 10, 47, True)
    assert np.asarray(jnp.sum(K, axis=1)).tolist() == [4] * 10
    assert set(np.unique(np.asarray(K)).tolist()) == {0.0, 1.0}
    K2 = enc.nhot_key(key, 3, 3, overlapping=False)
    np.testing.assert_array_equal(jnp.sort(jnp.argmax(K2, axis=1)), [0, 1, 2])
    with pytest.raises(ValueError, match=r"width \(5\) must be >= num_classes \(10\)"):
        enc.nhot_key(key, 10, 5)
    with pytest.raises(ValueError, match="num_classes"):
        enc.nhot_key(key, 0, 5)


def test_encoders_jit_and_vmap(key):
    x = jax.random.uniform(key, (4, 8, 8), dtype=jnp.float32)
    keys = jax.random.split(key, 4)
    s = jax.vmap(lambda k, xi: enc.rate(k, xi, 7))(keys, x)  # vmap over the batch: [B, T, ...]
    assert s.shape == (4, 7, 8, 8)
    lat = jax.jit(lambda xi: enc.latency(xi, 9, "log"))(x)
    assert lat.shape == (9, 4, 8, 8)
    assert jax.jit(lambda xi: enc.direct(enc.contour(xi), 3))(x).shape == (3, 4, 8, 8)
