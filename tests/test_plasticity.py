"""Three-factor plasticity interface: hand-computed traces and eligibility, the eRBP instance as a
matrix product with blank-out gating, and reward-modulated STDP learning a pattern-to-action task."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from spikejax.neurons import LIF
from spikejax.plasticity import (
    HebbTerm,
    ThreeFactorRule,
    apply_update,
    boxcar_gate,
    check_gate,
    cosine,
    erbp_rule,
    rstdp_rule,
)

DT = 1e-3


def test_pair_stdp_into_eligibility_matches_hand_computation():
    """pre at step 0, post at step 3: LTP = a_plus * exp(-3 dt / tau_plus); post at 5, pre at 9:
    LTD = a_minus * exp(-4 dt / tau_minus); eligibility decays with tau_elig in between."""
    tp, tm, te = 20e-3, 10e-3, 50e-3
    rule = rstdp_rule(lr=1.0, a_plus=1.0, a_minus=0.5, tau_plus=tp, tau_minus=tm, tau_elig=te)
    pre = np.zeros((12, 1, 1), np.float32)
    post = np.zeros((12, 1, 1), np.float32)
    pre[0], post[3], post[5], pre[9] = 1, 1, 1, 1
    st = rule.init(1, 1, 1)
    for t in range(12):
        st, dw = rule.step(st, pre[t], post[t], 1.0, dt=DT)
    ltp = math.exp(-3 * DT / tp)  # pre trace seen by the post spike at step 3
    ltp2 = math.exp(-5 * DT / tp)  # and by the post spike at step 5
    ltd = 0.5 * (math.exp(-4 * DT / tm) + math.exp(-6 * DT / tm))  # post traces seen by the pre spike at 9
    a = math.exp(-DT / te)
    expected = ltp * a ** (11 - 3) + ltp2 * a ** (11 - 5) - ltd * a ** (11 - 9)
    np.testing.assert_allclose(float(st.elig[0, 0, 0]), expected, rtol=1e-5)
    # with a global modulator the per-step update is lr * M * e
    np.testing.assert_allclose(float(dw[0, 0]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(rule.modulate(st, -2.0)[0, 0]), -2 * expected, rtol=1e-5)


def test_erbp_rule_is_a_matrix_product_summed_over_the_batch(key):
    k1, k2, k3 = jax.random.split(key, 3)
    B, n_pre, n_post = 4, 7, 5
    pre = jax.random.bernoulli(k1, 0.5, (B, n_pre)).astype(jnp.float32)
    cur = jax.random.uniform(k2, (B, n_post), jnp.float32, -2.0, 2.0)
    U = jax.random.normal(k3, (B, n_post), jnp.float32)
    rule = erbp_rule(lr=0.1)
    st = rule.init(n_pre, n_post, B)
    gate = boxcar_gate(cur, -1.15, 1.15)
    _, dw = rule.step(st, pre, None, U, dt=DT, post_value=gate)
    np.testing.assert_allclose(np.asarray(dw), 0.1 * np.asarray(pre).T @ (np.asarray(gate) * np.asarray(U)), rtol=1e-6)
    # batch = sum of pure online (batch-1) updates
    per = sum(rule.step(rule.init(n_pre, n_post, 1), pre[b], None, U[b], dt=DT, post_value=gate[b])[1] for b in range(B))
    np.testing.assert_allclose(np.asarray(dw), np.asarray(per), rtol=1e-5, atol=1e-7)
    # columns whose current lies outside the gate get nothing
    outside = np.asarray((cur <= -1.15) | (cur >= 1.15))
    for b in range(B):
        _, d1 = rule.step(rule.init(n_pre, n_post, 1), pre[b], None, U[b], dt=DT, post_value=gate[b])
        assert np.all(np.asarray(d1)[:, outside[b]] == 0)


def test_mask_gates_updates_shared_and_per_sample(key):
    k1, k2, k3 = jax.random.split(key, 3)
    B, n_pre, n_post = 3, 6, 4
    pre = jnp.ones((B, n_pre), jnp.float32)
    U = jnp.ones((B, n_post), jnp.float32)
    gate = jnp.ones((B, n_post), jnp.float32)
    rule = erbp_rule(lr=1.0)
    m_shared = jax.random.bernoulli(k1, 0.5, (n_pre, n_post)).astype(jnp.float32)
    _, dw = rule.step(rule.init(n_pre, n_post, B), pre, None, U, dt=DT, post_value=gate, mask=m_shared)
    np.testing.assert_array_equal(np.asarray(dw), B * np.asarray(m_shared))
    m = jax.random.bernoulli(k2, 0.5, (B, n_pre, n_post)).astype(jnp.float32)
    _, dw = rule.step(rule.init(n_pre, n_post, B), pre, None, U, dt=DT, post_value=gate, mask=m)
    np.testing.assert_array_equal(np.asarray(dw), np.asarray(m).sum(0))
    with pytest.raises(ValueError, match="mask must be"):
        rule.step(rule.init(n_pre, n_post, B), pre, None, U, dt=DT, post_value=gate, mask=jnp.ones((2, 2)))


def test_rule_validation():
    with pytest.raises(ValueError, match="tau_pre is required"):
        ThreeFactorRule(terms=(HebbTerm("trace", "spike"),))
    with pytest.raises(ValueError, match="modulation"):
        ThreeFactorRule(modulation="local")
    with pytest.raises(ValueError, match="HebbTerm.post"):
        ThreeFactorRule(terms=(HebbTerm("spike", "voltage"),))
    with pytest.raises(ValueError, match="tau_elig must be positive"):
        ThreeFactorRule(tau_elig=-1.0)
    rule = rstdp_rule()
    st = rule.init(3, 2, 2)
    with pytest.raises(ValueError, match="global modulator"):
        rule.step(st, jnp.zeros((2, 3)), jnp.zeros((2, 2)), jnp.ones((3,)), dt=DT)
    with pytest.raises(ValueError, match="post_value is required"):
        erbp_rule().step(erbp_rule().init(3, 2), jnp.zeros((1, 3)), None, jnp.ones((1, 2)), dt=DT)
    with pytest.raises(ValueError, match="lower bound .* must be below"):
        check_gate((1.0, 1.0))
    with pytest.raises(ValueError, match="lower bound .* must be below"):
        check_gate((2.0, -1.0))


def test_apply_update_bounds_and_cosine():
    w = apply_update(jnp.array([0.5, 0.9]), jnp.array([-1.0, 0.5]), 0.0, 1.0)
    np.testing.assert_array_equal(np.asarray(w), [0.0, 1.0])
    assert float(cosine([jnp.ones(3)], [2 * jnp.ones(3)])) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Reward-modulated STDP: a two-choice pattern-to-action association (a contextual bandit)


def _pattern_action_task(key, lr, n_trials=400, steps=50, n_in=20, rate_on=60.0, rate_off=4.0):
    """Each trial shows one of two input patterns (half the inputs at ``rate_on``); two LIF action
    neurons with mutual inhibition compete; the action is the neuron with more spikes; the reward is
    +1 for the action assigned to the pattern, -1 otherwise.  R-STDP builds an eligibility trace
    during the trial and the reward-prediction error ``r - r_bar`` releases it at the end."""
    rule = rstdp_rule(lr=lr, a_plus=1.0, a_minus=1.0, tau_plus=20e-3, tau_minus=20e-3, tau_elig=1.0)
    model = LIF(spike_fn=lambda x: (x >= 0).astype(x.dtype), input_mode="delta")
    lp = LIF.params(tau_mem=20e-3, v_th=1.0)
    k0, key = jax.random.split(key)
    w0 = jax.random.uniform(k0, (n_in, 2), jnp.float32, 0.2, 0.3)
    groups = (jnp.arange(n_in) >= n_in // 2).astype(jnp.int32)

    def trial(carry, k):
        w, rbar = carry
        kc, ks, kn, kt = jax.random.split(k, 4)
        c = jax.random.bernoulli(kc).astype(jnp.int32)
        rates = jnp.where(groups == c, rate_on, rate_off)
        pre = jax.random.bernoulli(ks, rates[None, :] * DT, (steps, n_in)).astype(jnp.float32)
        noise = 0.3 * jax.random.bernoulli(kn, 0.1, (steps, 2)).astype(jnp.float32)  # 100 Hz background kicks

        def step(carry, xs):
            ns, ts, zprev = carry
            s_pre, nz = xs
            ns, z = model.step(lp, ns, s_pre[None, :] @ w + nz[None, :] - zprev[:, ::-1], dt=DT)
            ts, _ = rule.step(ts, s_pre[None, :], z, None, dt=DT)  # eligibility only; reward comes at the end
            return (ns, ts, z), z[0]

        st0 = (model.init(lp, (1, 2)), rule.init(n_in, 2, 1), jnp.zeros((1, 2), jnp.float32))
        (_, ts, _), zs = lax.scan(step, st0, (pre, noise))
        counts = zs.sum(0)
        tie = jax.random.bernoulli(kt).astype(jnp.int32)
        action = jnp.where(counts[0] == counts[1], tie, jnp.argmax(counts).astype(jnp.int32))
        r = jnp.where(action == c, 1.0, -1.0).astype(jnp.float32)
        w = apply_update(w, rule.modulate(ts, r - rbar), 0.0, 1.0)
        return (w, 0.9 * rbar + 0.1 * r), (action == c)

    (w, _), correct = lax.scan(trial, (w0, jnp.float32(0.0)), jax.random.split(key, n_trials))
    return w, correct


@pytest.mark.parametrize("seed", [0, 1])
def test_rstdp_learns_pattern_to_action(seed):
    run = jax.jit(_pattern_action_task)
    w, correct = run(jax.random.PRNGKey(seed), 0.01)
    _, control = run(jax.random.PRNGKey(seed), 0.0)
    correct, control = np.asarray(correct), np.asarray(control)
    assert correct[-100:].mean() >= 0.85, correct[-100:].mean()
    assert control[-100:].mean() <= 0.75  # without plasticity: chance level
    # the learned weights map each pattern's inputs to its action
    w = np.asarray(w)
    assert w[:10, 0].mean() > w[:10, 1].mean() and w[10:, 1].mean() > w[10:, 0].mean()
