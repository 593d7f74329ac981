"""LIF family against closed forms, hand-computed sequences and an independent ODE solver."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import spikejax as sj
from spikejax.neurons import LIF, LIFSyn1, LIFSyn2, TwoCompartmentLIF
from spikejax.surrogate import fast_sigmoid


def run(model, params, state, xs, dt, **kw):
    return sj.simulate(model.step, params, state, xs, dt=dt, **kw)


def test_membrane_decay_closed_form(x64):
    m = LIF()
    p = m.params(tau_mem=0.02, v_th=1.0, dtype=jnp.float64)
    s = sj.neurons.LIFState(jnp.full((1,), 0.8), jnp.zeros((1,), jnp.int32))
    dt = 1e-4
    _, (states, z) = run(m, p, s, jnp.zeros((500, 1)), dt, record="all")
    t = dt * np.arange(1, 501)
    np.testing.assert_allclose(np.asarray(states.v[:, 0]), 0.8 * np.exp(-t / 0.02), rtol=1e-12)
    assert float(z.sum()) == 0.0


@pytest.mark.parametrize("current", [1.1, 1.5, 3.0])
def test_time_to_first_spike_and_period(x64, current):
    tau, dt, t_ref = 0.02, 1e-4, 2e-3
    m = LIF(reset="zero")
    p = m.params(tau_mem=tau, v_th=1.0, t_ref=t_ref, dtype=jnp.float64)
    s = m.init(p, (1,))
    _, z = run(m, p, s, jnp.full((3000, 1), current), dt)
    spikes = np.flatnonzero(np.asarray(z[:, 0]))
    t_star = tau * math.log(current / (current - 1.0))  # closed form, V(0) = 0
    n_first = math.ceil(t_star / dt - 1e-9)  # first grid step at which V >= 1
    assert spikes[0] + 1 == n_first
    period = round(t_ref / dt) + n_first  # refractory clamp, then integrate from v_reset again
    np.testing.assert_array_equal(np.diff(spikes), period)


def test_hand_computed_sequence_zero_and_subtract_reset(x64):
    dt = math.log(2.0) * 0.01  # decay factor exactly 1/2 per step
    xs = jnp.array([0.6, 0.6, 0.6, 0.0, 1.2])[:, None]
    for reset, v_exp, z_exp in [
        ("zero", [0.6, 0.9, 0.0, 0.0, 0.0], [0, 0, 1, 0, 1]),
        ("subtract", [0.6, 0.9, 0.05, 0.025, 0.2125], [0, 0, 1, 0, 1]),
    ]:
        m = LIF(reset=reset, input_mode="delta")
        p = m.params(tau_mem=0.01, v_th=1.0, dtype=jnp.float64)
        _, (st, z) = run(m, p, m.init(p, (1,)), xs, dt, record="all")
        np.testing.assert_allclose(np.asarray(st.v[:, 0]), v_exp, atol=1e-12)
        np.testing.assert_array_equal(np.asarray(z[:, 0]), z_exp)


def test_first_order_synapse_impulse_response(x64):
    tm, ts, dt = 0.02, 0.005, 1e-4
    m = LIFSyn1()
    p = m.params(tau_mem=tm, tau_syn=ts, v_th=1e9, dtype=jnp.float64)
    xs = jnp.zeros((400, 1)).at[0, 0].set(1.0)
    _, (st, _) = run(m, p, m.init(p, (1,)), xs, dt, record="all")
    t = dt * np.arange(1, 401)
    np.testing.assert_allclose(np.asarray(st.i[:, 0]), np.exp(-t / ts), rtol=1e-12)
    v_exact = ts / (ts - tm) * (np.exp(-t / ts) - np.exp(-t / tm))
    np.testing.assert_allclose(np.asarray(st.v[:, 0]), v_exact, rtol=1e-10, atol=1e-14)


def test_first_order_synapse_equal_time_constants(x64):
    # the alpha-function limit tau_syn = tau_mem: v(t) = (t/tau) exp(-t/tau)
    tau, dt = 0.01, 1e-4
    m = LIFSyn1()
    p = m.params(tau_mem=tau, tau_syn=tau, v_th=1e9, dtype=jnp.float64)
    xs = jnp.zeros((300, 1)).at[0, 0].set(1.0)
    _, (st, _) = run(m, p, m.init(p, (1,)), xs, dt, record="all")
    t = dt * np.arange(1, 301)
    np.testing.assert_allclose(np.asarray(st.v[:, 0]), t / tau * np.exp(-t / tau), rtol=1e-9)


def test_second_order_synapse_against_ode_solver(x64):
    tm, tr, td, dt, bias = 0.02, 0.001, 0.005, 1e-4, 0.3
    m = LIFSyn2()
    p = m.params(tau_mem=tm, tau_rise=tr, tau_syn=td, v_th=1e9, bias=bias, dtype=jnp.float64)
    xs = jnp.zeros((500, 1)).at[0, 0].set(1.0)
    _, (st, _) = run(m, p, m.init(p, (1,)), xs, dt, record="all")
    t = dt * np.arange(1, 501)
    i_exact = td / (td - tr) * (np.exp(-t / td) - np.exp(-t / tr))
    np.testing.assert_allclose(np.asarray(st.i[:, 0]), i_exact, rtol=1e-10, atol=1e-14)

    def rhs(_, y):
        h, i, v = y
        return [-h / tr, -i / td + h / tr, (-v + bias + i) / tm]

    sol = solve_ivp(rhs, (0, t[-1]), [1.0, 0.0, 0.0], t_eval=t, rtol=1e-12, atol=1e-14, method="DOP853")
    np.testing.assert_allclose(np.asarray(st.v[:, 0]), sol.y[2], rtol=1e-7, atol=1e-10)


def test_second_order_noise_is_stationary_ou(x64, key):
    m = LIFSyn2()
    p = m.params(tau_mem=0.01, v_th=1e9, noise_std=0.2, dtype=jnp.float64)
    s = m.init(p, (2000,))
    _, v = sj.simulate(m.step, p, s, jnp.zeros((400, 2000)), dt=1e-3, key=key, record=lambda st, z: st.v)
    # after 40 time constants the ensemble is stationary with std 0.2; lag-1 correlation exp(-dt/tau)
    last = np.asarray(v[-1])
    assert abs(last.std() - 0.2) < 0.012
    corr = np.corrcoef(np.asarray(v[-2]), last)[0, 1]
    assert abs(corr - math.exp(-0.1)) < 0.03


def test_two_compartment_dendrite_and_soma(x64):
    m = TwoCompartmentLIF()
    p = m.params(tau_mem=1e-3, tau_syn=4e-3, tau_dend=5e-3, v_th=1e9, t_ref=0.0, dtype=jnp.float64)
    dt = 1e-4
    xs = (jnp.zeros((200, 1)).at[0, 0].set(1.0), jnp.zeros((200, 1)).at[0, 0].set(2.0))
    _, st = sj.simulate(m.step, p, m.init(p, (1,)), xs, dt=dt, record="state")
    t = dt * np.arange(1, 201)
    np.testing.assert_allclose(np.asarray(st.u[:, 0]), 2.0 * np.exp(-(t - dt) / 5e-3), rtol=1e-12)
    v_exact = 4e-3 / (4e-3 - 1e-3) * (np.exp(-t / 4e-3) - np.exp(-t / 1e-3))
    np.testing.assert_allclose(np.asarray(st.v[:, 0]), v_exact, rtol=1e-10)


def test_refractory_blocks_spikes_and_clamps(x64):
    m = LIF()
    p = m.params(tau_mem=0.01, v_th=1.0, t_ref=5e-3, dtype=jnp.float64)
    _, (st, z) = run(m, p, m.init(p, (1,)), jnp.full((100, 1), 50.0), 1e-3, record="all")
    idx = np.flatnonzero(np.asarray(z[:, 0]))
    np.testing.assert_array_equal(np.diff(idx), 6)  # spike every step would be 1 without t_ref
    np.testing.assert_array_equal(np.asarray(st.v[idx[0] + 1 : idx[0] + 6, 0]), 0.0)


@pytest.mark.parametrize(
    "model,kwargs,match",
    [
        (LIF, dict(tau_mem=0.0), "tau_mem"),
        (LIF, dict(tau_mem=-1e-3), "tau_mem"),
        (LIF, dict(t_ref=-1.0), "t_ref"),
        (LIF, dict(v_reset=2.0, v_th=1.0), "v_reset"),
        (LIFSyn1, dict(tau_syn=0.0), "tau_syn"),
        (LIFSyn2, dict(tau_rise=0.01, tau_syn=0.005), "tau_rise"),
        (LIFSyn2, dict(noise_std=-0.1), "noise_std"),
        (TwoCompartmentLIF, dict(tau_dend=0.0), "tau_dend"),
    ],
)
def test_bad_parameters(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.params(**kwargs)


def test_bad_inputs():
    m = LIF()
    p = m.params()
    s = m.init(p, (3,))
    with pytest.raises(ValueError, match="shape"):
        m.step(p, s, jnp.ones((4,)), dt=1e-3)
    with pytest.raises(TypeError, match="dtype"):
        m.step(p, s, jnp.ones((3,), jnp.int32), dt=1e-3)
    with pytest.raises(ValueError, match="reset"):
        LIF(reset="bogus")
    with pytest.raises(ValueError, match="pair"):
        TwoCompartmentLIF().step(TwoCompartmentLIF.params(), TwoCompartmentLIF.init(TwoCompartmentLIF.params(), (3,)), jnp.ones(3), dt=1e-3)


def test_surrogate_gradient_of_one_step_by_hand():
    # v = a v0 + (1-a) x; z = H(v - 1); dz/dx = (1-a) * d(v - 1) with d the fast-sigmoid derivative
    m = LIF(spike_fn=fast_sigmoid(10.0))
    p = m.params(tau_mem=0.01)
    s = m.init(p, (1,))
    g = jax.grad(lambda x: m.step(p, s, x, dt=1e-3)[1].sum())(jnp.array([1.2]))
    a = math.exp(-0.1)
    v = (1 - a) * 1.2
    np.testing.assert_allclose(float(g[0]), (1 - a) / (1 + 10 * abs(v - 1.0)) ** 2, rtol=1e-5)
