"""eRBP / peRBP: direction of the update against the true gradient (rate version), the boxcar gate,
blank-out gating of updates, online learning with batch size 1, SynOps accounting, input checks,
and the non-spiking baselines."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import erbp
from spikejax.erbp import ERBPConfig, ERBPParams
from spikejax.plasticity import cosine
from spikejax.synops import (
    accuracy_vs_synops,
    count_synops,
    decide,
    earliest_decision,
    energy_joules,
    first_spike_steps,
    mac_count,
    synops_per_step,
    synops_until_first_spike,
)

# ---------------------------------------------------------------------------------------------
# Direction of the eRBP update (spikes replaced by rates)


def _rate_problem(key, sizes=(12, 9, 4), batch=32):
    cfg = ERBPConfig(sizes=sizes, lr=1.0)
    k1, k2, k3 = jax.random.split(key, 3)
    params = erbp.init_erbp(k1, cfg)
    # small weights keep every current inside the gate, where the clip network is differentiable
    params = ERBPParams(tuple(0.3 * w for w in params.w), params.g)
    x = jax.random.uniform(k2, (batch, sizes[0]), jnp.float32)
    target = jax.nn.one_hot(jax.random.randint(k3, (batch,), 0, sizes[-1]), sizes[-1], dtype=jnp.float32)
    return cfg, params, x, target


def _true_neg_gradient(cfg, ws, x, target):
    """-dL/dW of L = 1/2 sum (target - y)^2 for y = clip(clip(x W1) W2), written independently."""
    lo, hi = cfg.gate

    def loss(ws):
        h = x
        for w in ws:
            h = jnp.clip(h @ w, lo, hi)
        return 0.5 * jnp.sum((target - h) ** 2)

    return jax.tree_util.tree_map(lambda g: -g, jax.grad(loss)(ws))


def test_rate_erbp_with_transposed_feedback_follows_the_gradient(key):
    cfg, params, x, target = _rate_problem(key)
    _, currents = erbp.rate_forward(cfg, params, x)
    assert all(float(jnp.max(jnp.abs(a))) < cfg.gate[1] for a in currents)
    exact = ERBPParams(params.w, (params.w[1].T,))  # G = W_out^T: eRBP becomes back-propagation
    upd = erbp.rate_updates(cfg, exact, x, target)
    grad = _true_neg_gradient(cfg, params.w, x, target)
    assert float(cosine(upd, grad)) > 0.999
    assert float(cosine(upd[0], grad[0])) > 0.999  # hidden layer too
    np.testing.assert_allclose(np.asarray(upd[1]), np.asarray(grad[1]), rtol=1e-4, atol=1e-6)


def test_rate_erbp_with_random_feedback_is_positive_but_smaller(key):
    cfg, params, x, target = _rate_problem(key)
    grad = _true_neg_gradient(cfg, params.w, x, target)
    exact = float(cosine(erbp.rate_updates(cfg, ERBPParams(params.w, (params.w[1].T,)), x, target), grad))
    cos = []
    for s in range(8):
        g = erbp.centred_feedback(jax.random.uniform(jax.random.PRNGKey(100 + s), (4, 9), jnp.float32, -1, 1))
        cos.append(float(cosine(erbp.rate_updates(cfg, ERBPParams(params.w, (g,)), x, target), grad)))
    assert all(0.0 < c < exact - 1e-3 for c in cos), cos


def test_rate_activation_is_a_saturating_rate_and_follows_its_gradient_inside_it(key):
    cfg, params, x, target = _rate_problem(key)
    # positive weights on positive inputs: every current inside (0, 1), where clip(a, 0, 1) = a
    params = ERBPParams(tuple(jnp.abs(w) / w.shape[0] for w in params.w), params.g)
    rates, currents = erbp.rate_forward(cfg, params, x, "rate")
    assert all(0.0 < float(jnp.min(a)) and float(jnp.max(a)) < 1.0 for a in currents)
    # by hand outside (0, 1): a rate is zero below rest and saturates at 1
    big = ERBPParams(tuple(3.0 * w * w.shape[0] for w in params.w), params.g)
    r_big, a_big = erbp.rate_forward(cfg, big, x, "rate")
    np.testing.assert_array_equal(np.asarray(r_big[1]), np.clip(np.asarray(a_big[0]), 0.0, 1.0))
    assert float(jnp.max(r_big[1])) == 1.0

    def neg_grad(ws):
        def loss(ws):
            h = x
            for w in ws:
                h = jnp.clip(h @ w, 0.0, 1.0)
            return 0.5 * jnp.sum((target - h) ** 2)

        return jax.tree_util.tree_map(lambda g: -g, jax.grad(loss)(ws))

    upd = erbp.rate_updates(cfg, ERBPParams(params.w, (params.w[1].T,)), x, target, "rate")
    for u, g in zip(upd, neg_grad(params.w)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(g), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="activation"):
        erbp.rate_forward(cfg, params, x, "relu")


def _twin_problem(n=200, seed=0):
    x, y = _tiny_task(seed, n)
    cfg = ERBPConfig(sizes=(20, 16, 2), input_threshold=0.5)
    return cfg, erbp.init_erbp(jax.random.PRNGKey(0), cfg), x, y


def test_rate_twin_rule_step_is_the_summed_update_and_vmap_matches_single_runs():
    cfg, params, x, y = _twin_problem(n=50)
    # one epoch of one minibatch holding every digit: w1 = w0 + lr * dW, with dW computed by hand
    # (numpy) from the twin's input code (binary at input_rate * tau_syn = 1) and rate activation
    w = erbp.train_rate_twin(cfg, params, x, y, lrs=[0.01, 0.03], epochs=1, batch_size=50, key=jax.random.PRNGKey(1))
    xi = (np.asarray(x) > 0.5).astype(np.float32)
    w0, w1 = (np.asarray(a) for a in params.w)
    a1 = xi @ w0
    h = np.clip(a1, 0, 1)
    a2 = h @ w1
    e = np.eye(2, dtype=np.float32)[np.asarray(y)] - np.clip(a2, 0, 1)
    lo, hi = cfg.gate
    gate = lambda a: ((a > lo) & (a < hi)).astype(np.float32)
    d1 = xi.T @ (gate(a1) * (e @ np.asarray(params.g[0])))
    d2 = h.T @ (gate(a2) * e)
    for i, lr in enumerate([0.01, 0.03]):
        np.testing.assert_allclose(np.asarray(w[0][i]), w0 + lr * d1, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(w[1][i]), w1 + lr * d2, rtol=1e-5, atol=1e-6)
    # several epochs and minibatches: each learning rate of the vmapped program as if run alone
    many = erbp.train_rate_twin(cfg, params, x, y, lrs=[0.01, 0.03], epochs=3, batch_size=10, lr_decay=0.8, key=jax.random.PRNGKey(2))
    alone = erbp.train_rate_twin(cfg, params, x, y, lrs=[0.03], epochs=3, batch_size=10, lr_decay=0.8, key=jax.random.PRNGKey(2))
    for a, b in zip(many, alone):
        np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b[0]), rtol=1e-5, atol=1e-6)


def test_rate_twin_adam_first_step_is_lr_times_the_sign_of_the_update():
    # Adam's first step is lr * m / sqrt(v) = lr * sign(g) (bias-corrected, eps aside): the twin must
    # move each weight by lr in the direction of the rule's update dW, not against it
    cfg, params, x, y = _twin_problem(n=50)
    lr = 1e-3
    w = erbp.train_rate_twin(cfg, params, x, y, lrs=[lr], epochs=1, batch_size=50, key=jax.random.PRNGKey(1), optimizer="adam")
    dw = erbp.rate_updates(dataclasses.replace(cfg, lr=1.0), params, erbp.twin_input(cfg, x), jax.nn.one_hot(y, 2), "rate")
    for l in range(2):
        step = np.asarray(w[l][0]) - np.asarray(params.w[l])
        big = np.abs(np.asarray(dw[l])) > 1e-3
        assert big.sum() > 20
        np.testing.assert_allclose(step[big], lr * np.sign(np.asarray(dw[l]))[big], rtol=1e-3)


def test_rate_twin_learns_a_separable_task_and_refuses_bad_input():
    cfg, params, x, y = _twin_problem(n=400)
    xt, yt = _tiny_task(1, 400)
    before = erbp.twin_errors(cfg, params.w, xt, yt)
    w = erbp.train_rate_twin(cfg, params, x, y, lrs=[0.02], epochs=3, batch_size=10, key=jax.random.PRNGKey(3))
    after = erbp.twin_errors(cfg, tuple(a[0] for a in w), xt, yt)
    assert before > 20.0 and after < 3.0, (before, after)
    kw = dict(epochs=1, batch_size=10, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="lrs must be positive"):
        erbp.train_rate_twin(cfg, params, x, y, lrs=[], **kw)
    with pytest.raises(ValueError, match="lrs must be positive"):
        erbp.train_rate_twin(cfg, params, x, y, lrs=[0.1, -0.1], **kw)
    with pytest.raises(ValueError, match="optimizer"):
        erbp.train_rate_twin(cfg, params, x, y, lrs=[0.1], optimizer="sgd", **kw)
    with pytest.raises(ValueError, match=r"x must be \[n, 20\]"):
        erbp.train_rate_twin(cfg, params, x[:, :5], y, lrs=[0.1], **kw)
    with pytest.raises(ValueError, match="do not fill one minibatch"):
        erbp.train_rate_twin(cfg, params, x[:5], y[:5], lrs=[0.1], **kw)
    with pytest.raises(ValueError, match="no rate twin"):
        erbp.train_rate_twin(dataclasses.replace(cfg, input_code="srm0"), params, x, y, lrs=[0.1], **kw)


# ---------------------------------------------------------------------------------------------
# The spiking network


def _tiny_task(seed, n, n_in=20, flip=0.1):
    """Two noisy binary prototypes (linearly separable)."""
    rng = np.random.default_rng(seed)
    protos = np.array([[1] * 10 + [0] * 10, [0] * 10 + [1] * 10], np.float32)[:, np.random.default_rng(123).permutation(n_in)]
    y = rng.integers(0, 2, n).astype(np.int32)
    x = protos[y].copy()
    f = rng.random(x.shape) < flip
    x[f] = 1 - x[f]
    return jnp.asarray(x), jnp.asarray(y)


def test_tiny_net_learns_online_with_batch_size_one():
    x, y = _tiny_task(0, 200)
    xt, yt = _tiny_task(1, 200)
    cfg = ERBPConfig(sizes=(20, 16, 2), t_train=0.05, t_burnin=0.01, t_test=0.05, lr=5e-3)
    params = erbp.init_erbp(jax.random.PRNGKey(0), cfg)
    train = erbp.make_train_epoch(cfg, 200, batch_size=1)
    evaluate = erbp.make_evaluate(cfg, 200)
    before = erbp.evaluation_summary(evaluate(params, xt, yt, jax.random.PRNGKey(9)), evaluate.steps, cfg)["test_acc"]
    for e in range(2):
        params, _ = train(params, x, y, jax.random.PRNGKey(e))
    after = erbp.evaluation_summary(evaluate(params, xt, yt, jax.random.PRNGKey(9)), evaluate.steps, cfg)["test_acc"]
    assert before < 0.7 and after >= 0.95, (before, after)


def _single_step_setup(cfg, key, batch=2):
    """Weights, a state with dendrites and currents set by hand, and an input whose every pixel
    spikes at step 0 (regular code with phase 1 - p)."""
    params = erbp.init_erbp(key, cfg)
    st = erbp.init_state(cfg, batch)
    lay = list(st.layers)
    n_h = cfg.sizes[1]
    u = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, n_h, dtype=jnp.float32)[None, :], (batch, n_h)) + 0.01
    i = jnp.broadcast_to(jnp.linspace(-3.0, 3.0, n_h, dtype=jnp.float32)[None, :], (batch, n_h))
    lay[0] = lay[0]._replace(u=u, i=i)
    st = st._replace(layers=tuple(lay))
    p_in = jnp.full((batch, cfg.sizes[0]), cfg.input_rate * cfg.dt, jnp.float32)
    enc = (p_in, 1.0 - p_in)
    lab = (jnp.zeros((batch, cfg.n_out), jnp.float32), jnp.zeros((batch, cfg.n_out), jnp.float32))
    return params, st, enc, lab, i


def test_boxcar_gate_zeroes_updates_outside_its_range(key):
    cfg = ERBPConfig(sizes=(6, 11, 3), gate=(-1.15, 1.15))
    params, st, enc, lab, i = _single_step_setup(cfg, key)
    (ws, _), _ = erbp._step(cfg, params.g, (params.w, st), (jnp.int32(0), key), enc=enc, lab=lab, learn=True, train=True)
    dw = np.asarray(ws[0] - params.w[0])
    inside = np.asarray((i[0] > -1.15) & (i[0] < 1.15))
    assert np.all(dw[:, ~inside] == 0)
    assert np.all(dw[:, inside] != 0)
    # the update is lr * (number of samples) * U on every presynaptic spike
    u0 = np.asarray(st.layers[0].u[0])
    np.testing.assert_allclose(dw[:, inside], np.broadcast_to(2 * cfg.lr * u0[inside], dw[:, inside].shape), rtol=1e-4, atol=1e-7)
    # a gate no current reaches freezes learning over a whole presentation
    cfg2 = ERBPConfig(sizes=(6, 11, 3), gate=(50.0, 60.0))
    p = erbp.init_erbp(key, cfg2)
    x = jnp.ones((4, 6), jnp.float32)
    present = jax.jit(erbp.present, static_argnums=(0,), static_argnames=("train", "record"))
    p2, _ = present(cfg2, p, x, jnp.array([0, 1, 2, 0]), key, train=True)
    for a, b in zip(p.w, p2.w):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    p3, _ = present(cfg, p, x, jnp.array([0, 1, 2, 0]), key, train=True)
    assert any(float(jnp.max(jnp.abs(a - b))) > 0 for a, b in zip(p.w, p3.w))


def test_hidden_gate_applies_to_hidden_to_hidden_weights_only(key):
    """``hidden_gate`` (Auryn's deep nets leave the hidden->hidden connection ungated): the
    hidden->hidden update follows it, the input->hidden one keeps ``gate``; a bad pair is refused."""
    cfg = ERBPConfig(sizes=(6, 7, 5, 3), gate=(-1.15, 1.15), hidden_gate=(-25.0, 25.0))
    params = erbp.init_erbp(key, cfg)
    st = erbp.init_state(cfg, 1)
    lay = list(st.layers)
    i1 = jnp.linspace(-3.0, 3.0, 7, dtype=jnp.float32)[None, :]
    i2 = jnp.linspace(-3.0, 3.0, 5, dtype=jnp.float32)[None, :]
    lay[0] = lay[0]._replace(i=i1, u=jnp.full((1, 7), 0.5, jnp.float32))
    lay[1] = lay[1]._replace(i=i2, u=jnp.full((1, 5), 0.5, jnp.float32))
    spikes = (jnp.ones((1, 7), jnp.float32), jnp.zeros((1, 5), jnp.float32), jnp.zeros((1, 3), jnp.float32))
    st = st._replace(layers=tuple(lay), spikes=spikes)
    p_in = jnp.full((1, 6), cfg.input_rate * cfg.dt, jnp.float32)
    enc = (p_in, 1.0 - p_in)
    lab = (jnp.zeros((1, 3), jnp.float32), jnp.zeros((1, 3), jnp.float32))
    (ws, _), _ = erbp._step(cfg, params.g, (params.w, st), (jnp.int32(0), key), enc=enc, lab=lab, learn=True, train=True)
    dw0, dw1 = (np.asarray(ws[k] - params.w[k]) for k in (0, 1))
    inside1 = np.abs(np.asarray(i1[0])) < 1.15
    assert np.all(dw0[:, ~inside1] == 0) and np.all(dw0[:, inside1] != 0)  # input->hidden: gate
    np.testing.assert_allclose(dw1, cfg.lr * 0.5, rtol=1e-3)  # hidden->hidden: every |i| < 25 learns
    # without it the hidden->hidden weights keep the common gate
    cfg_g = ERBPConfig(sizes=(6, 7, 5, 3), gate=(-1.15, 1.15))
    (wg, _), _ = erbp._step(cfg_g, params.g, (params.w, st), (jnp.int32(0), key), enc=enc, lab=lab, learn=True, train=True)
    inside2 = np.abs(np.asarray(i2[0])) < 1.15
    dwg = np.asarray(wg[1] - params.w[1])
    assert np.all(dwg[:, ~inside2] == 0) and np.all(dwg[:, inside2] != 0)
    with pytest.raises(ValueError, match="hidden_gate: .*below the upper"):
        ERBPConfig(sizes=(6, 7, 5, 3), hidden_gate=(2.0, 1.0))
    with pytest.raises(ValueError, match="hidden_gate: gate must be a pair"):
        ERBPConfig(sizes=(6, 7, 5, 3), hidden_gate=25.0)


def _drawn_mask(mask_mode, key, shape, p, batch=1):
    """The layer mask ``erbp._step`` draws from ``key`` in ``mask_mode``, as ``[batch, *shape]``."""
    if mask_mode == "shared":
        return np.broadcast_to(np.asarray(erbp.coins(key, shape, p)), (batch,) + tuple(shape))
    if mask_mode == "per_sample":
        return np.asarray(erbp.coins(key, (batch,) + tuple(shape), p))
    return np.asarray(erbp.offset_coins(key, batch, shape, p))


@pytest.mark.parametrize("mask_mode", ["shared", "per_sample", "per_sample_offset"])
def test_perbp_updates_only_on_transmitted_events(key, mask_mode):
    cfg = ERBPConfig(sizes=(6, 11, 3), p_syn=0.5, mask_mode=mask_mode)
    params, st, enc, lab, i = _single_step_setup(cfg, key, batch=1)
    step_key = jax.random.PRNGKey(7)
    (ws, st2), _ = erbp._step(cfg, params.g, (params.w, st), (jnp.int32(0), step_key), enc=enc, lab=lab, learn=True, train=True)
    # recompute the coins the step drew for layer 0 (same key derivation as erbp._step)
    _, _, k_mask = jax.random.split(step_key, 3)
    mask = _drawn_mask(mask_mode, jax.random.split(k_mask, 2)[0], params.w[0].shape, 0.5)[0]
    assert 0.3 < mask.mean() < 0.7
    dw = np.asarray(ws[0] - params.w[0])
    inside = np.asarray((i[0] > -1.15) & (i[0] < 1.15))
    assert np.all(dw[mask == 0] == 0)  # blanked-out events do not teach
    assert np.all(dw[(mask == 1) & inside[None, :]] != 0)  # transmitted ones (inside the gate) do
    # and the transmitted drive is the masked sum: i_new = (i_old + x) * exp(-dt/tau_syn)
    x_soma = np.ones(6, np.float32) @ (np.asarray(params.w[0]) * mask)
    expect_i = (np.asarray(i[0]) + x_soma) * np.exp(-cfg.dt / cfg.tau_syn)
    np.testing.assert_allclose(np.asarray(st2.layers[0].i[0]), expect_i, rtol=1e-5, atol=1e-6)
    # with p = 0 nothing is transmitted and nothing is learned
    cfg0 = ERBPConfig(sizes=(6, 11, 3), p_syn=0.0, mask_mode=mask_mode)
    (ws0, _), _ = erbp._step(cfg0, params.g, (params.w, st), (jnp.int32(0), step_key), enc=enc, lab=lab, learn=True, train=True)
    np.testing.assert_array_equal(np.asarray(ws0[0]), np.asarray(params.w[0]))


def test_perbp_without_blanked_updates_learns_on_every_event(key):
    """``blank_updates=False`` (Auryn's MLP connection): the coin still gates the transmission,
    but the update is the one every presynaptic spike makes without blank-out (the eRBP update)."""
    cfg = ERBPConfig(sizes=(6, 11, 3), p_syn=0.5, blank_updates=False)
    params, st, enc, lab, i = _single_step_setup(cfg, key, batch=1)
    step_key = jax.random.PRNGKey(7)
    (ws, st2), _ = erbp._step(cfg, params.g, (params.w, st), (jnp.int32(0), step_key), enc=enc, lab=lab, learn=True, train=True)
    _, _, k_mask = jax.random.split(step_key, 3)
    mask = _drawn_mask("shared", jax.random.split(k_mask, 2)[0], params.w[0].shape, 0.5)[0]
    assert 0.3 < mask.mean() < 0.7
    dw = np.asarray(ws[0] - params.w[0])
    inside = np.asarray((i[0] > -1.15) & (i[0] < 1.15))
    u0 = np.asarray(st.layers[0].u[0])
    np.testing.assert_allclose(dw[:, inside], np.broadcast_to(cfg.lr * u0[inside], dw[:, inside].shape), rtol=1e-4, atol=1e-7)
    assert np.all(dw[:, ~inside] == 0)
    x_soma = np.ones(6, np.float32) @ (np.asarray(params.w[0]) * mask)
    expect_i = (np.asarray(i[0]) + x_soma) * np.exp(-cfg.dt / cfg.tau_syn)
    np.testing.assert_allclose(np.asarray(st2.layers[0].i[0]), expect_i, rtol=1e-5, atol=1e-6)


def test_srm0_input_follows_auryns_hazard_with_dead_time(key):
    """Auryn's SRM0 input (papers.md 2.2 with PatternStimulator's time-step scaling): the hazard
    by hand, h(1) = 100 exp(3.7) Hz, h(0.43) = 100 exp(-2) Hz, h(0) = 0; simulated rates equal
    the closed form of the discrete dead-time process, 1 / ((n - 1 + 1/p) dt) with
    p = 1 - exp(-h dt); no interval is shorter than the dead time; and a presentation starts from
    the stationary state (no burst of every input at the first step)."""
    h = np.asarray(erbp.srm0_hazard(jnp.array([1.0, 0.43, 0.0, 0.8]), 0.43, 0.5))
    np.testing.assert_allclose(h[:2], [100 * np.exp(3.7), 100 * np.exp(-2.0)], rtol=1e-5)
    assert h[2] == 0.0
    cfg = ERBPConfig(sizes=(6, 5, 2), input_code="srm0")
    n = 4  # 4 ms at 1 ms
    xs = jnp.array([0.0, 0.3, 0.5, 0.6, 0.8, 1.0], jnp.float32)
    B, T = 64, 5000
    x = jnp.broadcast_to(xs, (B, 6))
    enc = erbp._encoder(cfg, x, key)
    ref0 = erbp._input_state(cfg, enc, jax.random.PRNGKey(1))

    def body(ref, k_t):
        k, t = k_t
        s, ref = erbp._input_spikes(cfg, enc, t, k, ref)
        return ref, s

    _, s = jax.lax.scan(body, ref0, (jax.random.split(jax.random.PRNGKey(2), T), jnp.arange(T)))
    s = np.asarray(s)  # [T, B, 6]
    p = -np.expm1(-np.asarray(erbp.srm0_hazard(xs)) * cfg.dt)
    expect = np.where(p > 0, 1.0 / ((n - 1 + 1.0 / np.maximum(p, 1e-30)) * cfg.dt), 0.0)
    rate = s.mean(axis=(0, 1)) / cfg.dt
    assert rate[0] == 0.0
    counts = s.sum(axis=(0, 1))
    se = np.sqrt(np.maximum(counts, 1)) / (T * B * cfg.dt)  # Poisson bound (dead time only lowers it)
    assert np.all(np.abs(rate[1:] - expect[1:]) < 4.5 * se[1:] + 1e-9), (rate, expect)
    assert 240 < rate[-1] < 250 and 20 < rate[2] < 26  # graded: ~249 Hz at x = 1, ~23 Hz at 0.5
    for b in range(4):  # intervals: never shorter than the dead time
        idx = np.flatnonzero(s[:, b, -1])
        assert np.diff(idx).min() >= n
    # stationary start: the first step fires with the stationary probability, not p
    x1 = jnp.ones((4000, 1), jnp.float32)
    enc1 = erbp._encoder(cfg, x1, key)
    s0, _ = erbp._input_spikes(cfg, enc1, 0, jax.random.PRNGKey(5), erbp._input_state(cfg, enc1, jax.random.PRNGKey(4)))
    assert abs(float(s0.mean()) - expect[-1] * cfg.dt) < 0.04, float(s0.mean())


@pytest.mark.parametrize("mask_mode", ["per_sample", "per_sample_offset"])
def test_perbp_per_sample_coins_while_training_shared_while_testing(key, mask_mode):
    """Two identical samples: with per-sample coins each draws its own transmission while training
    (their currents differ, and each equals its own masked sum); a test step, which learns nothing,
    gives both the one shared draw."""
    cfg = ERBPConfig(sizes=(6, 11, 3), p_syn=0.5, mask_mode=mask_mode)
    params, st, enc, lab, i = _single_step_setup(cfg, key, batch=2)
    step_key = jax.random.PRNGKey(3)
    _, _, k_mask = jax.random.split(step_key, 3)
    k0 = jax.random.split(k_mask, 2)[0]
    decay = np.exp(-cfg.dt / cfg.tau_syn)
    w0 = np.asarray(params.w[0])
    (_, st_tr), _ = erbp._step(cfg, params.g, (params.w, st), (jnp.int32(0), step_key), enc=enc, lab=lab, learn=False, train=True)
    masks = _drawn_mask(mask_mode, k0, w0.shape, 0.5, batch=2)
    for b in range(2):
        expect = (np.asarray(i[b]) + np.ones(6, np.float32) @ (w0 * masks[b])) * decay
        np.testing.assert_allclose(np.asarray(st_tr.layers[0].i[b]), expect, rtol=1e-5, atol=1e-6)
    assert np.any(masks[0] != masks[1])
    (_, st_te), _ = erbp._step(cfg, params.g, (params.w, st), (jnp.int32(0), step_key), enc=enc, lab=lab, learn=False, train=False)
    shared = np.asarray(erbp.coins(k0, w0.shape, 0.5))
    expect = (np.asarray(i[0]) + np.ones(6, np.float32) @ (w0 * shared)) * decay
    for b in range(2):
        np.testing.assert_allclose(np.asarray(st_te.layers[0].i[b]), expect, rtol=1e-5, atol=1e-6)


def test_offset_coins_are_independent_bernoulli_per_sample():
    """offset_coins against the law it claims: Bernoulli(166/256) marginals, the coins of three
    samples at one synapse and of two synapses of one sample independent (joint frequencies equal
    products, within 4.5 binomial standard errors over 40k draws), and the documented rectangle
    dependence present (it is what the saving costs)."""
    n = 40000
    m = np.asarray(jax.vmap(lambda k: erbp.offset_coins(k, 3, (2, 2), 0.65))(jax.random.split(jax.random.PRNGKey(11), n)))
    q = 166 / 256

    def close(freq, prob):
        assert abs(freq - prob) < 4.5 * np.sqrt(prob * (1 - prob) / n), (freq, prob)

    close(m[:, 1, 0, 1].mean(), q)
    close((m[:, 0, 1, 1] * m[:, 1, 1, 1] * m[:, 2, 1, 1]).mean(), q**3)  # three samples, one synapse
    close(((1 - m[:, 0, 0, 0]) * (1 - m[:, 2, 0, 0])).mean(), (1 - q) ** 2)
    close((m[:, 1, 0, 0] * m[:, 1, 0, 1]).mean(), q**2)  # one sample, two synapses of one neuron
    close((m[:, 0, 0, 0] * m[:, 1, 0, 1]).mean(), q**2)  # two samples, two synapses
    # the rectangle: u[0,k,0] - u[0,k,1] = u[1,k,0] - u[1,k,1] (mod 256) makes these four coins
    # dependent; with p = 1/2 the three-coin event {1, 0, 0} forces the fourth coin's odds away from 1/2
    r = np.asarray(jax.vmap(lambda k: erbp.offset_coins(k, 2, (1, 2), 0.5))(jax.random.split(jax.random.PRNGKey(12), n)))
    sel = (r[:, 0, 0, 0] == 1) & (r[:, 0, 0, 1] == 0) & (r[:, 1, 0, 0] == 0)
    assert abs(r[sel, 1, 0, 1].mean() - 0.5) > 0.1
    # p = 1 transmits everything, p = 0 nothing
    assert float(erbp.offset_coins(jax.random.PRNGKey(0), 2, (3, 4), 1.0).min()) == 1.0
    assert float(erbp.offset_coins(jax.random.PRNGKey(0), 2, (3, 4), 0.0).max()) == 0.0


def test_error_neurons_fire_at_rectified_rate_difference(key):
    """err+ ~ (L - P)+ and err- ~ (P - L)+: drive the error population directly."""
    T = 400
    lab = (jnp.arange(T) % 4 == 0).astype(jnp.float32)  # label at 250 Hz
    out = (jnp.arange(T) % 10 == 0).astype(jnp.float32)  # output at 100 Hz
    v_p = v_n = jnp.zeros(())
    n_p = n_n = 0.0
    for t in range(T):
        d = 0.09 * lab[t] - 0.09 * out[t]
        v_p, zp = erbp._error_step(v_p, d, 0.1)
        v_n, zn = erbp._error_step(v_n, -d, 0.1)
        n_p += float(zp)
        n_n += float(zn)
    rate_p = n_p / (T * 1e-3)
    assert 0.8 * 0.9 * 150 < rate_p < 1.1 * 0.9 * 150  # ~ 0.9 (250 - 100) Hz
    assert n_n == 0


def test_synops_of_the_network_match_recorded_spikes(key):
    cfg = ERBPConfig(sizes=(8, 5, 3), t_test=0.03)
    params = erbp.init_erbp(key, cfg)
    x = jax.random.uniform(key, (4, 8), jnp.float32)
    _, o = erbp.run_presentation(cfg, params, x, key)
    # hand count: every input spike reaches 5 hidden neurons, every hidden spike 3 outputs; spikes
    # drive the next layer one step later, so the hidden spikes of step t-1 count at step t
    s_in = np.asarray(o["input_spikes"])
    s_h = np.asarray(o["layer_spikes"][0])
    s_h_prev = np.concatenate([np.zeros_like(s_h[:1]), s_h[:-1]])
    hand = 5 * s_in.sum(-1) + 3 * s_h_prev.sum(-1)
    np.testing.assert_array_equal(np.asarray(o["synops"]), hand)


def test_bad_inputs_raise_value_errors_naming_the_problem(key):
    cfg = ERBPConfig(sizes=(8, 5, 3))
    p = erbp.init_erbp(key, cfg)
    with pytest.raises(ValueError, match=r"feedback matrix G\[0\].*shape \(5, 3\).*expected .*\(3, 5\)"):
        erbp.check_params(cfg, ERBPParams(p.w, (p.g[0].T,)))
    with pytest.raises(ValueError, match="feedback matrix G"):
        erbp.run_presentation(cfg, ERBPParams(p.w, (jnp.zeros((3, 4)),)), jnp.zeros((1, 8)), key)
    with pytest.raises(ValueError, match="feedback matrix G"):
        erbp.make_train_epoch(cfg, 4, 2)(ERBPParams(p.w, (p.g[0].T,)), jnp.zeros((4, 8)), jnp.zeros((4,), jnp.int32), key)
    with pytest.raises(ValueError, match="batch_size must be in"):
        erbp.make_train_epoch(cfg, 4, 5)
    with pytest.raises(ValueError, match="one feedback matrix per hidden layer"):
        erbp.check_params(cfg, ERBPParams(p.w, ()))
    with pytest.raises(ValueError, match=r"forward weight matrix w\[1\]"):
        erbp.check_params(cfg, ERBPParams((p.w[0], jnp.zeros((4, 3))), p.g))
    with pytest.raises(ValueError, match="gate lower bound"):
        ERBPConfig(gate=(1.15, -1.15))
    with pytest.raises(ValueError, match="gate lower bound"):
        ERBPConfig(gate=(0.5, 0.5))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p_syn .* probability"):
            ERBPConfig(p_syn=bad)
    with pytest.raises(ValueError, match="t_burnin"):
        ERBPConfig(t_train=0.05, t_burnin=0.05)
    with pytest.raises(ValueError, match="x must be"):
        erbp.present(cfg, p, jnp.zeros((2, 7)), None, key)


def test_evaluate_counts_every_sample_once_with_padding(key):
    cfg = ERBPConfig(sizes=(8, 5, 3), t_test=0.02)
    params = erbp.init_erbp(key, cfg)
    x = jax.random.uniform(key, (7, 8), jnp.float32)
    y = jnp.array([0, 1, 2, 0, 1, 2, 0], jnp.int32)
    ev = erbp.make_evaluate(cfg, batch_size=3)
    s = erbp.evaluation_summary(ev(params, x, y, key), ev.steps, cfg)
    assert s["n"] == 7
    # same numbers as one unpadded batch of 7 would give, decided by hand
    ev7 = erbp.make_evaluate(cfg, batch_size=7)
    s7 = erbp.evaluation_summary(ev7(params, x, y, key), ev7.steps, cfg)
    assert s7["n"] == 7 and 0.0 <= s7["test_acc"] <= 1.0


# ---------------------------------------------------------------------------------------------
# SynOps accounting against a hand-counted example


def test_synops_hand_counted_example():
    # 3 steps, 1 sample; input layer of 3 neurons (fan-out 4), hidden of 4 (fan-out 2), 2 outputs
    s_in = np.array([[[1, 0, 1]], [[0, 0, 0]], [[1, 1, 1]]], np.float32)  # 2, 0, 3 spikes
    s_h = np.array([[[0, 0, 0, 0]], [[1, 1, 0, 0]], [[0, 0, 0, 1]]], np.float32)  # 0, 2, 1 spikes
    out = np.array([[[0, 0]], [[0, 1]], [[1, 0]]], np.float32)  # first output spike at step 1, class 1
    syn = count_synops([s_in, s_h], [4, 2])
    np.testing.assert_array_equal(np.asarray(syn)[:, 0], [2 * 4 + 0, 0 + 2 * 2, 3 * 4 + 1 * 2])  # 8, 4, 14
    assert int(first_spike_steps(out)[0]) == 1
    assert float(synops_until_first_spike(syn, out)[0]) == 12.0  # 8 + 4
    assert energy_joules(12.0, 20.0) == pytest.approx(240e-12)
    # fan-out per neuron and blank-out masks
    assert float(synops_per_step(s_in[0], fan_out=np.array([1.0, 5.0, 2.0], np.float32))[0]) == 3.0
    m = np.array([[1, 0, 1, 1], [1, 1, 1, 1], [0, 0, 1, 0]], np.float32)  # row sums 3, 4, 1
    assert float(synops_per_step(s_in[2], mask=m)[0]) == 8.0
    r = accuracy_vs_synops(out, syn, np.array([1]), steps=[1, 2, 3], dt=1e-3)
    assert r["first_spike"]["accuracy"] == 1.0 and r["first_spike"]["mean_synops"] == 12.0
    assert r["first_spike"]["energy_uJ"] == pytest.approx(12 * 20e-12 * 1e6)
    assert r["after_steps"]["accuracy"] == [0.0, 1.0, 0.0]  # silent at 1 step; 1 wins at 2; tie 1:1 -> class 0 at 3
    assert r["after_steps"]["mean_synops"] == [8.0, 12.0, 26.0]
    assert mac_count([784, 100, 10]) == 79400
    # earliest fixed-length decision under an error bound: steps 2 is the first with accuracy 1.0
    assert r["error_below_5pct"] == {"reached": True, "max_error": 0.05, "steps": 2, "time_s": 2e-3, "accuracy": 1.0,
                                     "mean_synops": 12.0, "energy_uJ": pytest.approx(12 * 20e-12 * 1e6)}
    hand = {"after_steps": {"steps": [10, 1, 5], "time_s": None, "accuracy": [0.97, 0.5, 0.951],
                            "mean_synops": [300.0, 10.0, 120.0], "energy_uJ": [6.0, 0.2, 2.4]}}
    assert earliest_decision(hand)["steps"] == 5  # in order of steps, not of the list: 1 (50%), 5 (4.9% error)
    assert earliest_decision(hand, max_error=0.04)["mean_synops"] == 300.0
    miss = earliest_decision(hand, max_error=0.01)  # no step gets there: same fields, explicit "not reached"
    assert miss["reached"] is False and miss["steps"] is None and miss["mean_synops"] is None
    with pytest.raises(ValueError, match="max_error"):
        earliest_decision(hand, max_error=0.0)
    with pytest.raises(ValueError, match="exactly one of"):
        synops_per_step(s_in[0])


def test_decide_breaks_ties_by_the_tie_value():
    counts = jnp.array([[2.0, 2.0, 1.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    tie = jnp.array([[-5.0, -4.0, 9.0], [-50.0, -40.0, -45.0], [0.0, -1.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(decide(counts, tie)), [1, -1, 1])
    np.testing.assert_array_equal(np.asarray(decide(counts, tie, silent=None)), [1, 1, 1])


# ---------------------------------------------------------------------------------------------
# Baselines


def test_fa_matmul_backward_uses_the_feedback_matrix(key):
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (5, 4), jnp.float32)
    w = jax.random.normal(k2, (4, 3), jnp.float32)
    b = jax.random.normal(k3, (4, 3), jnp.float32)
    g = jnp.ones((5, 3), jnp.float32)
    gx, gw, _ = jax.vjp(erbp.fa_matmul, x, w, b)[1](g)
    np.testing.assert_allclose(np.asarray(gx), np.asarray(g @ b.T), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(gw), np.asarray(x.T @ g), rtol=1e-6)
    # with B = W random back-propagation is back-propagation
    params = erbp.init_mlp_params(key, [4, 6, 3])
    fb = [params[1][0]]
    y = jnp.array([0, 1, 2, 0, 1])
    g_bp = jax.grad(erbp.mlp_loss)(params, x, y)
    g_fa = jax.grad(erbp.mlp_loss)(params, x, y, fb)
    for a, c in zip(jax.tree_util.tree_leaves(g_bp), jax.tree_util.tree_leaves(g_fa)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-5, atol=1e-7)


def test_poisson_membrane_noise_kicks_the_membrane(key):
    """Auryn's PoissonStimulator: Poisson(noise_rate dt) kicks of noise_std on the membrane.  With
    zero weights the net is silent; kicks larger than the threshold make every neuron fire about
    once per step it is not refractory and receives a kick; kicks far below it never do."""
    base = dict(sizes=(6, 5, 3), t_test=0.1)
    p = erbp.init_erbp(key, ERBPConfig(**base))
    p = ERBPParams(tuple(jnp.zeros_like(w) for w in p.w), p.g)
    x = jnp.ones((4, 6), jnp.float32)

    def rate(**kw):
        cfg = ERBPConfig(**base, **kw)
        _, o = erbp.run_presentation(cfg, p, x, key)
        return float(np.mean(np.asarray(o["layer_spikes"][0]))), cfg

    assert rate()[0] == 0.0
    assert rate(noise_std=0.01, noise_rate=1000.0)[0] == 0.0
    r, cfg = rate(noise_std=0.5, noise_rate=1000.0)
    # a neuron fires on the first kick after its refractory period: mean ISI = ref + 1/(1 - e^-lam)
    lam = cfg.noise_rate * cfg.dt
    ref = round(cfg.t_ref / cfg.dt)
    expected = 1.0 / (ref + 1.0 / (1.0 - np.exp(-lam)))
    assert abs(r - expected) < 0.04, (r, expected)
    with pytest.raises(ValueError, match="noise_rate"):
        ERBPConfig(noise_rate=-1.0)


def test_mlp_dropout_is_unbiased_and_off_without_key():
    """Inverted dropout on the baselines' hidden layer: the output layer is linear in the hidden
    activations, so the mean of the logits over many masks equals the logits without dropout;
    a drop rate of 0.3 zeroes 30% of the hidden units; no key (evaluation) means no dropout."""
    k = jax.random.PRNGKey(0)
    params = erbp.init_mlp_params(k, (6, 50, 3))
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 6))
    ref = erbp.mlp_logits(params, x)
    np.testing.assert_array_equal(np.asarray(erbp.mlp_logits(params, x, dropout=0.3)), np.asarray(ref))
    keys = jax.random.split(jax.random.PRNGKey(2), 20000)
    outs = jax.vmap(lambda kk: erbp.mlp_logits(params, x, dropout=0.3, key=kk))(keys)
    scale = float(jnp.max(jnp.abs(ref)))
    np.testing.assert_allclose(np.asarray(outs.mean(0)), np.asarray(ref), atol=0.02 * scale)
    w, b = params[0]
    h = jax.nn.relu(x @ w + b[None, :])
    hd = jax.vmap(lambda kk: erbp.mlp_logits([(w, b), (jnp.eye(50), jnp.zeros(50))], x, dropout=0.3, key=kk))(keys[:2000])
    live = np.asarray(h) > 0
    dropped = (np.asarray(hd) == 0)[:, live]
    assert abs(dropped.mean() - 0.3) < 0.01
    np.testing.assert_allclose(np.asarray(hd)[:, live][~dropped], np.broadcast_to(np.asarray(h)[live] / 0.7, dropped.shape)[~dropped], rtol=1e-5)
    with pytest.raises(ValueError, match=r"dropout rate must lie in \[0, 1\)"):
        erbp.mlp_logits(params, x, dropout=1.0, key=k)


def test_perbp_mean_transmission_test_equals_scaled_deterministic_net(key):
    """``stochastic_test=False``: a peRBP net is tested with its expected transmission, i.e. exactly
    the deterministic (p_syn = 1) net with every forward weight multiplied by p_syn; with
    ``stochastic_test=True`` the test presentation is random (two keys, two spike trains)."""
    sizes = (20, 30, 4)
    cfg = ERBPConfig(sizes=sizes, p_syn=0.65, stochastic_test=False, t_test=0.05)
    params = erbp.init_erbp(key, cfg)
    params = erbp.ERBPParams(tuple(3.0 * w for w in params.w), params.g)  # strong enough to fire
    x = (jax.random.uniform(jax.random.PRNGKey(3), (5, 20)) > 0.4).astype(jnp.float32)
    _, rec = erbp.run_presentation(cfg, params, x, jax.random.PRNGKey(1))
    ref_cfg = ERBPConfig(sizes=sizes, p_syn=1.0, t_test=0.05)
    scaled = erbp.ERBPParams(tuple(0.65 * w for w in params.w), params.g)
    _, ref = erbp.run_presentation(ref_cfg, scaled, x, jax.random.PRNGKey(1))
    assert float(jnp.sum(ref["out_spikes"])) > 0 and float(jnp.sum(ref["layer_spikes"][0])) > 0
    np.testing.assert_array_equal(np.asarray(rec["out_spikes"]), np.asarray(ref["out_spikes"]))
    np.testing.assert_array_equal(np.asarray(rec["layer_spikes"][0]), np.asarray(ref["layer_spikes"][0]))
    sto = ERBPConfig(sizes=sizes, p_syn=0.65, t_test=0.05)
    _, a = erbp.run_presentation(sto, params, x, jax.random.PRNGKey(1))
    _, b = erbp.run_presentation(sto, params, x, jax.random.PRNGKey(2))
    assert not np.array_equal(np.asarray(a["layer_spikes"][0]), np.asarray(b["layer_spikes"][0]))


def test_test_noise_switch_only_affects_test_presentations(key):
    """``test_noise=False``: membrane kicks while training, none while testing, so a test
    presentation equals the noise-free network's (same key); with ``test_noise=True`` it does not."""
    sizes = (20, 30, 4)
    x = (jax.random.uniform(jax.random.PRNGKey(3), (5, 20)) > 0.4).astype(jnp.float32)
    quiet = ERBPConfig(sizes=sizes, t_test=0.05, noise_std=0.0)
    params = erbp.init_erbp(key, quiet)
    params = erbp.ERBPParams(tuple(3.0 * w for w in params.w), params.g)
    _, ref = erbp.run_presentation(quiet, params, x, jax.random.PRNGKey(1))
    off = ERBPConfig(sizes=sizes, t_test=0.05, noise_std=0.2, noise_rate=1000.0, test_noise=False)
    _, a = erbp.run_presentation(off, params, x, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(np.asarray(a["layer_spikes"][0]), np.asarray(ref["layer_spikes"][0]))
    np.testing.assert_array_equal(np.asarray(a["out_spikes"]), np.asarray(ref["out_spikes"]))
    on = ERBPConfig(sizes=sizes, t_test=0.05, noise_std=0.2, noise_rate=1000.0)
    _, b = erbp.run_presentation(on, params, x, jax.random.PRNGKey(1))
    assert not np.array_equal(np.asarray(b["layer_spikes"][0]), np.asarray(ref["layer_spikes"][0]))
    # training presentations keep their kicks either way
    y = jnp.arange(5) % 4
    p_off, _ = erbp.present(off, params, x, y, jax.random.PRNGKey(1), train=True)
    p_on, _ = erbp.present(on, params, x, y, jax.random.PRNGKey(1), train=True)
    for u, v in zip(p_off.w, p_on.w):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_rate_twin_of_a_run_learns_the_digits_on_its_split():
    """``--twin``: the rate twin of the quick digits run, two learning rates in one program, scored
    on the run's validation split and its first training digits (chance is 90% error)."""
    from experiments import erbp_pimnist as X

    ov = ["dataset=digits", "input_threshold=0.3", "val=300", "batch_size=10", "epochs=5", "method=perbp"]
    rows = X.rate_twin(ov, [0.003, 0.01], train_digits=500, log=None)
    assert [r["lr"] for r in rows] == pytest.approx([0.003, 0.01])
    assert set(rows[0]) == {"lr", "val_err_pct", "train_err_pct"}
    best = min(rows, key=lambda r: r["val_err_pct"])
    assert best["val_err_pct"] < 15.0 and best["train_err_pct"] < 10.0, rows
    # errors are counts of whole digits
    assert round(best["val_err_pct"] * 3) == pytest.approx(best["val_err_pct"] * 3, abs=1e-6)
    with pytest.raises(ValueError, match="train_digits must be >= 0"):
        X.rate_twin(ov, [0.01], train_digits=-1, log=None)
    # keys of the spiking dynamics alone change nothing in the twin, and the log names them
    said = []
    again = X.rate_twin(ov + ["dt=5e-4", "t_ref=2e-3", "p_syn=0.3"], [0.003, 0.01], train_digits=500, log=said.append)
    assert again == rows
    assert any("dt, p_syn, t_ref act on the spiking run only" in s for s in said), said
    assert X.TWIN_USES <= set(X.CONFIG), X.TWIN_USES - set(X.CONFIG)  # a misspelled key would list the real one as ignored
    # ... while a key the twin uses (the gate) does change it
    assert X.rate_twin(ov + ["gate_high=0.3"], [0.003, 0.01], train_digits=500, log=None) != rows


def test_reevaluate_saved_weights_reproduces_the_run(tmp_path, monkeypatch):
    """``--reevaluate`` on a finished peRBP run (quick digits config) with no overrides gives the
    error the run itself recorded (same weights, same coins); the mean-network override gives the
    other test mode's recorded error; unknown keys and a run without weights are refused."""
    import json

    import experiments
    from experiments import erbp_pimnist as X
    from spikejax.experiment import run_experiment

    monkeypatch.setenv("SPIKEJAX_CKPT", str(tmp_path / "ckpt"))
    path = run_experiment(experiments.load("erbp_pimnist"), quick=True, overrides=["method=perbp", "eval_train=300"], out_dir=tmp_path, quiet=True)
    m = json.loads(path.read_text())["metrics"]
    again = X.reevaluate(path, [])
    assert again["test_err_pct"] == pytest.approx(m["test_err_pct"], abs=1e-9)
    assert again["test_err_pct_halves"] == pytest.approx(m["test_err_pct_halves"], abs=1e-9)
    # the fit to the training digits: the run's last in-training evaluation of its first 300
    # training digits, and the saved weights re-scored on the same digits, agree; 300 digits give
    # an error in steps of 1/3 %
    assert m["train_digits"] == 300
    assert m["train_err_pct"] == pytest.approx(100 * (1 - m["history"]["train_acc_eval"][-1]), abs=1e-9)
    fit = X.reevaluate(path, [], train_digits=300)
    assert fit["train_digits"] == 300 and fit["train_err_pct"] == pytest.approx(m["train_err_pct"], abs=1e-4)
    assert round(fit["train_err_pct"] * 3) == pytest.approx(fit["train_err_pct"] * 3, abs=1e-3)
    with pytest.raises(ValueError, match="train_digits must be >= 0"):
        X.reevaluate(path, [], train_digits=-1)
    # the output margins on the same digits make the same decisions (run's batches and key)
    mg = X.output_margins(path, 1000)
    assert mg["n"] == 1000 and mg["err_pct"] == pytest.approx(X.reevaluate(path, [], train_digits=1000)["train_err_pct"], abs=1e-4)
    with pytest.raises(ValueError, match="multiple of the run's eval_batch=500"):
        X.output_margins(path, 700)
    assert X.reevaluate(path, ["perbp_test=mean"])["test_err_pct"] == pytest.approx(m["test_err_pct_mean_test"], abs=1e-9)
    with pytest.raises(ValueError, match="unknown config key"):
        X.reevaluate(path, ["t_tset=0.2"])
    path.with_name(path.name[: -len(".json")] + ".params.npz").unlink()
    with pytest.raises(FileNotFoundError, match="no saved weights"):
        X.reevaluate(path, [])


def test_baseline_reports_its_fit_to_the_training_digits(tmp_path, monkeypatch):
    """A BP baseline run with ``eval_train`` reports its error on the first training digits
    (no dropout): a multiple of 1/n, and below its held-out error on the digits set, which an MLP
    fits almost perfectly in 20 epochs at Adam's 0.01 (0.5% against 3.8% held out when written);
    asking for more digits than there are scores them all."""
    import json

    import experiments
    from spikejax.experiment import run_experiment

    monkeypatch.setenv("SPIKEJAX_CKPT", str(tmp_path / "ckpt"))
    path = run_experiment(experiments.load("erbp_pimnist"), quick=True, overrides=["method=bp", "epochs=20", "bp_lr=0.01", "eval_train=400"],
                          out_dir=tmp_path, quiet=True)
    m = json.loads(path.read_text())["metrics"]
    assert m["train_digits"] == 400
    assert m["train_err_pct"] * 4 == pytest.approx(round(m["train_err_pct"] * 4), abs=1e-3)
    assert m["train_err_pct"] < m["test_err_pct"]
    assert m["train_err_pct"] <= 1.0
    path = run_experiment(experiments.load("erbp_pimnist"), quick=True, overrides=["method=bp", "epochs=1", "eval_train=100000"],
                          out_dir=tmp_path / "all", quiet=True)
    m = json.loads(path.read_text())["metrics"]
    assert m["train_digits"] == m["n_train"]
    with pytest.raises(ValueError, match="eval_train must be >= 0"):
        run_experiment(experiments.load("erbp_pimnist"), quick=True, overrides=["method=bp", "eval_train=-1"], out_dir=tmp_path / "bad", quiet=True)


def test_margin_summary_by_hand():
    """Five digits, three outputs, gate (-1, 1), worked by hand: digits 0 and 1 are right, 2-4 wrong.
    Digit 2's wrong winner (output 0) sits at 1.5, above the gate; digit 3's true output at -2,
    below it; digit 4's winner 0.2 and true output 0.1, both inside."""
    from experiments.erbp_pimnist import margin_summary

    y = np.array([0, 1, 1, 2, 0])
    pred = np.array([0, 1, 0, 0, 1])
    cur = np.array([[3.0, -1.0, -2.0],  # right: true 3, runner-up -1
                    [-3.0, 2.0, 0.0],  # right: true 2, runner-up 0
                    [1.5, 0.5, -1.0],  # wrong: winner 1.5 > 1, true 0.5
                    [0.4, -0.5, -2.0],  # wrong: winner 0.4, true -2 < -1
                    [0.1, 0.2, -3.0]])  # wrong: winner 0.2, true 0.1
    m = margin_summary(pred, y, cur, (-1.0, 1.0))
    assert m["n"] == 5 and m["err_pct"] == pytest.approx(60.0)
    e = m["errors"]
    assert e["winner_above_gate"] == pytest.approx(1 / 3)
    assert e["true_below_gate"] == pytest.approx(1 / 3)
    assert e["true_inside_gate"] == pytest.approx(2 / 3)
    assert e["winner_current_quartiles"][1] == pytest.approx(0.4)  # median of 1.5, 0.4, 0.2
    assert e["true_current_quartiles"][1] == pytest.approx(0.1)  # median of 0.5, -2, 0.1
    assert m["correct"]["true_current_quartiles"][1] == pytest.approx(2.5)
    assert m["correct"]["runner_up_current_median"] == pytest.approx(-0.5)
    # output spike counts: on digit 4 no output fired (one of the three errors)
    counts = np.array([[9, 0, 0], [0, 8, 1], [5, 2, 0], [3, 0, 0], [0, 0, 0]])
    assert margin_summary(pred, y, cur, (-1.0, 1.0), counts)["errors"]["all_outputs_silent"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="do not match"):
        margin_summary(pred, y, cur[:4], (-1.0, 1.0))
    with pytest.raises(ValueError, match="counts"):
        margin_summary(pred, y, cur, (-1.0, 1.0), counts[:, :2])
    with pytest.raises(ValueError, match="counts"):  # checked even when there is no error to use them on
        margin_summary(y, y, cur, (-1.0, 1.0), counts[:, :2])


def test_halves_error_splits_the_evaluation_set():
    """The per-half error is the error of each half, the halves' mean the whole set's (even n)."""
    from experiments.erbp_pimnist import halves_err_pct

    y = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    pred = np.array([0, 1, 2, 9, 9, 9, 6, 9])  # wrong: 1 of the first 4, 3 of the last 4

    def err_of(xa, ya):
        return 100 * np.mean(pred[xa] != ya)

    x = np.arange(8)
    assert halves_err_pct(err_of, (x, y)) == [25.0, 75.0]
    assert np.mean(halves_err_pct(err_of, (x, y))) == err_of(x, y)


def test_ci_table_verdicts_follow_the_binomial_interval(tmp_path):
    """``--ci``: a row at or below the seed is met; a miss is 'inside' when the seed's number lies in
    the exact 95% interval of the row's errors on 10,000 digits and 'below' when it does not
    (784-100-10 eRBP seed 3.94%: 410 errors give 3.72-4.51%, 500 give 4.58-5.45%: the beta quantiles
    Beta(0.025; k, n - k + 1) and Beta(0.975; k + 1, n - k))."""
    from experiments import erbp_pimnist as X

    def write(method, err_pct):
        rec = {"metrics": {"n_test": 10000, "test_err_pct": err_pct}}
        (tmp_path / f"erbp_pimnist-784-100-10-{method}.json").write_text(json.dumps(rec))

    write("erbp", 4.10)
    write("bp", 2.19)  # equal to the seed's 2.19: met
    table = X.ci_table(tmp_path)
    rows = {ln.split("|")[2].strip(): ln for ln in table.splitlines()[2:]}
    assert set(rows) == {"eRBP", "BP (GPU)"}
    assert "3.72-4.51" in rows["eRBP"] and rows["eRBP"].endswith("missed; seed inside the interval |")
    assert rows["BP (GPU)"].endswith("| met |")
    write("erbp", 5.00)
    row = X.ci_table(tmp_path).splitlines()[2]
    assert "4.58-5.45" in row and row.endswith("missed; seed below the interval |")
    # a peRBP row that learned on blanked events (its own -noblank file) is listed under its own name
    write("perbp-noblank", 3.02)  # equal to the seed's peRBP 3.02: met
    rows = {ln.split("|")[2].strip(): ln for ln in X.ci_table(tmp_path).splitlines()[2:]}
    assert rows[X.NOBLANK_NAME].endswith("| met |") and "peRBP" not in rows


def test_result_tag_keeps_study_runs_off_the_row_files():
    """Validation runs and other seeds get their own results file; the rows keep ``<arch>-<method>``."""
    from experiments import erbp_pimnist as X

    row = dict(X.CONFIG, arch="784-500-10", method="perbp", batch_size=100, dt=5e-4)
    assert X.result_tag(row) == "784-500-10-perbp"
    assert X.result_tag(dict(row, val=5000)) == "784-500-10-perbp-val5000"
    assert X.result_tag(dict(row, seed=1)) == "784-500-10-perbp-seed1"
    assert X.result_tag(dict(row, val=5000, seed=2)) == "784-500-10-perbp-val5000-seed2"
    # peRBP learning as Auryn's MLP program (blanked events teach): its own row file and claim name
    assert X.result_tag(dict(row, blank_updates=False)) == "784-500-10-perbp-noblank"
    assert X.result_tag(dict(row, blank_updates=False, val=5000)) == "784-500-10-perbp-noblank-val5000"
    assert X.result_tag(dict(row, method="erbp", blank_updates=False)) == "784-500-10-erbp"
    assert "blanked events also teach" in X._claims("784-500-10", "perbp", noblank=True)[0]["claim"]


def test_tune_starts_from_the_protocol_and_a_rerun_continues_the_study(tmp_path):
    """erbp_pimnist.tune: the first trial of a new study is the protocol's own setting (the
    reference), every trial is scored on the validation split, and running the command again
    continues the stored study (trial numbers go on) instead of starting over."""
    from experiments import erbp_pimnist as X

    ov = dict(dataset="digits", val=300, epochs=1, t_train=0.02, t_burnin=0.005, t_test=0.02, input_threshold=0.3, eval_batch=300)
    store = tmp_path / "study.jsonl"
    rows = X.tune(1, store, ov, work_dir=tmp_path / "w", log=lambda *_: None)
    assert len(rows) == 1 and rows[0]["state"] == "COMPLETE"
    ref = {**X.CONFIG, **X.TUNE_PROTOCOL, **ov}
    assert rows[0]["params"] == pytest.approx({k: ref[k] for k in X.TUNE_SPACE})
    # its value is the validation error of that configuration run directly
    res = json.loads(next((tmp_path / "w").rglob("*.json")).read_text())
    assert res["metrics"]["n_val"] == 300 and "test_err_pct" not in res["metrics"]
    # the run used the recorded values to the last bit (no float32 rounding on the way)
    assert {k: res["config"][k] for k in X.TUNE_SPACE} == {k: float(ref[k]) for k in X.TUNE_SPACE}
    assert rows[0]["values"][0] == pytest.approx(res["metrics"]["val_err_pct"])
    rows = X.tune(2, store, ov, work_dir=tmp_path / "w", log=lambda *_: None)
    assert [r["number"] for r in rows] == [0, 1] and all(r["state"] == "COMPLETE" for r in rows)
    assert rows[1]["params"] != rows[0]["params"]
    assert (tmp_path / "study.png").stat().st_size > 0
    with pytest.raises(ValueError, match="unknown config key"):
        X.tune(1, store, {"no_such_key": 1})
    # a second worker on the same study: n_trials is the study's size, so it adds one trial to reach 3
    rows = X.tune(3, store, ov, work_dir=tmp_path / "w", log=lambda *_: None, worker_id="worker-1")
    assert [r["number"] for r in rows] == [0, 1, 2] and [r["worker"] for r in rows] == ["worker-0", "worker-0", "worker-1"]
    assert X.tune(3, store, ov, work_dir=tmp_path / "w", log=lambda *_: None, worker_id="worker-2") == rows  # full: runs nothing


def test_tune_queues_start_settings_after_the_reference(tmp_path):
    """``starts`` (``--start``): a new study runs the reference first, then each given setting
    exactly as given, before the sampler proposes anything; a setting that leaves out a tuned key
    or lies outside the search space is refused before any training."""
    from experiments import erbp_pimnist as X

    ov = dict(dataset="digits", val=300, epochs=1, t_train=0.02, t_burnin=0.005, t_test=0.02, input_threshold=0.3, eval_batch=300,
              lr_decay=0.7, gate_low=-1.0, gate_high=1.0, t_ref=3e-3, feedback_std_weight=7.0)
    start = {"lr": 0.001143, "init_std_weight": 1.529}
    rows = X.tune(2, tmp_path / "s.jsonl", ov, work_dir=tmp_path / "w", log=lambda *_: None, starts=[start])
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert rows[0]["params"] == pytest.approx({"lr": X.CONFIG["lr"], "init_std_weight": X.CONFIG["init_std_weight"]})
    assert rows[1]["params"] == start  # to the last bit
    said = []  # on an existing study a start setting is not queued again, and the log says so
    assert X.tune(2, tmp_path / "s.jsonl", ov, work_dir=tmp_path / "w", log=said.append, starts=[start]) == rows
    assert any("not queued" in m for m in said)
    with pytest.raises(ValueError, match=r"missing \['init_std_weight'\]"):
        X.tune(1, tmp_path / "t.jsonl", ov, starts=[{"lr": 0.002}])
    with pytest.raises(ValueError, match=r"outside the search space for \['lr'\]"):
        X.tune(1, tmp_path / "t.jsonl", ov, starts=[{"lr": 0.5, "init_std_weight": 2.0}])


def test_tune_space_narrows_the_search_and_refuses_a_study_of_other_ranges(tmp_path):
    """``bounds`` (``--space KEY=LOW:HIGH``): every sampled value of a narrowed key lies in its new
    range, on the old scale; the study file refuses to be continued over other ranges (either way);
    unknown keys, keys fixed by ``--set`` and empty ranges are refused."""
    from experiments import erbp_pimnist as X

    ov = dict(dataset="digits", val=300, epochs=1, t_train=0.02, t_burnin=0.005, t_test=0.02, input_threshold=0.3, eval_batch=300,
              lr_decay=0.7, gate_low=-1.0, gate_high=1.0, feedback_std_weight=7.0, init_std_weight=7.0)
    quiet = dict(work_dir=tmp_path / "w", log=lambda *_: None)
    bounds = {"lr": (2e-3, 4e-3), "t_ref": (2.5e-3, 4e-3)}
    store = tmp_path / "narrow.jsonl"
    rows = X.tune(3, store, ov, bounds=bounds, **quiet)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert rows[0]["params"] == pytest.approx({"lr": X.CONFIG["lr"], "t_ref": X.CONFIG["t_ref"]})  # the reference (inside)
    for r in rows[1:]:
        assert 2e-3 <= r["params"]["lr"] <= 4e-3 and 2.5e-3 <= r["params"]["t_ref"] <= 4e-3, r["params"]
    import optuna

    dist = optuna.load_study(study_name=f"erbp_tune-{X.CONFIG['arch']}-perbp", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(store)))).trials[1].distributions["lr"]
    assert (dist.low, dist.high, dist.log) == (2e-3, 4e-3, True)  # lr keeps its log scale
    with pytest.raises(ValueError, match=r"drew lr from \[0.002, 0.004\], not \[0.001, 0.01\]"):
        X.tune(4, store, ov, **quiet)  # the default space on the narrowed study
    with pytest.raises(ValueError, match="a changed search space needs a new --storage"):
        X.tune(4, store, ov, bounds={"lr": (2e-3, 3e-3), "t_ref": (2.5e-3, 4e-3)}, **quiet)
    with pytest.raises(ValueError, match="not a tuned key"):
        X.tune(1, tmp_path / "x.jsonl", ov, bounds={"dt": (1e-4, 1e-3)}, **quiet)
    with pytest.raises(ValueError, match="fixed by --set"):
        X.tune(1, tmp_path / "x.jsonl", ov, bounds={"gate_low": (-3.0, -1.0)}, **quiet)
    with pytest.raises(ValueError, match="lr"):
        X.tune(1, tmp_path / "x.jsonl", ov, bounds={"lr": (4e-3, 2e-3)}, **quiet)
    with pytest.raises(ValueError, match=r"reference setting .* outside --space for \['t_ref'\]"):
        X.tune(1, tmp_path / "y.jsonl", ov, bounds={"t_ref": (3.5e-3, 4e-3)}, **quiet)


