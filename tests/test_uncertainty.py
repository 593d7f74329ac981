"""Permanent dropout (masks, vmapped samples, summaries) and the KS agreement machinery."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from spikejax.nn import init_mlp
from spikejax.softlif import RateNet, SoftLIF, convert, mlp_apply
from spikejax.uncertainty import (
    dropout_mask,
    ks_2samp_tails,
    ks_agreement,
    ks_max_null,
    ks_randomized_pvalues,
    ks_statistics,
    permanent_dropout_samples,
    predictive_summary,
    sample_masks,
    summary_tsv,
    write_summary_tsv,
)
from spikejax.uncertainty import _pd_samples


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_dropout_keeps_expected_fraction_and_preserves_mean(key, rate):
    m = np.asarray(dropout_mask(key, (200_000,), rate))
    kept = m > 0
    n = m.size
    sd = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1 - rate)) <= 5 * sd + 1e-12
    np.testing.assert_allclose(m[kept], 1.0 / (1.0 - rate), rtol=1e-6)
    assert abs(m.mean() - 1.0) <= 5 * sd / (1 - rate) + 1e-12
    # mean of a dropped-out activation equals the activation
    h = jnp.linspace(0.1, 2.0, 50)
    hm = np.asarray(h[None] * dropout_mask(key, (20_000, 50), rate), np.float64)
    np.testing.assert_allclose(hm.mean(0), np.asarray(h), rtol=5 * np.sqrt(rate / (1 - rate) / 20_000) + 1e-6)


def test_permanent_dropout_samples_one_call_and_reproducible(key):
    act = SoftLIF()
    layers = tuple(init_mlp(key, [5, 16, 16, 1]))
    x = jax.random.normal(key, (7, 5))
    net = RateNet(act)
    before = _pd_samples._cache_size()
    s = permanent_dropout_samples(net, layers, x, key, sizes=(16, 16), rate=0.3, n_samples=40)
    s2 = permanent_dropout_samples(net, layers, x, key, sizes=(16, 16), rate=0.3, n_samples=40)
    assert _pd_samples._cache_size() == before + 1  # one compiled program, reused
    assert s.shape == (40, 7, 1)
    np.testing.assert_array_equal(np.asarray(s), np.asarray(s2))
    # sample i is the network with the masks drawn from split(key, N)[i]
    k3 = jax.random.split(key, 40)[3]
    ks = jax.random.split(k3, 2)
    masks = tuple(dropout_mask(kk, (16,), 0.3) for kk in ks)
    np.testing.assert_allclose(np.asarray(s[3]), np.asarray(mlp_apply(layers, x, act, masks)), rtol=1e-6)
    # samples differ (dropout is on) and rate 0 gives the deterministic network N times
    assert float(jnp.std(s, axis=0).mean()) > 0
    s0 = permanent_dropout_samples(net, layers, x, key, sizes=(16, 16), rate=0.0, n_samples=3)
    np.testing.assert_allclose(np.asarray(s0), np.broadcast_to(np.asarray(mlp_apply(layers, x, act)), s0.shape), rtol=1e-5, atol=1e-6)


def _masks_only(params, x, masks):
    return jnp.broadcast_to(masks[0], x.shape[:-1] + masks[0].shape[-1:])


def test_shared_vs_per_observation_masks(key):
    x = jnp.zeros((6, 2))
    shared = np.asarray(permanent_dropout_samples(_masks_only, None, x, key, sizes=(32,), rate=0.5, n_samples=4))
    per_obs = np.asarray(
        permanent_dropout_samples(_masks_only, None, x, key, sizes=(32,), rate=0.5, n_samples=4, per_observation=True)
    )
    assert np.all(shared == shared[:, :1])  # one mask per model sample
    assert not np.all(per_obs == per_obs[:, :1])  # a fresh mask per observation


def test_sample_masks_shapes(key):
    ms = sample_masks(key, [3, 5], 0.2, 10, batch_shape=(4,))
    assert [m.shape for m in ms] == [(10, 4, 3), (10, 4, 5)]


def test_spiking_permanent_dropout_matches_dnn_distribution(key):
    """The converted network under permanent dropout reproduces the DNN's per-sample outputs
    when both use the same masks (small error relative to the dropout spread)."""
    act = SoftLIF(amplitude=0.01)
    layers = [l._replace(w=l.w * 3.0, b=l.b + 0.3) for l in init_mlp(key, [4, 24, 1])]
    layers = tuple(layers)
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 4))
    k = jax.random.PRNGKey(7)
    kw = dict(sizes=(24,), rate=0.2, n_samples=16, per_observation=True)
    dnn = np.asarray(permanent_dropout_samples(RateNet(act.hard()), layers, x, k, **kw))
    snn = np.asarray(permanent_dropout_samples(convert(layers, act, synapse=("lowpass", 0.01), dt=1e-4).apply_fn(0.5, 0.05), layers, x, k, **kw))
    err = np.sqrt(np.mean((snn - dnn) ** 2))
    assert err < 0.15 * dnn.std(0).mean()


def test_predictive_summary_and_tsv(tmp_path):
    rng = np.random.default_rng(0)
    s = rng.normal(size=(100, 5))
    summ = predictive_summary(s)
    np.testing.assert_allclose(summ["std"], s.std(0))  # ddof = 0, as CANDLE's infer.py
    text = summary_tsv(s, [f"obs{i}" for i in range(5)])
    lines = text.strip().split("\n")
    assert lines[0].split("\t") == ["Sample", "N", "PredMean", "PredStd", "PredMin", "PredMax"]
    row = lines[2].split("\t")
    assert row[0] == "obs1" and row[1] == "100"
    np.testing.assert_allclose([float(v) for v in row[2:]], [s[:, 1].mean(), s[:, 1].std(), s[:, 1].min(), s[:, 1].max()], atol=5e-5)
    p = write_summary_tsv(tmp_path / "summary.tsv", s[..., None])
    assert p.read_text() == summary_tsv(s)
    assert not list(tmp_path.glob(".*tmp"))


def test_ks_statistics_match_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 40))
    b = rng.normal(0.3, 1.2, size=(30, 55))
    a[:, :5] = np.round(a[:, :5], 1)  # some ties
    b[:, :5] = np.round(b[:, :5], 1)
    d = ks_statistics(a, b)
    ref = [stats.ks_2samp(a[i], b[i]).statistic for i in range(30)]
    np.testing.assert_allclose(d, ref, rtol=1e-12)


def test_ks_agreement_uniform_under_null_and_rejects_different():
    rng = np.random.default_rng(2)
    K, N = 300, 100
    a = rng.normal(size=(N, K))
    b = rng.normal(size=(N, K))
    res = ks_agreement(a, b, n_null=500)
    assert res.uniformity_pvalue > 1e-3
    assert 0.0 <= np.mean(res.pvalues < 0.05) <= 0.1
    assert res.max_pvalue_sim > 0.01 and res.max_pvalue_exact > 0.01
    # a 1.3x scale change and a small shift are both detected
    for c in [rng.normal(size=(N, K)) * 1.3, rng.normal(0.25, 1.0, size=(N, K))]:
        bad = ks_agreement(a, c, n_null=500)
        assert bad.uniformity_pvalue < 1e-6
    far = ks_agreement(a, a + 1.0, n_null=500)
    assert far.max_statistic > far.max_null_quantiles["99"] and far.max_pvalue_exact < 1e-6


@pytest.mark.parametrize("n,m", [(100, 100), (30, 45), (7, 13)])
def test_exact_ks_tails_match_scipy(n, m):
    rng = np.random.default_rng(n + m)
    for shift in [0.0, 0.3, 0.8]:
        a, b = rng.normal(size=n), rng.normal(shift, size=m)
        r = stats.ks_2samp(a, b, method="exact")
        gt, ge = ks_2samp_tails(n, m, int(np.rint(r.statistic * n * m)))
        assert ge == pytest.approx(r.pvalue, rel=1e-9, abs=1e-14)
        assert gt < ge


def test_randomized_pvalues_are_uniform_but_scipy_pvalues_are_discrete():
    """Under the null the randomised p-values pass a uniformity test over many observations,
    while scipy's discrete exact p-values (n = m = 100: D on a 1/100 lattice) are detected."""
    rng = np.random.default_rng(5)
    K, n = 2000, 100
    d = ks_statistics(rng.random((K, n)), rng.random((K, n)))
    p = ks_randomized_pvalues(d, n, n, seed=1)
    assert stats.kstest(p, "uniform").pvalue > 1e-3
    p_scipy = np.array([ks_2samp_tails(n, n, int(np.rint(v * n * n)))[1] for v in d])
    assert stats.kstest(p_scipy, "uniform").pvalue < 1e-6


