"""Mihalas–Niebur neuron: Euler step by hand, the ReScience reference loop, and every one of the
paper's 20 behaviours (papers.md 1.3) checked quantitatively on its spike train.

The numbers quoted in the comments are what the presets produce (forward Euler, dt = 0.1 ms,
float64); the checks are the published behaviour, with margins, not those exact numbers.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import spikejax as sj
from spikejax.neurons import MihalasNiebur, MNState, mn_preset, mn_preset_names, mn_stimulus
from spikejax.neurons.mihalas_niebur import run_preset

DT = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _x64_module():
    """Presets B and H sit 1e-6 (relative) above their bifurcation: float64 like ReScience."""
    prev = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", prev)


@pytest.fixture(scope="module")
def traces(_x64_module):
    return {name: run_preset(name) for name in mn_preset_names()}


def spike_ms(tr):
    """Spike times in ms (end of the step in which the neuron fired)."""
    return tr.t[tr.spikes > 0] * 1e3


def window(times, lo, hi):
    return times[(times >= lo) & (times < hi)]


def run_stim(name, pulses, **kw):
    return spike_ms(run_preset(name, stimulus=mn_stimulus(pulses, DT), **kw))


def split_bursts(times, gap):
    """Split a spike train into bursts separated by ISIs > gap."""
    if len(times) == 0:
        return []
    cuts = np.flatnonzero(np.diff(times) > gap) + 1
    return np.split(times, cuts)


# ---------------------------------------------------------------------------------------------
# the step itself


def test_euler_three_steps_by_hand():
    """Three forward-Euler steps computed by hand (spike + reset with Theta <- Theta_r at step 1)."""
    m = MihalasNiebur()
    p = m.params(a=5.0, a1=10.0, a2=-0.6, dtype=jnp.float64)
    s = MNState(*(jnp.asarray(v, jnp.float64) for v in (-0.066, -0.065, 1.0, 0.5)))
    xs = jnp.asarray([20.0, 20.0, 0.0])
    # step 1: dV = 20 + 1 + 0.5 - 50*0.004 = 21.3 -> V = -0.06387
    #         dTh = 5*0.004 - 10*(-0.015) = 0.17 -> Th = -0.064983 ; V >= Th: spike
    #         reset V = -0.07, Th = max(-0.06, -0.064983) = -0.06,
    #         I1 = 0*0.98 + 10 = 10, I2 = 1*0.499 - 0.6 = -0.101
    # step 2: dV = 20 + 10 - 0.101 - 0 = 29.899 -> V = -0.0670101
    #         dTh = 0 - 10*(-0.01) = 0.1 -> Th = -0.05999 ; I1 = 9.8, I2 = -0.100798
    # step 3: dV = 9.8 - 0.100798 - 50*0.0029899 = 9.549707 -> V = -0.0660551293
    #         dTh = 5*0.0029899 - 10*(-0.00999) = 0.1148495 -> Th = -0.05997851505
    #         I1 = 9.604, I2 = -0.100596404
    expected = np.array(
        [
            [-0.07, -0.06, 10.0, -0.101],
            [-0.0670101, -0.05999, 9.8, -0.100798],
            [-0.0660551293, -0.05997851505, 9.604, -0.100596404],
        ]
    )
    _, (states, z) = sj.simulate(m.step, p, s, xs, dt=DT, record="all")
    got = np.stack([np.asarray(f) for f in states], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(np.asarray(z), [1.0, 0.0, 0.0])


def _reference_spike_steps(preset):
    """Independent forward-Euler loop in the ReScience code units (ms, mV), from papers.md 1.1."""
    p = {k: float(v) for k, v in preset.params._asdict().items()}
    g, k1, k2, a, b = (p[k] * 1e-3 for k in ("g_over_c", "k1", "k2", "a", "b"))  # ms^-1
    el, vr, thr, thinf = (p[k] * 1e3 for k in ("e_l", "v_r", "theta_r", "theta_inf"))  # mV
    dt = preset.dt * 1e3
    v, th = float(preset.state0.v) * 1e3, float(preset.state0.theta) * 1e3
    i1, i2 = float(preset.state0.i1), float(preset.state0.i2)  # V/s == mV/ms
    out = []
    for n, x in enumerate(np.asarray(preset.stimulus, float)):
        v, th, i1, i2 = (
            v + dt * (x + i1 + i2 - g * (v - el)),
            th + dt * (a * (v - el) - b * (th - thinf)),
            i1 - dt * k1 * i1,
            i2 - dt * k2 * i2,
        )
        if v >= th:
            out.append(n)
            v, th = vr, max(thr, th)
            i1, i2 = p["r1"] * i1 + p["a1"], p["r2"] * i2 + p["a2"]
    return np.asarray(out, int)


def test_matches_rescience_reference_loop(traces):
    for name, tr in traces.items():
        ref = _reference_spike_steps(mn_preset(name))
        np.testing.assert_array_equal(np.flatnonzero(tr.spikes), ref, err_msg=name)


def test_float32_matches_float64_except_class_1(traces):
    """float32 reproduces every spike train but B, whose 2e-8 V margin above threshold is below
    float32 resolution at -50 mV (float32 gives no spike there)."""
    for name, tr in traces.items():
        if name == "class_1":
            continue
        tr32 = run_preset(name, dtype=jnp.float32)
        assert tr32.v.dtype == np.float32
        s64, s32 = np.flatnonzero(tr.spikes), np.flatnonzero(tr32.spikes)
        assert len(s64) == len(s32), name
        assert np.max(np.abs(s64 - s32), initial=0) <= 1, name


def test_batched_and_vmapped():
    m = MihalasNiebur()
    p = m.params(dtype=jnp.float64)
    s = m.init(p, (3,))
    assert s.v.shape == (3,) and float(s.v[0]) == -0.07 and float(s.theta[0]) == -0.05
    xs = jnp.broadcast_to(jnp.asarray([0.5, 1.5, 3.0]), (2000, 3))
    _, z = sj.simulate(m.step, p, s, xs, dt=DT)
    counts = np.asarray(z.sum(0))
    assert counts[0] == 0 and 0 < counts[1] < counts[2]
    s1 = m.init(p, ())
    zs = jax.vmap(lambda x: sj.simulate(m.step, p, s1, x, dt=DT)[1], in_axes=1, out_axes=1)(xs)
    np.testing.assert_array_equal(np.asarray(zs), np.asarray(z))


@pytest.mark.parametrize("detach_reset", [False, True])
def test_surrogate_gradient_finite(detach_reset):
    pre = mn_preset("tonic_spiking", dtype=jnp.float64)
    m = MihalasNiebur(detach_reset=detach_reset)

    def n_spikes(amp):
        _, z = sj.simulate(m.step, pre.params, pre.state0, amp * jnp.ones(2000), dt=DT)
        return z.sum()

    g = float(jax.grad(n_spikes)(1.5))
    assert math.isfinite(g) and g > 0

    def v_mean(a):
        p = pre.params._replace(a=a)
        _, (_, rec) = sj.simulate(m.step, p, pre.state0, pre.stimulus, dt=DT, record=("v",))
        return rec["v"].mean()

    assert math.isfinite(float(jax.grad(v_mean)(jnp.asarray(0.0))))


# ---------------------------------------------------------------------------------------------
# bad input


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match="tonic_spiking") as e:
        mn_preset("tonic_bursting_fast")
    assert "T/spike_latency" in str(e.value)
    with pytest.raises(ValueError, match="valid names"):
        mn_preset("Z")


def test_preset_lookup_by_letter_and_name():
    assert mn_preset("A").name == "tonic_spiking"
    assert mn_preset("Spike latency").letter == "T"
    assert mn_preset("h").name == "class_2"
    assert len(mn_preset_names()) == 20 and len(set(mn_preset_names())) == 20


@pytest.mark.parametrize("name", ["g_over_c", "k1", "k2", "b"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_non_positive_rate_raises(name, value):
    with pytest.raises(ValueError, match=name):
        MihalasNiebur.params(**{name: value})


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="v_r"):
        MihalasNiebur.params(v_r=-0.05, theta_r=-0.06)
    with pytest.raises(ValueError, match="a1"):
        MihalasNiebur.params(a1=float("inf"))
    m = MihalasNiebur()
    p = m.params()
    s = m.init(p, (2,))
    with pytest.raises(ValueError, match="dt"):
        m.step(p, s, jnp.zeros(2), dt=0.05)  # G/C dt = 2.5: forward Euler unstable
    with pytest.raises(ValueError, match="shape"):
        m.step(p, s, jnp.zeros(3), dt=DT)
    with pytest.raises(ValueError, match="v_scale"):
        MihalasNiebur(v_scale=0.0)
    with pytest.raises(ValueError, match="whole number"):
        mn_stimulus(((1.0, 0.00015),), DT)


# ---------------------------------------------------------------------------------------------
# the 20 behaviours


def test_A_tonic_spiking(traces):
    t = spike_ms(traces["tonic_spiking"])  # 9 spikes, ISI 22.0 ms
    isi = np.diff(t)
    assert len(t) == 9
    assert isi.std() / isi.mean() < 0.01
    # LIF period from V_r to Theta_inf with V_inf = -40 mV: tau ln(30/10) = 21.97 ms
    assert abs(isi.mean() - 20.0 * math.log(3.0)) < 0.2


def test_B_class_1_rate_arbitrarily_low(traces):
    t = spike_ms(traces["class_1"])  # 2 spikes (211.1, 484.8 ms) in 0.5 s
    assert len(t) <= 2 and t[0] > 200
    # f-I near rheobase (I/C = 1 V/s): steady ISI = tau ln((1 + eps)/eps), unbounded as eps -> 0
    pre = mn_preset("class_1")
    m = MihalasNiebur()
    eps = jnp.asarray([-1e-3, 1e-6, 1e-4, 1e-2])

    def steady_isi(e):
        _, z = sj.simulate(m.step, pre.params, pre.state0, jnp.full(30000, 1.0 + e), dt=DT)
        return z

    z = np.asarray(jax.vmap(steady_isi)(eps))
    assert z[0].sum() == 0  # just below rheobase: silent
    isis = []
    for row, e in zip(z[1:], np.asarray(eps)[1:]):
        isi = np.diff(np.flatnonzero(row))[-1] * DT * 1e3
        assert abs(isi - 20.0 * math.log((1 + e) / e)) < 1.0  # 275.7, 183.8, 92.1 ms
        isis.append(isi)
    assert isis[0] > 250 and isis[0] > isis[1] > isis[2]  # rate -> 0 (< 4 Hz) at rheobase


def test_C_spike_frequency_adaptation(traces):
    isi = np.diff(spike_ms(traces["spike_frequency_adaptation"]))  # 15.5 -> 21.2 ms
    assert len(isi) >= 8
    assert np.all(np.diff(isi) > 0)
    assert isi[-1] / isi[0] > 1.3


def test_D_phasic_spiking(traces):
    t = spike_ms(traces["phasic_spiking"])  # 5 spikes at 25-176 ms, then silent
    assert 1 <= len(t) and t.max() < 200
    assert len(window(t, 200, 500)) == 0
    # silent for good (3 s), and without threshold adaptation (a = 0) the same input is tonic
    assert len(run_stim("D", ((1.5, 3.0),))) == len(t)
    assert len(window(run_stim("D", ((1.5, 0.5),), a=0.0), 200, 500)) >= 10


def test_E_accommodation(traces):
    t = spike_ms(traces["accommodation"])  # 3 spikes in the step, none during the ramp
    assert len(window(t, 0, 100)) >= 1  # fast step to 1.5 V/s
    assert len(window(t, 600, 1000)) == 0  # slow ramp 0.5 -> 1 -> 1.5 V/s: no spike


def test_F_threshold_variability(traces):
    tr = traces["threshold_variability"]
    t = spike_ms(tr)  # one spike at 274.5 ms
    assert len(window(t, 0, 250)) == 0  # first depolarising pulse alone: no spike
    assert len(window(t, 250, 276)) == 1  # same pulse after a hyperpolarising one: spike
    assert len(t) == 1
    assert tr.theta[2499] < -0.0515  # hyperpolarisation lowered the threshold (-52.1 mV)
    no_hyper = ((1.5, 0.02), (0.0, 0.18), (0.0, 0.025), (0.0, 0.025), (1.5, 0.025), (0.0, 0.125))
    assert len(run_stim("F", no_hyper)) == 0


def test_G_rebound_spike(traces):
    t = spike_ms(traces["rebound_spike"])  # one spike at 854.7 ms; release at 806 ms
    release = 806.0
    assert len(t) == 1 and release < t[0] < release + 100
    # ReScience's code (-3.5 until 805 ms) gives the same rebound, 48.7 ms after release
    t_code = run_stim("G", ((0.0, 0.05), (-3.5, 0.755), (0.0, 0.195)))
    assert len(t_code) == 1 and abs((t_code[0] - 805.0) - (t[0] - release)) < 0.5
    assert len(run_stim("G", ((0.0, 0.05), (-3.5, 0.95)))) == 0  # no release, no spike


def test_H_class_2_nonzero_minimum_rate(traces):
    t = spike_ms(traces["class_2"])  # 8 spikes, ISI 54.8 -> 31.1 ms
    isi = np.diff(t)
    assert len(t) >= 6 and isi.max() < 60  # > 16 Hz at the nominal threshold 2(1 + 1e-6) V/s
    # f-I (a = 5, from rest, 3 s): whatever the current, firing (steady or transient) is never
    # slower than 10 Hz -- the rate jumps from 0 to ~15 Hz, unlike class 1 (test B: 276 ms ISIs)
    pre = mn_preset("spike_frequency_adaptation")
    m = MihalasNiebur()
    currents = jnp.linspace(1.0, 1.76, 39)
    _, z = jax.vmap(lambda i: sj.simulate(m.step, pre.params, pre.state0, jnp.full(30000, i), dt=DT))(currents)
    z = np.asarray(z)
    counts = z.sum(1)
    assert counts[0] == 0 and counts[-1] > 50
    max_isi = max(np.diff(np.flatnonzero(row)).max() * DT * 1e3 for row in z if row.sum() > 1)
    assert max_isi < 100  # measured 73 ms


def test_I_integrator(traces):
    t = spike_ms(traces["integrator"])  # one spike at 49.3 ms
    assert len(window(t, 30, 50)) == 1  # second pulse of the close pair (10 ms apart)
    assert len(t) == 1  # the distant pair (20 ms apart, 300-360 ms) does not fire
    assert len(run_stim("I", ((1.5, 0.02), (0.0, 0.1)))) == 0  # one pulse alone: no spike


def test_J_input_bistability(traces):
    t = spike_ms(traces["input_bistability"])
    first, second = window(t, 100, 500), window(t, 600, 1000)  # same 1.7 V/s input
    assert len(first) >= 10 and len(second) == 0  # 11 spikes vs none
    # the spiking state at 1.7 V/s is a stable cycle, not a transient: it lasts 3 s
    t_long = run_stim("J", ((1.5, 0.1), (1.7, 3.0)))
    assert t_long[-1] > 3000 and np.std(np.diff(t_long)[-10:]) < 0.2  # ISI 55.3 ms


def test_K_hyperpolarization_induced_spiking(traces):
    t = spike_ms(traces["hyperpolarization_induced_spiking"])  # 3 spikes, ISI 117.4 ms
    isi = np.diff(t)
    assert len(t) >= 3 and isi.std() < 0.01 * isi.mean()
    assert len(run_stim("K", ((0.0, 0.4),))) == 0  # no hyperpolarising drive: rest


def test_L_hyperpolarization_induced_bursting(traces):
    t = spike_ms(traces["hyperpolarization_induced_bursting"])  # bursts of 5, 4, 4
    bursts = split_bursts(t, 20.0)
    isi = np.diff(t)
    assert np.all((isi < 5) | (isi > 80))
    assert len(bursts) >= 3 and all(len(b) >= 3 for b in bursts)
    assert len(run_stim("L", ((0.0, 0.4),))) == 0


def test_M_tonic_bursting(traces):
    t = spike_ms(traces["tonic_bursting"])  # bursts of 8, 6, 5, 5; intra 2.4-7.2, inter 104-109 ms
    isi = np.diff(t)
    assert np.all((isi < 10) | (isi > 100))  # bimodal ISIs
    bursts = split_bursts(t, 50.0)
    assert len(bursts) >= 4 and all(len(b) >= 4 for b in bursts)


def test_N_phasic_bursting(traces):
    t = spike_ms(traces["phasic_bursting"])  # 7 spikes at 25.1-48.4 ms, ISI 2.7-5.9 ms
    assert len(t) >= 3 and np.all(np.diff(t) < 10)
    assert t[0] < 50 and t[-1] < 60
    assert len(run_stim("N", ((1.5, 3.0),))) == len(t)  # one burst, then silent for good


def test_O_rebound_burst(traces):
    t = spike_ms(traces["rebound_burst"])  # 8 spikes at 651.6-666.8 ms; release at 600 ms
    assert len(t) >= 3 and np.all(np.diff(t) < 5)
    assert t[0] > 600 and t[-1] < 700
    assert len(run_stim("O", ((0.0, 0.1), (-3.5, 0.9)))) == 0


def test_P_mixed_mode(traces):
    t = spike_ms(traces["mixed_mode"])  # burst of 7 (ISI 4.9-11.9 ms), then tonic
    burst = window(t, 0, 60)
    assert len(burst) >= 6 and np.diff(burst).mean() < 10
    tonic = window(t, 100, 500)
    assert len(tonic) >= 8 and np.diff(tonic).mean() > 3 * np.diff(burst).mean()
    isi_long = np.diff(run_stim("P", ((2.0, 3.0),)))  # settles to regular spiking, ISI 59.8 ms
    tail = isi_long[-10:]
    assert tail.std() < 0.01 * tail.mean() and tail.mean() > 4 * isi_long[0]


def test_Q_afterpotentials(traces):
    tr = traces["afterpotentials"]
    t = spike_ms(tr)
    assert len(t) == 1 and t[0] < 15  # one spike during the 15 ms pulse (14.7 ms)
    v = tr.v * 1e3
    after = tr.t * 1e3 >= 15.0
    i_peak = np.argmax(np.where(after, v, -np.inf))
    assert v[i_peak] > -60  # depolarising afterpotential without input (-55.8 mV at ~22 ms)
    assert v[i_peak:].min() < -71  # then a hyperpolarising one below E_L (-71.2 mV at ~93 ms)


def test_R_basal_bistability(traces):
    t = spike_ms(traces["basal_bistability"])
    assert len(window(t, 0, 10)) >= 2  # first pulse switches on
    assert len(window(t, 20, 100)) >= 10  # self-sustained firing without input (15 spikes)
    assert len(window(t, 120, 200)) == 0  # second pulse switches off
    t_long = run_stim("R", ((5.0, 0.01), (0.0, 2.0)))  # stays on for 2 s, ISI 6.6 ms
    assert t_long[-1] > 2000


def test_S_preferred_frequency(traces):
    t = spike_ms(traces["preferred_frequency"])  # 4.6, 404.6, 454.9 ms
    assert len(window(t, 0, 5)) == 1 and len(window(t, 400, 405)) == 1  # the 5 V/s pulses fire
    assert len(window(t, 10, 20)) == 0  # 4 V/s pulse 10 ms after: no spike
    assert len(window(t, 450, 460)) == 1  # 4 V/s pulse 50 ms after: spike (resonance)
    assert len(t) == 3
    assert len(run_stim("S", ((0.0, 0.01), (4.0, 0.005), (0.0, 0.1)))) == 0  # alone: no spike
    for gap, fires in ((0.005, False), (0.025, False), (0.045, True), (0.1, False)):
        got = run_stim("S", ((5.0, 0.005), (0.0, gap), (4.0, 0.005), (0.0, 0.1)))
        assert (len(got) == 2) == fires, gap


def test_T_spike_latency(traces):
    t = spike_ms(traces["spike_latency"])  # one spike at 15.5 ms after a 2 ms pulse
    assert len(t) == 1 and t[0] - 2.0 > 10
    assert len(run_stim("T", ((8.0, 0.002), (0.0, 0.048)), a=0.0)) == 0  # needs the falling threshold
    t_strong = run_stim("T", ((10.0, 0.002), (0.0, 0.048)))
    assert len(t_strong) == 1 and t_strong[0] < t[0] - 10  # stronger pulse: short latency (2.0 ms)