def test_rate_profile_counts_silent_and_saturated_hidden_neurons():
    """Hidden neurons 0-2 get no input (silent), 3-5 a current far above threshold, so they fire at
    the refractory-limited maximum: one spike every round(t_ref/dt) + 1 steps, i.e. 25 in 100 ms at
    3 ms / 1 ms.  The profile must say half silent, half saturated, nothing in between."""
    from experiments.erbp_pimnist import rate_profile

    cfg = ERBPConfig(sizes=(8, 6, 2), t_ref=3e-3, dt=1e-3, t_test=0.1, p_syn=1.0, noise_std=0.0)
    w0 = jnp.zeros((8, 6)).at[:, 3:].set(50.0)
    params = ERBPParams((w0, jnp.zeros((6, 2))), (jnp.zeros((2, 6)),))
    x = np.ones((20, 8), np.float32)  # every pixel above the 0.43 threshold: all inputs fire
    prof = rate_profile(cfg, params, x, jax.random.PRNGKey(0), batch=10)
    assert prof["max_rate_hz"] == pytest.approx(250.0)
    h = prof["hidden1"]
    assert h["silent"] == pytest.approx(0.5)
    assert h["saturated_ge_80pct"] == pytest.approx(0.5)
    assert h["in_between"] == 0.0
    # the driven neurons reach the refractory limit exactly: 25 spikes in 100 ms = 250 Hz
    assert h["rate_quartiles_hz"] == pytest.approx([0.0, 125.0, 250.0])
    with pytest.raises(ValueError, match="multiple of batch"):
        rate_profile(cfg, params, x[:15], jax.random.PRNGKey(0), batch=10)