def test_uniformity_test_is_calibrated_over_repeats():
    rng = np.random.default_rng(11)
    pv = [ks_agreement(rng.normal(size=(50, 100)), rng.normal(size=(50, 100)), n_null=50, seed=i).uniformity_pvalue
          for i in range(40)]
    assert np.mean(np.asarray(pv) < 0.05) <= 0.2


def test_ks_max_null_matches_exact_tail():
    """P(max over K of D >= d) from simulation vs 1 - (1 - P(D >= d))^K with scipy's exact P."""
    n, K = 50, 20
    null = ks_max_null(n, n, K, n_sim=4000, seed=3)
    d = 0.28  # = 14/50, a lattice value of D
    rng = np.random.default_rng(0)
    # find a pair with exactly this statistic to read scipy's exact tail P(D >= d)
    a = np.arange(n, dtype=float)
    b = a + 14.0 - 0.5
    assert stats.ks_2samp(a, b).statistic == pytest.approx(d)
    p1 = stats.ks_2samp(a, b, method="exact").pvalue
    exact = 1 - (1 - p1) ** K
    sim = np.mean(null >= d - 1e-12)
    assert abs(sim - exact) < 4 * np.sqrt(exact * (1 - exact) / len(null)) + 1e-3
    del rng


def test_bad_inputs(key):
    for rate in [-0.1, 1.0, 1.5, float("nan")]:
        with pytest.raises(ValueError, match=r"dropout rate must lie in \[0, 1\)"):
            dropout_mask(key, (3,), rate)
        with pytest.raises(ValueError, match="dropout rate"):
            permanent_dropout_samples(_masks_only, None, jnp.zeros((2, 2)), key, sizes=(3,), rate=rate, n_samples=5)
    for n in [1, 0, -3, 2.5, True]:
        with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
            permanent_dropout_samples(_masks_only, None, jnp.zeros((2, 2)), key, sizes=(3,), rate=0.1, n_samples=n)
    with pytest.raises(ValueError, match="number of samples in a"):
        ks_agreement(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="same observations"):
        ks_agreement(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        ks_agreement(np.full((5, 4), np.nan), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="number of samples"):
        predictive_summary(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        summary_tsv(np.zeros((3, 2, 2)))
