"""Integer weights (rounding, MIP, branch and bound + backprop), layer-by-layer MLPs, the
fixed-point export, and the Design Index."""

import functools
import math

import jax.numpy as jnp
import numpy as np
import pytest

from spikejax.fixed_point import OFF, FixedPointLIF, fixed_dense
from spikejax.integer import (
    IntegerLayer,
    accuracy,
    bnb_layer,
    brute_force_layer,
    choose_scale,
    fixed_point_forward,
    integerize_mlp,
    layer_objective,
    mip_layer,
    mlp_forward,
    round_layer,
    weight_range,
)
from spikejax.metrics import DesignIndex, accuracy_index, design_index, overfitting_index

# ---------------------------------------------------------------------------------------------
# helpers


def tiny_problem(seed, n_in=2, k=2, n=30, noise=0.8):
    """A small linearly inseparable classification problem with a float 'trained' layer."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_in, k))
    b = 0.3 * rng.normal(size=k)
    x = rng.normal(size=(n, n_in))
    y = np.argmax(x @ w + b + noise * rng.normal(size=(n, k)), axis=1)
    return w, b, x, y


# 2 inputs x 2 classes + 2 biases = 6 integer variables in [-2, 2]: 5**6 = 15625 assignments
SMALL = dict(lo=-2, hi=2, bias_range=(-2, 2), scale=0.7, radius=None, keep="all")
GD = dict(gd_steps=60, lr=0.1)


@functools.lru_cache(maxsize=None)
def _digits_logreg():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    x = d.data / 16.0
    y = d.target.astype(np.int64)
    clf = LogisticRegression(max_iter=300, C=1.0).fit(x[:1200], y[:1200])
    return clf.coef_.T.copy(), clf.intercept_.copy(), x, y


def digits_logreg():
    return tuple(a.copy() for a in _digits_logreg())


# ---------------------------------------------------------------------------------------------
# ranges, rounding, scale


def test_weight_range():
    assert weight_range(2) == (-2, 1)
    assert weight_range(4) == (-8, 7)
    assert weight_range(8) == (-128, 127)
    for bad in (1, 33, 4.0, True, "4"):
        with pytest.raises(ValueError, match="bits"):
            weight_range(bad)


def test_round_layer_by_hand():
    w = np.array([[0.4, -1.6], [2.6, 0.5]])
    b = np.array([1.5, -40.0])
    r = round_layer(w, b, lo=-2, hi=2, scale=1.0, bias_range=(-30, 30))
    np.testing.assert_array_equal(r.layer.w, [[0, -2], [2, 0]])  # 2.6 -> 3 -> clipped; 0.5 -> 0 (half to even)
    np.testing.assert_array_equal(r.layer.b, [2, -30])
    assert r.layer.w.dtype == np.int32 and r.status == "rounded"
    w2, b2 = IntegerLayer(r.layer.w, r.layer.b, 0.5, -2, 2).dequantize()
    np.testing.assert_allclose(w2, [[0, -1], [1, 0]])
    np.testing.assert_allclose(b2, [1, -15])


def test_choose_scale_is_a_grid_value_and_never_worse_than_maxabs():
    w, b, x, y = digits_logreg()
    lo, hi = weight_range(3)
    s = choose_scale(w, b, x, y, lo=lo, hi=hi)
    base = max(np.abs(w).max(), np.abs(b).max()) / max(-lo, hi)
    k = -4 * math.log2(s / base)
    assert abs(k - round(k)) < 1e-9 and 0 <= round(k) < 24
    err = lambda sc: 1 - accuracy(round_layer(w, b, lo=lo, hi=hi, scale=sc).layer, x, y)  # noqa: E731
    assert err(s) <= err(base) + 1e-12


# ---------------------------------------------------------------------------------------------
# exactness against exhaustive search


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mip_and_bnb_hinge_equal_exhaustive_optimum(x64, seed):
    w, b, x, y = tiny_problem(seed)
    bf = brute_force_layer(w, b, x, y, objective="hinge", **SMALL)
    assert bf.nodes == 5**6
    mp = mip_layer(w, b, x, y, objective="hinge", decompose="none", max_gap=0.0, **SMALL)
    bb = bnb_layer(w, b, x, y, objective="hinge", **GD, **SMALL)
    assert mp.status == "optimal" and bb.status == "optimal"
    assert mp.value == pytest.approx(bf.value, abs=1e-9)
    assert bb.value == pytest.approx(bf.value, abs=1e-9)
    # the reported values are the objective of the returned weights
    for r in (mp, bb):
        assert layer_objective(r.layer, x, y, objective="hinge") == pytest.approx(r.value, abs=1e-12)
        assert r.value <= r.round_value + 1e-12
        assert r.bound <= r.value + 1e-9
        assert np.all((r.layer.w >= -2) & (r.layer.w <= 2)) and np.all(np.abs(r.layer.b) <= 2)
    assert mp.bound == pytest.approx(bf.value, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_mip_and_bnb_l1relu_equal_exhaustive_optimum(x64, seed):
    w, b, x, _ = tiny_problem(seed, n=20)
    t = x @ w + b + 0.3 * np.random.default_rng(seed + 10).normal(size=(20, 2))  # targets off the grid
    kw = dict(SMALL, objective="l1relu", targets=t)
    bf = brute_force_layer(w, b, x, **kw)
    mp = mip_layer(w, b, x, max_gap=0.0, **kw)
    bb = bnb_layer(w, b, x, **GD, **kw)
    assert mp.status == "optimal" and bb.status == "optimal"
    assert mp.info["decompose"] == "column"
    assert mp.value == pytest.approx(bf.value, abs=1e-9)
    assert bb.value == pytest.approx(bf.value, abs=1e-9)


@pytest.mark.parametrize("seed", [2, 3])
def test_bnb_cross_entropy_equals_exhaustive_optimum(x64, seed):
    w, b, x, y = tiny_problem(seed)
    bf = brute_force_layer(w, b, x, y, objective="xent", **SMALL)
    bb = bnb_layer(w, b, x, y, objective="xent", branching="gradient", **GD, **SMALL)
    assert bb.status == "optimal"
    assert bb.value == pytest.approx(bf.value, abs=1e-9)
    assert bb.value < bb.round_value  # rounding is not optimal here, the search improved on it


def test_floor_ceil_box_equals_exhaustive(x64):
    """radius=0: every weight is floor or ceil of its scaled float value (seed's rounding decisions)."""
    w, b, x, y = tiny_problem(5, n_in=3, k=2, n=40)  # 6 weights + 2 biases, 2**8 assignments
    kw = dict(lo=-4, hi=3, bias_range=(-4, 3), scale=0.4, radius=0, keep="correct")
    bf = brute_force_layer(w, b, x, y, objective="hinge", **kw)
    assert bf.nodes <= 2**8
    mp = mip_layer(w, b, x, y, objective="hinge", decompose="none", max_gap=0.0, **kw)
    bb = bnb_layer(w, b, x, y, objective="hinge", **GD, **kw)
    assert mp.value == pytest.approx(bf.value, abs=1e-9) and bb.value == pytest.approx(bf.value, abs=1e-9)
    v = np.clip(np.concatenate([w, b[None]]) / 0.4, -4, 3)
    got = np.concatenate([bb.layer.w, bb.layer.b[None]]).astype(float)
    assert np.all((got == np.floor(v)) | (got == np.ceil(v)))


def test_class_decomposition_and_grouped_bnb_are_honest(x64):
    w, b, x, y = tiny_problem(1, n_in=1, k=3, n=40)  # 3 weights + 3 biases
    kw = dict(lo=-2, hi=2, bias_range=(-2, 2), scale=0.7, radius=None, keep="all")
    bf = brute_force_layer(w, b, x, y, objective="hinge", **kw)
    mc = mip_layer(w, b, x, y, objective="hinge", decompose="class", max_gap=0.0, **kw)
    assert mc.info["decompose"] == "class"
    assert mc.status in ("block_optimal", "time_limit")  # never claims a global optimum
    assert math.isnan(mc.bound)
    assert bf.value - 1e-9 <= mc.value <= mc.round_value + 1e-12
    bg = bnb_layer(w, b, x, y, objective="hinge", group_size=3, **GD, **kw)
    assert bg.status == "tree_exhausted"
    assert bf.value - 1e-9 <= bg.value <= bg.round_value + 1e-12
    assert bg.bound <= bf.value + 1e-6  # the root bound is a valid global bound


# ---------------------------------------------------------------------------------------------
# limits: best known solution, honest status


def test_mip_time_limit_returns_best_known_with_status():
    w, b, x, y = digits_logreg()
    r = mip_layer(w, b, x[:1000], y[:1000], lo=-2, hi=1, time_limit=0.2, radius=None)
    assert r.status == "time_limit"
    assert r.info["decompose"] == "class"
    assert r.value <= r.round_value + 1e-12
    assert layer_objective(r.layer, x[:1000], y[:1000], objective="hinge", keep="correct", w=w, b=b) == pytest.approx(r.value, abs=1e-9)
    assert r.layer.w.min() >= -2 and r.layer.w.max() <= 1


def test_bnb_node_and_time_limits_return_best_known_with_status(x64):
    w, b, x, y = tiny_problem(0)
    bf = brute_force_layer(w, b, x, y, objective="hinge", **SMALL)
    r = bnb_layer(w, b, x, y, objective="hinge", node_limit=3, **GD, **SMALL)
    assert r.status == "node_limit" and r.nodes == 3
    assert r.value <= r.round_value + 1e-12
    assert r.bound <= bf.value + 1e-9 <= r.value + 2e-9  # valid bound, value is a real solution
    assert layer_objective(r.layer, x, y, objective="hinge") == pytest.approx(r.value, abs=1e-12)
    r2 = bnb_layer(w, b, x, y, objective="hinge", time_limit=1e-9, **GD, **SMALL)
    assert r2.status == "time_limit" and r2.nodes == 0
    assert r2.value == r2.round_value  # nothing searched: the rounding, said so by the status


# ---------------------------------------------------------------------------------------------
# masks, bad input


def test_mask_keeps_absent_synapses_at_zero(x64):
    w, b, x, y = tiny_problem(2, n_in=3, k=2)
    mask = np.array([[True, False], [True, True], [False, True]])
    for r in (
        mip_layer(w, b, x, y, mask=mask, decompose="none", **SMALL),
        bnb_layer(w, b, x, y, mask=mask, **GD, **SMALL),
    ):
        assert np.all(r.layer.w[~mask] == 0)


def test_bad_input_errors():
    w, b, x, y = tiny_problem(0)
    with pytest.raises(ValueError, match=r"empty \(lo > hi\)"):
        mip_layer(w, b, x, y, lo=2, hi=-2)
    with pytest.raises(ValueError, match=r"empty \(lo > hi\)"):
        bnb_layer(w, b, x, y, lo=1, hi=0)
    with pytest.raises(ValueError, match="bias range"):
        round_layer(w, b, x, y, lo=-2, hi=2, bias_range=(3, -3))
    with pytest.raises(ValueError, match="excludes 0"):
        bnb_layer(w, b, x, y, lo=1, hi=3, mask=np.array([[True, False], [True, True]]))
    # a range without 0 is fine when no weight has to be 0
    assert np.all(round_layer(w, b, x, y, lo=1, hi=3).layer.w >= 1)
    with pytest.raises(ValueError, match="no weights"):
        mip_layer(np.zeros((0, 2)), None, np.zeros((3, 0)), y[:3], lo=-2, hi=2)
    with pytest.raises(ValueError, match="no weights"):
        bnb_layer(None, None, x, y, lo=-2, hi=2)
    with pytest.raises(ValueError, match="no weights"):
        integerize_mlp([], x, y, lo=-2, hi=2)
    for t in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="time_limit"):
            mip_layer(w, b, x, y, lo=-2, hi=2, time_limit=t)
        with pytest.raises(ValueError, match="time_limit"):
            bnb_layer(w, b, x, y, lo=-2, hi=2, time_limit=t)
    with pytest.raises(ValueError, match="time_limit"):
        integerize_mlp([(w, b)], x, y, lo=-2, hi=2, method="mip", time_limit=0)
    with pytest.raises(ValueError, match="xent"):
        mip_layer(w, b, x, y, lo=-2, hi=2, objective="xent")
    with pytest.raises(ValueError, match="labels"):
        mip_layer(w, b, x, y + 5, lo=-2, hi=2)
    with pytest.raises(ValueError, match="lo=2.5"):
        round_layer(w, b, x, y, lo=2.5, hi=4)