def test_tune_of_erbp_also_searches_the_kick_size(tmp_path):
    """An eRBP study searches the membrane-kick size ``noise_std`` beside the common keys (peRBP
    studies do not: their runs have no kicks).  Its reference trial is the eRBP default kick
    (``noise_std=None`` resolves to NOISE_STD['erbp']) and scores exactly what the default
    configuration scores when run directly; sampled kicks stay in the range; ``--space
    noise_std=...`` is refused for a peRBP study."""
    from pathlib import Path

    from experiments import erbp_pimnist as X
    from spikejax.experiment import run_experiment

    assert set(X.tune_space("erbp")) == set(X.TUNE_SPACE) | {"noise_std"}
    assert set(X.tune_space("perbp")) == set(X.TUNE_SPACE)
    ov = dict(method="erbp", batch_size=10, dataset="digits", val=300, epochs=1, t_train=0.02, t_burnin=0.005, t_test=0.02,
              input_threshold=0.3, eval_batch=300, lr_decay=0.7, gate_low=-1.0, gate_high=1.0, t_ref=3e-3,
              feedback_std_weight=7.0, init_std_weight=7.0)
    quiet = dict(work_dir=tmp_path / "w", log=lambda *_: None)
    rows = X.tune(2, tmp_path / "e.jsonl", ov, **quiet)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert rows[0]["params"] == pytest.approx({"lr": X.CONFIG["lr"], "noise_std": X.NOISE_STD["erbp"]})
    assert 0.02 <= rows[1]["params"]["noise_std"] <= 0.5 and rows[1]["params"]["noise_std"] != X.NOISE_STD["erbp"]
    # the reference trial is the default eRBP configuration (noise_std=None), bit for bit
    base = dict(X.TUNE_PROTOCOL, **ov)
    direct = run_experiment(X, overrides=[f"{k}={v}" for k, v in base.items()], out_dir=tmp_path / "direct", quiet=True)
    assert json.loads(Path(direct).read_text())["config"]["noise_std"] is None
    assert rows[0]["values"][0] == json.loads(Path(direct).read_text())["metrics"]["val_err_pct"]
    with pytest.raises(ValueError, match="not a tuned key for method perbp"):
        X.tune(1, tmp_path / "p.jsonl", dict(ov, method="perbp"), bounds={"noise_std": (0.05, 0.3)}, **quiet)
