"""Fixed-point (NSAT-like) arithmetic: shift/saturate, integer LIF, blank-out synapses, float bridge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import simulate
from spikejax.fixed_point import (
    OFF,
    FixedPointLIF,
    compare_float_fixed,
    dequantize,
    fixed_blankout_dense,
    fixed_blankout_mask,
    fixed_dense,
    quantize,
    quantize_lif_params,
    saturate,
    shift,
    tau_from_leak_shift,
)
from spikejax.neurons import LIF


def i32(v):
    return jnp.asarray(np.asarray(v, np.int32))


# ---------------------------------------------------------------------------------------------
# shift / saturate


def test_shift_right_rounds_toward_zero_but_never_to_zero():
    x = i32([5, -5, 1, -1, 7, -7, 8, -8, -9, 9, -17, 0, 100, -100])
    np.testing.assert_array_equal(shift(x, -1), [2, -2, 1, -1, 3, -3, 4, -4, -4, 4, -8, 0, 50, -50])
    # 7/8 -> 0 -> sign(7) = 1; -9/8 = -1.125 -> -1 (toward zero, not floor -2); -17/8 -> -2
    np.testing.assert_array_equal(shift(x, -3), [1, -1, 1, -1, 1, -1, 1, -1, -1, 1, -2, 0, 12, -12])
    np.testing.assert_array_equal(shift(i32([5, -5, 32767, -32768]), -15), [1, -1, 1, -1])
    assert int(shift(-32768, -1)) == -16384


def test_shift_left_off_and_saturation():
    x = i32([3, -3, 0, 1, -1])
    np.testing.assert_array_equal(shift(x, 2), [12, -12, 0, 4, -4])
    np.testing.assert_array_equal(shift(x, 0), [3, -3, 0, 1, -1])
    np.testing.assert_array_equal(shift(x, OFF), [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(shift(x, -20), [0, 0, 0, 0, 0])
    # saturate (never wrap) at the configured width
    np.testing.assert_array_equal(shift(i32([100, -100, 16383, 16384, -16384, -16385]), 1), [200, -200, 32766, 32767, -32768, -32768])
    np.testing.assert_array_equal(shift(i32([100, -100]), 10), [32767, -32768])
    np.testing.assert_array_equal(shift(i32([100, -100]), 10, bits=8), [127, -128])
    np.testing.assert_array_equal(shift(i32([1, -1, 2, -2]), 31, bits=32), [2**31 - 1, -(2**31), 2**31 - 1, -(2**31)])
    np.testing.assert_array_equal(shift(i32([1, -1]), 40, bits=32), [2**31 - 1, -(2**31)])
    np.testing.assert_array_equal(shift(i32([-(2**31), 2**31 - 1]), -1, bits=32), [-(2**30), 2**30 - 1])
    # an out-of-range input is computed exactly, then saturated
    np.testing.assert_array_equal(shift(i32([70000, -70000]), -1), [32767, -32768])


def test_shift_vectorised_jittable_and_dtypes():
    x = i32([-7, -7, -7, 7, 7])
    a = i32([-3, -1, 1, OFF, 0])
    out = jax.jit(shift, static_argnums=2)(x, a, 16)
    assert out.dtype == jnp.int32
    np.testing.assert_array_equal(out, [-1, -3, -14, 0, 7])
    np.testing.assert_array_equal(shift(jnp.asarray([5, -5], jnp.int8), -1), [2, -2])
    np.testing.assert_array_equal(shift(jnp.asarray([5], jnp.uint16), 1), [10])
    np.testing.assert_array_equal(shift(jnp.asarray([True, False]), 3), [8, 0])
    # exponent broadcast along the last axis of a 2-D array
    np.testing.assert_array_equal(shift(jnp.full((2, 3), 16, jnp.int32), i32([-1, -2, -4])), [[8, 4, 1], [8, 4, 1]])
    with pytest.raises(TypeError, match="integer"):
        shift(jnp.asarray([1.5], jnp.float32), -1)
    with pytest.raises(ValueError, match="exponent"):
        shift(i32([1]), -1.5)
    with pytest.raises(ValueError, match="bits"):
        shift(i32([1]), -1, bits=33)


def test_saturate_bit_limits():
    np.testing.assert_array_equal(saturate(i32([-129, -128, 0, 127, 128]), 8), [-128, -128, 0, 127, 127])
    np.testing.assert_array_equal(saturate(i32([-3, -2, 1, 2]), 2), [-2, -2, 1, 1])
    np.testing.assert_array_equal(saturate(i32([-32769, -32768, 32767, 32768])), [-32768, -32768, 32767, 32767])
    np.testing.assert_array_equal(saturate(i32([-(2**31), 2**31 - 1]), 32), [-(2**31), 2**31 - 1])
    assert saturate(jnp.asarray([300], jnp.int16), 8).dtype == jnp.int32
    np.testing.assert_array_equal(saturate(jnp.asarray([300, -300], jnp.int16), 8), [127, -128])
    for bad in (1, 33, 0, 16.0, True):
        with pytest.raises(ValueError, match="bits"):
            saturate(i32([1]), bad)


def test_saturate_int64_clips_before_narrowing(x64):
    x = jnp.asarray([-(2**40), 2**40, 5], jnp.int64)
    np.testing.assert_array_equal(saturate(x, 32), [-(2**31), 2**31 - 1, 5])
    np.testing.assert_array_equal(saturate(x, 16), [-32768, 32767, 5])


# ---------------------------------------------------------------------------------------------
# fixed-point LIF


def _run(model, params, x, v0=0):
    state0 = model.init(params, x.shape[1:], v0)
    return simulate(model.step, params, state0, x, dt=1.0, record="all")


def test_membrane_hand_computed_five_steps():
    # decay 3/4 (leak_shift -2), bias 1, gain x2, threshold 50, zero reset, 1 refractory tick
    p = FixedPointLIF.params(bits=16, leak_shift=-2, v_th=50, v_reset=0, t_ref_steps=1, w_gain=1, bias=1)
    x = i32([[20], [10], [0], [7], [0]])
    (_, (st, z)) = _run(FixedPointLIF(), p, x)  # synaptic_delay=1 (NSAT)
    # t0: acm_used 0: v = 0 - 0 + 0 + 1 = 1
    # t1: acm_used 40: v = 1 - shift(1,-2)=1 (never 0) -> 0, + 40 + 1 = 41
    # t2: acm_used 20: v = 41 - 10 + 20 + 1 = 52 >= 50 -> spike, v = 0, ref = 1
    # t3: acm_used 0: v = 0 + 1 = 1 -> refractory clamp to v_reset = 0, no spike
    # t4: acm_used 14: v = 0 + 14 + 1 = 15
    np.testing.assert_array_equal(st.v[:, 0], [1, 41, 0, 0, 15])
    np.testing.assert_array_equal(st.acm[:, 0], [40, 20, 0, 14, 0])
    np.testing.assert_array_equal(st.ref[:, 0], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(z[:, 0], [0, 0, 1, 0, 0])
    assert st.v.dtype == jnp.int32 and z.dtype == jnp.int32

    # same input without the synaptic delay
    (_, (st, z)) = _run(FixedPointLIF(synaptic_delay=0), p, x)
    # t0: 40 + 1 = 41; t1: 41 - 10 + 20 + 1 = 52 -> spike, 0; t2: 1 -> clamp 0;
    # t3: 0 + 14 + 1 = 15; t4: 15 - shift(15,-2)=3 + 0 + 1 = 13
    np.testing.assert_array_equal(st.v[:, 0], [41, 0, 0, 15, 13])
    np.testing.assert_array_equal(z[:, 0], [0, 1, 0, 0, 0])

    # subtractive reset: 52 -> 52 - (50 - 0) = 2, no refractoriness
    ps = FixedPointLIF.params(leak_shift=-2, v_th=50, v_reset=0, w_gain=1, bias=1, reset="subtract")
    (_, (st, z)) = _run(FixedPointLIF(synaptic_delay=0), ps, x)
    # t2: 2 - shift(2,-2)=1 -> 1, + 0 + 1 = 2; t3: 2 - 1 + 14 + 1 = 16; t4: 16 - 4 + 1 = 13
    np.testing.assert_array_equal(st.v[:, 0], [41, 2, 2, 16, 13])


def test_negative_membrane_and_saturation():
    # negative membrane leaks toward 0 with truncation toward zero
    p = FixedPointLIF.params(bits=8, leak_shift=-2, v_th=100, v_reset=-10)
    x = i32([[0], [0], [-200], [0]])
    (_, (st, _)) = _run(FixedPointLIF(synaptic_delay=0), p, x, v0=-5)
    # -5 - shift(-5,-2)=-1 -> -4; -4 - (-1) = -3; -3 + 1 - 200 -> -202 -> saturated to -128;
    # -128 + 32 = -96
    np.testing.assert_array_equal(st.v[:, 0], [-4, -3, -128, -96])
    # the accumulator saturates to acm_bits (NSAT: 16 bits) after the gain
    p = FixedPointLIF.params(bits=32, leak_shift=OFF, v_th=2**31 - 1, w_gain=4)
    (_, (st, _)) = _run(FixedPointLIF(synaptic_delay=0), p, i32([[5000], [-5000], [-3]]))
    np.testing.assert_array_equal(st.acm[:, 0], [32767, -32768, -48])
    np.testing.assert_array_equal(st.v[:, 0], [32767, -1, -49])
    # negative gain rounds toward zero (no never-to-zero rule in the accumulator)
    p = FixedPointLIF.params(leak_shift=OFF, w_gain=-2)
    (_, (st, _)) = _run(FixedPointLIF(synaptic_delay=0), p, i32([[3], [-3], [-9]]))
    np.testing.assert_array_equal(st.acm[:, 0], [0, 0, -2])


def test_reset_none_refractory_only_blocks_spikes():
    # NSAT erf_ntype: no reset, t_ref limits the rate to one spike per (t_ref + 1) ticks
    p = FixedPointLIF.params(leak_shift=OFF, v_th=10, t_ref_steps=3, reset="none")
    (_, (st, z)) = _run(FixedPointLIF(synaptic_delay=0), p, i32(np.full((10, 1), 5)))
    np.testing.assert_array_equal(st.v[:, 0], 5 * np.arange(1, 11))
    np.testing.assert_array_equal(z[:, 0], [0, 1, 0, 0, 0, 1, 0, 0, 0, 1])


def test_per_neuron_params_jit_and_vmap():
    p = FixedPointLIF.params(leak_shift=i32([-1, -2, OFF]), v_th=i32([10, 20, 30]), bias=i32([1, 2, 3]))
    model = FixedPointLIF()
    x = i32(np.arange(3 * 4 * 3).reshape(3, 4, 3) % 7)  # [batch, T, n]

    def run(xb):
        return simulate(model.step, p, model.init(p, (3,)), xb, dt=1.0, record=("v",))[1]

    zb, rb = jax.jit(jax.vmap(run))(x)
    assert zb.shape == (3, 4, 3)
    for b in range(3):
        z1, r1 = run(x[b])
        np.testing.assert_array_equal(zb[b], z1)
        np.testing.assert_array_equal(rb["v"][b], r1["v"])
    with pytest.raises(TypeError, match="integer"):
        model.step(p, model.init(p, (3,)), jnp.zeros((3,), jnp.float32))
    with pytest.raises(ValueError, match="shape"):
        model.step(p, model.init(p, (3,)), jnp.zeros((4,), jnp.int32))


# ---------------------------------------------------------------------------------------------
# float vs fixed


def _float64_reference(x_float, n, v_th=None):
    """Float64 LIF (delta input, decay 1 - 2**-n, zero reset at v_th) written out by hand."""
    a = 1.0 - 2.0**-n
    v = np.zeros(x_float.shape[1:])
    out = []
    for xt in x_float:
        v = a * v + xt
        if v_th is not None:
            v = np.where(v >= v_th, 0.0, v)
        out.append(v.copy())
    return np.asarray(out)


@pytest.mark.parametrize("n", [2, 4, 6])
def test_fixed_membrane_within_quantisation_bound(x64, n):
    """|v_fixed/scale - v_float| < 2**n (1 - (1 - 2**-n)**t) LSB < 2**n LSB (no spikes)."""
    s = 8
    scale = 2.0**s
    T, n_pre, n_post = 400, 40, 16
    rng = np.random.default_rng(n)
    spikes = (rng.random((T, n_pre)) < 0.1).astype(np.int32)
    w_int = quantize(jnp.asarray(rng.normal(0.0, 0.08, (n_pre, n_post))), scale)
    x_int = fixed_dense(w_int, jnp.asarray(spikes))  # [T, n_post] exact integers
    x_float = np.asarray(dequantize(x_int, scale, jnp.float64))

    p = FixedPointLIF.params(bits=16, leak_shift=-n, v_th=32767)
    model = FixedPointLIF(synaptic_delay=0)
    _, (_, rec) = simulate(model.step, p, model.init(p, (n_post,)), x_int, dt=1.0, record=("v",))
    v_fixed = np.asarray(rec["v"], np.float64)
    assert np.abs(v_fixed).max() < 16000  # no saturation: the bound applies
    v_ref = _float64_reference(x_float, n)
    err_lsb = np.abs(v_fixed - v_ref * scale)
    t = np.arange(1, T + 1)[:, None]
    bound_t = 2.0**n * (1.0 - (1.0 - 2.0**-n) ** t)
    assert np.all(err_lsb <= bound_t + 1e-9), err_lsb.max()
    assert err_lsb.max() < 2.0**n
    assert err_lsb.max() > 0  # the integer leak really rounds
    print(f"n={n}: max |v_fixed - v_float| = {err_lsb.max():.3f} LSB = {err_lsb.max() / scale:.5f} (bound {2**n} LSB)")

    # the same comparison through compare_float_fixed and the library's float LIF (float64)
    dt = 1e-3
    pf = LIF.params(tau_mem=tau_from_leak_shift(-n, dt), v_th=100.0, dtype=jnp.float64)
    delay = n % 4 // 2  # NSAT's one-tick delay for n = 2, 6; none for n = 4
    res = compare_float_fixed(pf, jnp.asarray(spikes), w=w_int.astype(jnp.float64) / scale, scale=scale, dt=dt, synaptic_delay=delay)
    assert res.spikes_equal and res.first_mismatch == -1
    assert res.bound == pytest.approx(2.0 ** (n - s))
    assert res.max_v_diff < res.bound
    np.testing.assert_allclose(res.max_v_diff, err_lsb.max() / scale, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_compare_float_fixed_with_spikes(x64, reset):
    n, s, dt = 4, 10, 1e-3
    scale = 2.0**s
    T, n_pre, n_post = 600, 30, 12
    rng = np.random.default_rng(1)
    spikes = jnp.asarray((rng.random((T, n_pre)) < 0.15).astype(np.int32))
    w = jnp.asarray(rng.normal(0.08, 0.1, (n_pre, n_post)))
    pf = LIF.params(tau_mem=tau_from_leak_shift(-n, dt), v_th=1.0, v_reset=0.0, t_ref=2e-3, dtype=jnp.float64)
    res = compare_float_fixed(pf, spikes, w=w, scale=scale, dt=dt, reset=reset)
    assert res.z_fixed.sum() > 50  # the layer does spike
    assert res.spike_agreement > 0.99
    assert res.max_v_diff_agreeing < res.bound
    if res.spikes_equal:
        assert res.max_v_diff < res.bound
    print(
        f"reset={reset}: agreement {res.spike_agreement:.4f}, first mismatch {res.first_mismatch}, "
        f"max dv before it {res.max_v_diff_agreeing:.5f} (bound {res.bound:.5f})"
    )
    # raw float weights: drive differs by the weight rounding, agreement still high
    raw = compare_float_fixed(pf, spikes, w=w, scale=scale, dt=dt, reset=reset, dequantized_reference=False)
    assert raw.spike_agreement > 0.95


def test_compare_float_fixed_drives_float32():
    # drive inputs (w=None), default float32, v_leak != 0 folded into the bias
    n, dt, scale = 3, 1e-3, 2.0**6
    pf = LIF.params(tau_mem=tau_from_leak_shift(-n, dt), v_th=2.0, v_leak=0.5)
    pq = quantize_lif_params(pf, scale=scale, dt=dt)
    assert int(pq.leak_shift) == -n and int(pq.v_th) == 128 and int(pq.bias) == 4  # 0.5*64/8
    x = jnp.asarray(np.random.default_rng(0).normal(0.1, 0.3, (300, 5)), jnp.float32)
    res = compare_float_fixed(pf, x, scale=scale, dt=dt, synaptic_delay=0)
    assert res.spike_agreement > 0.98
    assert res.max_v_diff_agreeing < res.bound + 1e-5


def test_quantize_lif_params_and_quantize():
    dt = 1e-3
    pq = quantize_lif_params(LIF.params(tau_mem=tau_from_leak_shift(-5, dt), v_th=1.5, v_reset=-0.25, t_ref=3e-3), scale=2**4, dt=dt)
    assert [int(f) for f in (pq.leak_shift, pq.v_th, pq.v_reset, pq.t_ref_steps, pq.bias)] == [-5, 24, -4, 3, 0]
    with pytest.raises(ValueError, match="tau_mem"):
        quantize_lif_params(LIF.params(tau_mem=20e-3), scale=2**8, dt=dt)
    with pytest.raises(ValueError, match="v_th"):
        quantize_lif_params(LIF.params(tau_mem=tau_from_leak_shift(-4, dt), v_th=1.001), scale=2**8, dt=dt)
    with pytest.raises(ValueError, match="v_th"):
        quantize_lif_params(LIF.params(tau_mem=tau_from_leak_shift(-4, dt), v_th=1000.0), scale=2**8, dt=dt)
    np.testing.assert_array_equal(quantize(jnp.asarray([0.5, -0.26, 1.0, 300.0, -300.0]), 2**7), [64, -33, 128, 32767, -32768])
    np.testing.assert_array_equal(quantize(jnp.asarray([1e12, -1e12]), 1.0, bits=32), [2**31 - 1, -(2**31)])
    with pytest.raises(ValueError, match="scale"):
        quantize(jnp.asarray([1.0]), 0.0)


# ---------------------------------------------------------------------------------------------
# synapses


def test_fixed_dense_exact():
    w = i32([[1, -2, 3], [100, 0, -7]])
    np.testing.assert_array_equal(fixed_dense(w, i32([1, 1])), [101, -2, -4])
    np.testing.assert_array_equal(fixed_dense(w, jnp.asarray([False, True])), [100, 0, -7])
    np.testing.assert_array_equal(fixed_dense(w, i32([[1, 0], [0, 2]])), [[1, -2, 3], [200, 0, -14]])
    with pytest.raises(ValueError, match="neurons"):
        fixed_dense(w, i32([1, 1, 1]))


@pytest.mark.parametrize("prob,p", [(9, 0.6), (5, 1.0 / 3.0), (0.25, 0.25)])
def test_blankout_transmits_right_fraction(key, prob, p):
    n_pre, n_post = 500, 200  # 100000 events
    w = jnp.ones((n_pre, n_post), jnp.int32)
    x, mask = fixed_blankout_dense(key, w, jnp.ones((n_pre,), jnp.int32), prob)
    assert x.dtype == jnp.int32 and mask.dtype == jnp.int32
    frac = float(jnp.mean(mask.astype(jnp.float32)))
    tol = 5.0 * np.sqrt(p * (1 - p) / (n_pre * n_post))
    assert abs(frac - p) < tol, (frac, p, tol)
    np.testing.assert_array_equal(x, mask.sum(axis=0))


def test_blankout_extremes_and_per_post_prob(key):
    w = i32(np.arange(1, 13).reshape(4, 3))
    s = i32([1, 0, 1, 1])
    x, mask = fixed_blankout_dense(key, w, s, 15)
    np.testing.assert_array_equal(x, fixed_dense(w, s))
    assert int(mask.min()) == 1
    x, mask = fixed_blankout_dense(key, w, s, 0)
    np.testing.assert_array_equal(x, [0, 0, 0])
    assert int(mask.max()) == 0
    x, _ = fixed_blankout_dense(key, w, s, 1.0)
    np.testing.assert_array_equal(x, fixed_dense(w, s))
    x, _ = fixed_blankout_dense(key, w, s, 0.0)
    np.testing.assert_array_equal(x, [0, 0, 0])
    m = fixed_blankout_mask(key, (1000, 3), i32([0, 15, 9]))
    np.testing.assert_array_equal(m[:, 0], 0)
    np.testing.assert_array_equal(m[:, 1], 1)
    assert 0.5 < float(jnp.mean(m[:, 2].astype(jnp.float32))) < 0.7
    # same key, same coins (reproducible)
    np.testing.assert_array_equal(fixed_blankout_dense(key, w, s, 9)[1], fixed_blankout_dense(key, w, s, 9)[1])


# ---------------------------------------------------------------------------------------------
# validation


def test_bad_inputs_raise_value_error_naming_the_problem(key):
    w = jnp.ones((3, 2), jnp.int32)
    s = jnp.ones((3,), jnp.int32)
    for bad in (16, -1, 20):
        with pytest.raises(ValueError, match="prob"):
            fixed_blankout_dense(key, w, s, bad)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"p \(float"):
            fixed_blankout_dense(key, w, s, bad)
    with pytest.raises(ValueError, match="prob"):
        fixed_blankout_dense(key, w, s, True)
    for bits in (1, 33, 0):
        with pytest.raises(ValueError, match="bits"):
            FixedPointLIF.params(bits=bits)
    with pytest.raises(ValueError, match="acm_bits"):
        FixedPointLIF.params(acm_bits=40)
    with pytest.raises(ValueError, match="v_th"):
        FixedPointLIF.params(bits=8, v_th=128, v_reset=0)
    with pytest.raises(ValueError, match="v_th"):
        FixedPointLIF.params(bits=16, v_th=40000)
    with pytest.raises(ValueError, match="v_reset"):
        FixedPointLIF.params(bits=8, v_th=10, v_reset=-129)
    with pytest.raises(ValueError, match="v_reset"):
        FixedPointLIF.params(v_th=10, v_reset=10)
    with pytest.raises(ValueError, match="v_th"):
        FixedPointLIF.params(v_th=10.5)
    with pytest.raises(ValueError, match="bias"):
        FixedPointLIF.params(bits=8, v_th=10, bias=200)
    with pytest.raises(ValueError, match="leak_shift"):
        FixedPointLIF.params(leak_shift=1)
    with pytest.raises(ValueError, match="leak_shift"):
        FixedPointLIF.params(leak_shift=-17)
    with pytest.raises(ValueError, match="t_ref_steps"):
        FixedPointLIF.params(t_ref_steps=-1)
    with pytest.raises(ValueError, match="w_gain"):
        FixedPointLIF.params(w_gain=-16)
    with pytest.raises(ValueError, match="reset"):
        FixedPointLIF.params(reset="hard")
    with pytest.raises(ValueError, match="synaptic_delay"):
        FixedPointLIF(synaptic_delay=2)
    with pytest.raises(ValueError, match="leak_shift"):
        tau_from_leak_shift(0, 1e-3)