# ---------------------------------------------------------------------------------------------
# layer by layer, fixed-point export


def digits_mlp():
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    d = load_digits()
    x = d.data / 16.0
    y = d.target.astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=400, random_state=0).fit(x[:1200], y[:1200])
    layers = [(clf.coefs_[0], clf.intercepts_[0]), (clf.coefs_[1], clf.intercepts_[1])]
    return layers, x, y, np.rint(d.data).astype(np.int32)


def float_mlp(layers, x):
    h = np.maximum(x @ layers[0][0] + layers[0][1], 0)
    return h @ layers[1][0] + layers[1][1]


@pytest.mark.parametrize("method", ["round", "mip", "bnb"])
def test_integerize_mlp_layer_by_layer_and_fixed_point(method):
    layers, x, y, x_int = digits_mlp()
    xtr, ytr, xte, yte = x[:600], y[:600], x[1200:], y[1200:]
    float_acc = float(np.mean(np.argmax(float_mlp(layers, xte), 1) == yte))
    opts = {"bnb_options": {"group_size": 64, "gd_steps": 10}} if method == "bnb" else {}
    L, R = integerize_mlp(layers, xtr, ytr, lo=-128, hi=127, method=method, input_unit=16, time_limit=4.0, **opts)
    assert [r.objective for r in R] == ["l1relu", "xent" if method == "bnb" else "hinge"]
    assert L[0].input_unit == 16 and L[1].input_unit == max(1, round(16 / L[0].scale))
    for r in R:
        assert r.value <= r.round_value + 1e-9
    acc = accuracy(L, xte, yte)
    assert acc >= float_acc - 0.03  # 8-bit weights: close to the float network
    # exact int32 fixed-point path == dequantised path (same argmax; logits proportional)
    z_fixed = np.asarray(fixed_point_forward(L, x_int[1200:]))
    z_float = mlp_forward(L, xte)
    np.testing.assert_array_equal(np.argmax(z_fixed, 1), np.argmax(z_float, 1))
    ratio = L[1].input_unit / L[1].scale
    np.testing.assert_allclose(z_fixed, z_float * ratio, rtol=1e-9, atol=1e-6 * np.abs(z_fixed).max())


def test_single_layer_runs_on_fixed_point_lif_integrator():
    """An exported logistic-regression layer in the spikejax fixed-point mode: a non-leaky
    FixedPointLIF (leak OFF, no spikes) with bias b_int, driven by fixed_dense(w_int, spikes_t),
    integrates exactly counts @ w_int + T * b_int over T ticks."""
    w, b, x, y = digits_logreg()
    r = round_layer(w, b, x, y, lo=-8, hi=7)
    layer = r.layer._replace(input_unit=8)
    rng = np.random.default_rng(0)
    T = 8
    spikes = (rng.random((T, 5, 64)) < x[None, :5]).astype(np.int32)  # Bernoulli rate code
    lif = FixedPointLIF(synaptic_delay=0)
    p = FixedPointLIF.params(bits=32, leak_shift=OFF, v_th=2**31 - 1, v_reset=0, bias=jnp.asarray(layer.b), reset="none", acm_bits=32)
    st = lif.init(p, (5, 10))
    for t in range(T):
        st, z = lif.step(p, st, fixed_dense(jnp.asarray(layer.w), jnp.asarray(spikes[t])))
        assert not np.any(np.asarray(z))
    counts = spikes.sum(0)
    expected = counts.astype(np.int64) @ layer.w.astype(np.int64) + T * layer.b.astype(np.int64)
    np.testing.assert_array_equal(np.asarray(st.v), expected)
    out = fixed_point_forward([layer._replace(input_unit=T)], counts.astype(np.int32))
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_fixed_point_forward_refuses_possible_overflow():
    layer = IntegerLayer(np.full((4, 2), 127, np.int32), np.zeros(2, np.int32), 1.0, -128, 127, 1)
    with pytest.raises(ValueError, match="overflow"):
        fixed_point_forward([layer], np.full((1, 4), 2**24, np.int32))


# ---------------------------------------------------------------------------------------------
# Design Index


def test_design_index_hand_values():
    assert accuracy_index(0.1, 0.01) == pytest.approx(1.0)
    assert overfitting_index(0.02, 0.01) == pytest.approx(math.log10(2.0))
    assert overfitting_index(0.01, 0.01) == 0.0
    d = design_index(e_t=0.05, e_v=0.08, e_p=0.025)
    assert isinstance(d, DesignIndex)
    assert d.accuracy == pytest.approx(math.log10(0.5))  # -0.30103: training error above threshold
    assert d.overfitting == pytest.approx(math.log10(1.6))  # 0.20412
    a = accuracy_index(np.array([0.1, 1.0]), np.array([0.1, 0.01]))
    np.testing.assert_allclose(a, [0.0, 2.0])


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf"), "x"])
def test_design_index_rejects_non_positive_errors(bad):
    with pytest.raises(ValueError, match="e_t"):
        accuracy_index(0.1, bad)
    with pytest.raises(ValueError, match="e_v"):
        overfitting_index(bad, 0.1)
    with pytest.raises(ValueError, match="e_p"):
        design_index(0.1, 0.1, bad)
