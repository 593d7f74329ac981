"""spikejax.whetstone: activations vs the step function, schedules vs hand-worked trajectories,
exact batch-norm folding, exported spiking network vs the sharpened network, bad inputs."""

import pickle

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spikejax import encoding
from spikejax import whetstone as W
from spikejax.data import load_dataset
from spikejax.neurons import LIF
from spikejax.simulate import simulate

# ---------------------------------------------------------------------------------------------
# activations (papers.md 3.1)
# ---------------------------------------------------------------------------------------------


def _grid(theta, dtype):
    """A grid with the threshold point and its float neighbours included."""
    g = np.linspace(-2.0, 2.0, 4001).astype(dtype)
    t = dtype(theta)
    if theta == 0:  # XLA on CPU flushes subnormals to zero, so the neighbours of 0 are +-tiny
        tiny = np.finfo(dtype).tiny
        near = [-tiny, t, tiny]
    else:
        near = [np.nextafter(t, dtype(-np.inf)), t, np.nextafter(t, dtype(np.inf))]
    return np.concatenate([g, np.asarray(near, dtype), np.asarray([-1e30, 1e30, 0.0, -0.0], dtype)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["brelu", "sigmoid"])
def test_fully_sharpened_is_exact_step(name, dtype, request):
    if dtype == np.float64:
        request.getfixturevalue("x64")
    act, theta = W.ACTIVATIONS[name]
    x = _grid(theta, dtype)
    y = np.asarray(act(jnp.asarray(x), jnp.asarray(1.0, dtype)))
    expected = (x >= theta).astype(dtype)  # numpy, independent of the library
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, expected)
    # explicitly: the threshold point fires, its lower neighbour does not
    i = len(x) - 7
    assert y[i] == 0 and y[i + 1] == 1 and y[i + 2] == 1


def test_brelu_closed_form(x64):
    lam = 1e-3
    x = np.linspace(-1, 2, 301)
    for s in [0.0, 0.3, 0.9, 0.999]:
        ref = np.clip((x - 0.5) / (1 - s + lam) + 0.5, 0, 1)
        np.testing.assert_allclose(np.asarray(W.brelu(jnp.asarray(x), jnp.asarray(s))), ref, rtol=0, atol=1e-15)
    # passes through (0.5, 0.5) at every sharpness below 1
    for s in [0.0, 0.5, 0.99]:
        assert float(W.brelu(jnp.asarray(0.5), jnp.asarray(s))) == 0.5


def test_sigmoid_closed_form_and_knees(x64):
    lam = 1e-3
    x = np.linspace(-1, 1, 201)
    for s in [0.0, 0.5, 0.95]:
        k = 4 * np.log(2 + np.sqrt(3)) / (1 - s + lam)
        ref = 1 / (1 + np.exp(-np.clip(k * x, -40, 40)))
        np.testing.assert_allclose(np.asarray(W.steep_sigmoid(jnp.asarray(x), jnp.asarray(s))), ref, rtol=1e-13, atol=0)
        # the third derivative of sigma(kx) vanishes at the knees k x = +-ln(2 + sqrt 3), x = +-(w + lam)/4
        knee = (1 - s + lam) / 4
        f = lambda u: W.steep_sigmoid(u, jnp.asarray(s))
        d3 = jax.grad(jax.grad(jax.grad(f)))
        assert abs(float(d3(jnp.asarray(knee)))) < 1e-6 * k**3
        assert abs(float(d3(jnp.asarray(-knee)))) < 1e-6 * k**3


def test_sharpness_is_an_argument_no_recompile():
    traces = []

    @jax.jit
    def f(x, s):
        traces.append(1)
        return W.brelu(x, s)

    x = jnp.linspace(0.0, 1.0, 11)
    outs = [f(x, jnp.float32(s)) for s in (0.0, 0.5, 1.0)]
    assert len(traces) == 1
    assert not np.array_equal(np.asarray(outs[0]), np.asarray(outs[2]))
    np.testing.assert_array_equal(np.asarray(outs[2]), (np.asarray(x) >= 0.5).astype(np.float32))


# ---------------------------------------------------------------------------------------------
# schedules (papers.md 3.3), hand-worked trajectories
# ---------------------------------------------------------------------------------------------


def _trajectory(sh, batches_per_epoch, epochs, losses=None):
    """Per-batch layer sharpness (as used by each batch) and per-epoch-end sharpness."""
    st = sh.init()
    on_batch, on_end = jax.jit(sh.on_batch), jax.jit(sh.on_epoch_end)
    per_batch, per_epoch = [], []
    for e in range(epochs):
        for _ in range(batches_per_epoch):
            st = on_batch(st)
            per_batch.append(np.asarray(sh.sharpness(st)).tolist())
        st = on_end(st, jnp.float32(losses[e] if losses is not None else 0.0))
        per_epoch.append(np.asarray(sh.sharpness(st)).tolist())
    return st, per_batch, per_epoch


def test_simple_sharpener_hand_worked():
    # 2 layers, 2 steps per layer, start at epoch 1 (0-based): step = 1/4 of the model
    sh = W.SimpleSharpener(n_layers=2, start_epoch=1, steps=2, bottom_up=True)
    st, per_batch, per_epoch = _trajectory(sh, 3, 6)
    assert per_epoch == [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1], [1, 1]]
    assert per_batch[:3] == [[0, 0]] * 3  # no per-batch change
    assert bool(sh.done(st))
    np.testing.assert_array_equal(np.asarray(sh.model_sharpness(st)), 1.0)
    # uniform mode: every layer gets the model sharpness, 2 steps in total
    su = W.SimpleSharpener(n_layers=3, start_epoch=0, steps=2, bottom_up=False)
    _, _, pe = _trajectory(su, 1, 3)
    assert pe == [[0.5] * 3, [1.0] * 3, [1.0] * 3]


def test_model_to_layer_sharpness():
    # 4 layers: v = 0.625 -> v n = 2.5: two layers sharp, the third at 0.5
    np.testing.assert_array_equal(np.asarray(W.model_to_layer_sharpness(0.625, 4)), [1, 1, 0.5, 0])
    np.testing.assert_array_equal(np.asarray(W.model_to_layer_sharpness(0.0, 3)), [0, 0, 0])
    np.testing.assert_array_equal(np.asarray(W.model_to_layer_sharpness(1.0, 2)), [1, 1])
    np.testing.assert_array_equal(np.asarray(W.model_to_layer_sharpness(0.25, 3, bottom_up=False)), [0.25] * 3)


def test_scheduled_sharpener_hand_worked():
    # layer 0 sharpens in epoch [1, 2), layer 1 in [2, 4); 5 batches per epoch (counted in epoch 0)
    # layer 0: 1/((2-1)*5 - 1) = 0.25 per batch; layer 1: 1/((4-2)*5 - 1) = 1/9 per batch
    sh = W.ScheduledSharpener(((1, 2), (2, 4)))
    st, pb, pe = _trajectory(sh, 5, 5)
    l0 = [b[0] for b in pb]
    l1 = [b[1] for b in pb]
    assert l0[:5] == [0] * 5  # epoch 0: counting only
    assert l0[5:10] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert l1[:10] == [0] * 10
    np.testing.assert_allclose(l1[10:20], [min(i / 9, 1.0) for i in range(1, 11)], rtol=1e-6)
    assert pe[1] == [1.0, 0.0] and pe[3] == [1.0, 1.0]
    assert int(st.n_batches) == 5
    assert bool(sh.done(st))
    assert W.gen_schedule(3, start=2, duration=3, intermission=1) == ((2, 5), (6, 9), (10, 13))


def test_scheduled_sets_one_after_stop():
    # 1/((1*4) - 1) = 1/3 per batch never lands exactly on 1 in float32; the epoch end sets it
    sh = W.ScheduledSharpener(((1, 2),), n_batches=4)
    _, pb, pe = _trajectory(sh, 4, 2)
    np.testing.assert_allclose([b[0] for b in pb[4:]], [1 / 3, 2 / 3, 1.0, 1.0], rtol=1e-6)
    assert pe[1] == [1.0]


def test_adaptive_sharpener_hand_worked():
    sh = W.AdaptiveSharpener(
        n_layers=2, batches_per_epoch=4, min_init_epochs=2, rate=0.5, cz_rate=0.25, critical=0.75, patience=1
    )
    losses = [1.0, 0.8, 0.78, 0.77, 0.75, 0.76, 0.95, 0.9, 0.9, 0.85]
    st, pb, pe = _trajectory(sh, 4, 10, losses)
    # worked by hand (README of the rule in papers.md 3.3):
    # e0: init, ref=1.0 | e1: -20% improved, ref=.8 | e2: counter 1 | e3: counter 2 > 1 -> start, ref=.77
    # e4: layer 0 += .5/4 per batch: .125 .25 .375 .5 | e5: .625 .75 then >= critical: += .25/4 -> .8125 .875
    # e6: .9375 1.0 -> wait; loss .95 is +23% -> degraded: stop, ref=.95
    # e7: nothing; -5% -> counter 1 | e8: counter 2 -> start, ref=.9 | e9: layer 1: .125 .25 .375 .5
    l0 = [b[0] for b in pb]
    l1 = [b[1] for b in pb]
    assert l0[:16] == [0.0] * 16
    assert l0[16:28] == [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.8125, 0.875, 0.9375, 1.0, 1.0, 1.0]
    assert l0[28:] == [1.0] * 12
    assert l1[:36] == [0.0] * 36
    assert l1[36:40] == [0.125, 0.25, 0.375, 0.5]
    assert bool(st.sharpening)
    np.testing.assert_allclose(float(st.ref_loss), 0.9, rtol=1e-7)
    assert not bool(sh.done(st))


def test_adaptive_snap_and_wait():
    # rate 0.999 per epoch in one batch -> s = 0.999 -> 1 - s < 0.001? no (== 0.001 up to rounding);
    # use 0.9995: snaps to 1, and the next layer waits for the next epoch
    sh = W.AdaptiveSharpener(n_layers=2, batches_per_epoch=1, min_init_epochs=1, rate=0.9995, cz_rate=0.9995, patience=0)
    st = sh.init()
    st = st._replace(sharpening=jnp.bool_(True))
    st = sh.on_batch(st)
    assert np.asarray(sh.sharpness(st)).tolist() == [1.0, 0.0] and bool(st.wait)
    st = sh.on_batch(st)
    assert np.asarray(sh.sharpness(st)).tolist() == [1.0, 0.0]  # waiting
    st = sh.on_epoch_end(st, jnp.float32(1.0))
    assert not bool(st.wait)


def test_sharpener_states_jit_and_pickle():
    for sh in [
        W.SimpleSharpener(3, start_epoch=1, steps=2),
        W.ScheduledSharpener(W.gen_schedule(3, 1, 2)),
        W.AdaptiveSharpener(3, batches_per_epoch=10),
    ]:
        st = jax.jit(sh.on_batch)(sh.init())
        st = jax.jit(sh.on_epoch_end)(st, jnp.float32(0.5))
        st2 = pickle.loads(pickle.dumps(jax.device_get(st)))
        assert type(st2) is type(st)
        for a, b in zip(st, st2):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nhot_loss_temperature_closed_form(x64):
    # disjoint key, 2 classes x 2 units: scores of y = [1, 1, 0, 0] are (4, -4) (test_encoding)
    K = jnp.asarray([[1, 1, 0, 0], [0, 0, 1, 1]], jnp.float64)
    y = jnp.asarray([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]], jnp.float64)  # scores (4, -4), (0, 0)
    lab = jnp.asarray([1, 0], jnp.int32)
    for T in (1.0, 2.0, 10.0):
        # -log softmax: label 1 of (4, -4)/T -> log(1 + e^{8/T}); label 0 of (0, 0) -> log 2
        want = (np.log1p(np.exp(8.0 / T)) + np.log(2.0)) / 2
        np.testing.assert_allclose(float(W.nhot_loss(y, lab, K, temperature=T)), want, rtol=1e-13)
    assert float(W.nhot_loss(y, lab, K)) == float(W.nhot_loss(y, lab, K, temperature=1.0))
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            W.nhot_loss(y, lab, K, temperature=bad)


# ---------------------------------------------------------------------------------------------
# batch-norm folding (papers.md 3.4), float64
# ---------------------------------------------------------------------------------------------


def test_fold_batchnorm_dense_exact(x64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5))
    w, b = rng.normal(size=(5, 4)), rng.normal(size=4)
    gamma, beta, mu = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    var, eps = rng.uniform(0.1, 2.0, size=4), 1e-3
    ref = gamma * (x @ w + b - mu) / (np.sqrt(var) + eps) + beta  # numpy, eps outside the sqrt
    w2, b2 = W.fold_batchnorm(jnp.asarray(w), jnp.asarray(b), gamma, beta, mu, var, eps)
    got = x @ np.asarray(w2) + np.asarray(b2)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.asarray(w2), w * gamma / (np.sqrt(var) + eps), rtol=1e-15)
    np.testing.assert_allclose(np.asarray(b2), gamma * (b - mu) / (np.sqrt(var) + eps) + beta, rtol=1e-15)


def test_fold_batchnorm_through_model(x64):
    """The folded conv+dense weights reproduce the BatchNorm layers of a WhetstoneNet (float64)."""
    model = W.WhetstoneNet((W.Conv(3, (3, 3), padding="SAME"), W.Flatten(), W.Dense(6)), batch_norm=True, param_dtype=jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 5, 5, 2), jnp.float64)
    v = model.init(jax.random.PRNGKey(0), x, jnp.zeros(2))
    # give the BN layers non-trivial statistics and affine parameters
    _, upd = model.apply(v, x, jnp.zeros(2), train=True, mutable=["batch_stats"])
    leaves, tree = jax.tree_util.tree_flatten(v["params"])
    ks = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    leaves = [l + 0.3 * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, ks)]
    v = {"params": jax.tree_util.tree_unflatten(tree, leaves), "batch_stats": upd["batch_stats"]}
    p, st = v["params"], v["batch_stats"]
    # reference pre-activations of layer 0 through flax (conv then BN at inference)
    conv = lambda a, w, b: jax.lax.conv_general_dilated(a, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b[None, None, None]
    z = np.asarray(conv(x, p["linear0"]["kernel"], p["linear0"]["bias"]))
    g, bb = np.asarray(p["bn0"]["scale"]), np.asarray(p["bn0"]["bias"])
    m, var = np.asarray(st["bn0"]["mean"]), np.asarray(st["bn0"]["var"])
    ref = g * (z - m) / (np.sqrt(var) + model.bn_epsilon) + bb
    net = W.export_spiking(model, v, jnp.eye(6), input_shape=(5, 5, 2))
    w2, b2 = net.layers[0].w, net.layers[0].b
    np.testing.assert_allclose(np.asarray(conv(x, w2, b2)), ref, rtol=1e-12, atol=1e-12)
    assert net.layers[0].w.dtype == jnp.float64


# ---------------------------------------------------------------------------------------------
# conversion to a spiking network
# ---------------------------------------------------------------------------------------------


def test_exported_neuron_is_memoryless_threshold():
    p = W._lif_params(0.5, 1.0, jnp.float32)
    assert float(jnp.exp(-1.0 / p.tau_mem)) == 0.0
    # v = x each step regardless of history; fires iff x >= 0.5
    xs = jnp.asarray(np.array([[0.7, 0.5, np.nextafter(np.float32(0.5), np.float32(0))], [0.1, 3.0, 0.5], [0.49, 0.5, -2.0]], np.float32))
    st0 = W.NEURON.init(p, (3,))
    _, z = simulate(W.NEURON.step, p, st0, xs, dt=1.0)
    np.testing.assert_array_equal(np.asarray(z), (np.asarray(xs) >= 0.5).astype(np.float32))
    assert isinstance(W.NEURON, LIF)


@pytest.fixture(scope="module")
def trained_digits():
    """A small dense Whetstone net trained and fully sharpened on binarised digits (a few seconds)."""
    xtr, ytr = load_dataset("digits", "train")
    xte, yte = load_dataset("digits", "test")
    xtr = np.asarray(W.convert_inputs(jnp.asarray(xtr), "binarize")).reshape(len(xtr), -1)
    xte = np.asarray(W.convert_inputs(jnp.asarray(xte), "binarize")).reshape(len(xte), -1)
    model = W.WhetstoneNet((W.Dense(64), W.Dense(64), W.Dense(30)))
    K = W.make_key(jax.random.PRNGKey(3), 10, 30)
    v = model.init(jax.random.PRNGKey(0), jnp.asarray(xtr[:2]), jnp.zeros(3))
    sh = W.SimpleSharpener(3, start_epoch=2, steps=1)
    v, st, hist = W.fit_whetstone(
        model, v, K, sh, W.make_optimizer("rmsprop", 3e-3), (xtr, np.asarray(ytr, np.int32)), (xte, np.asarray(yte, np.int32)),
        max_epochs=10, batch_size=32, key=jax.random.PRNGKey(1), val=(xte[::2], np.asarray(yte[::2], np.int32)),
    )
    return model, v, K, st, sh, hist, xte, np.asarray(yte)


def test_fit_whetstone_reaches_full_sharpness(trained_digits):
    model, v, K, st, sh, hist, xte, yte = trained_digits
    assert bool(sh.done(st))
    assert hist["sharpness"][0] == [0, 0, 0] and hist["sharpness"][-1] == [1, 1, 0]
    assert len(hist["epoch"]) == 5  # 2 epochs at s=0, then one layer per epoch end
    acc = float(np.mean(W.sharpened_predict(model, v, xte, K) == yte))
    assert acc > 0.6  # binarised 8x8 digits, tiny net, 5 epochs: well above chance
    # the validation split (here every other test image) is scored like the test set
    assert len(hist["val_acc"]) == len(hist["val_acc_sharp"]) == 5
    assert hist["val_acc_sharp"][-1] == float(np.mean(W.sharpened_predict(model, v, xte[::2], K) == yte[::2]))


def test_spiking_net_matches_sharpened_net(trained_digits):
    model, v, K, st, sh, hist, xte, yte = trained_digits
    net = W.export_spiking(model, v, K, input_shape=xte.shape[1:], sharpness=sh.sharpness(st))
    assert net.depth == 3
    # independent truth: the flax model at full sharpness, its binary outputs and N-hot decode
    y_sharp = np.asarray(model.apply(v, jnp.asarray(xte), W.full_sharpness(3)))
    pred_sharp = np.asarray(encoding.nhot_decode(y_sharp, K))
    pred_spk = net.predict(xte)
    np.testing.assert_array_equal(pred_spk, pred_sharp)  # every test sample
    # the output spikes themselves equal the sharpened activations, at step depth - 1
    frames = encoding.direct(jnp.asarray(xte), net.depth)
    out = np.asarray(net.run(frames))
    np.testing.assert_array_equal(out[net.depth - 1], y_sharp)
    # hidden layers: layer l's spikes at step l equal the sharpened hidden activations
    spikes = net.run(frames, record="all")
    h = jnp.asarray(xte)
    for l in range(3):
        p = v["params"][f"linear{l}"]
        h = (h @ p["kernel"] + p["bias"][None] >= 0.5).astype(jnp.float32)
        np.testing.assert_array_equal(np.asarray(spikes[l][l]), np.asarray(h))
        np.testing.assert_array_equal(np.asarray(spikes[l][:l]), 0.0)  # nothing arrives before the delay


def test_spiking_net_streams_one_frame_per_step(trained_digits):
    model, v, K, st, sh, hist, xte, yte = trained_digits
    net = W.export_spiking(model, v, K, input_shape=xte.shape[1:])
    n = 40
    frames = jnp.concatenate([jnp.asarray(xte[:n]), jnp.zeros((net.depth - 1, xte.shape[1]), jnp.float32)])[:, None]
    out = np.asarray(net.run(frames))[:, 0]  # [n + depth - 1, width]
    pred = np.asarray(encoding.nhot_decode(jnp.asarray(out[net.depth - 1 :]), K))
    np.testing.assert_array_equal(pred, W.sharpened_predict(model, v, xte[:n], K))


def test_spiking_cnn_with_bn_and_pool_matches(x64):
    """Conv -> BN -> act -> MaxPool -> Dense, sigmoid activation, random weights, float64."""
    model = W.WhetstoneNet(
        (W.Conv(4, (3, 3)), W.MaxPool((2, 2)), W.Flatten(), W.Dense(20)),
        activation="sigmoid",
        batch_norm=True,
        param_dtype=jnp.float64,
    )
    x = (jax.random.uniform(jax.random.PRNGKey(1), (64, 8, 8, 1), jnp.float64) > 0.5).astype(jnp.float64)
    v = model.init(jax.random.PRNGKey(0), x, jnp.zeros(2))
    _, upd = model.apply(v, x, jnp.zeros(2), train=True, mutable=["batch_stats"])
    v = {"params": v["params"], "batch_stats": upd["batch_stats"]}
    K = W.make_key(jax.random.PRNGKey(2), 10, 20)
    net = W.export_spiking(model, v, K, input_shape=(8, 8, 1), sharpness=np.ones(2))
    assert [op.kind for op in net.ops] == ["conv", "pool", "dense"]
    y_sharp = np.asarray(model.apply(v, x, W.full_sharpness(2)))
    out = np.asarray(net.run(encoding.direct(x, net.depth)))
    np.testing.assert_array_equal(out[net.depth - 1], y_sharp)
    np.testing.assert_array_equal(net.predict(x), np.asarray(encoding.nhot_decode(y_sharp, K)))


# ---------------------------------------------------------------------------------------------
# convolution as patches @ kernel (float64 against lax.conv)
# ---------------------------------------------------------------------------------------------


def _lax_conv(x, w, strides, padding):
    return jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("impl", ["slices", "patches", "lax"])
@pytest.mark.parametrize(
    "shape,kernel,strides,padding",
    [
        ((3, 9, 8, 1), (3, 3), (1, 1), "VALID"),
        ((2, 11, 11, 3), (10, 10), (1, 1), "VALID"),
        ((2, 9, 10, 2), (3, 4), (2, 1), "SAME"),
        ((2, 7, 7, 2), (2, 3), (2, 3), ((1, 2), (0, 1))),
        ((4, 5, 5, 1), (1, 1), (1, 1), "VALID"),
    ],
)
def test_conv2d_equals_lax_conv(x64, impl, shape, kernel, strides, padding):
    rng = np.random.default_rng(sum(shape) + sum(kernel))
    x = jnp.asarray(rng.normal(size=shape))
    w = jnp.asarray(rng.normal(size=kernel + (shape[-1], 5)))
    ref = np.asarray(_lax_conv(x, w, strides, padding))
    got = W.conv2d(x, w, strides, padding, impl)
    assert got.dtype == jnp.float64 and got.shape == ref.shape
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-12)
    # gradients with respect to the input and the kernel match too
    ct = jnp.asarray(rng.normal(size=ref.shape))
    g_ref = jax.grad(lambda a, b: jnp.sum(_lax_conv(a, b, strides, padding) * ct), argnums=(0, 1))(x, w)
    g = jax.grad(lambda a, b: jnp.sum(W.conv2d(a, b, strides, padding, impl) * ct), argnums=(0, 1))(x, w)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-11, atol=1e-11)


def test_conv2d_against_numpy_loops(x64):
    """An independent direct sum, so the reference above is not only lax.conv itself."""
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(2, 6, 7, 3)), rng.normal(size=(3, 2, 3, 4))
    ref = np.zeros((2, 4, 6, 4))
    for i in range(4):
        for j in range(6):
            ref[:, i, j] = np.einsum("bhwc,hwco->bo", x[:, i : i + 3, j : j + 2], w)
    np.testing.assert_allclose(np.asarray(W.conv2d(jnp.asarray(x), jnp.asarray(w))), ref, rtol=1e-12, atol=1e-12)


def test_patch_conv_layer_matches_flax_conv(x64):
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 12, 12, 2), jnp.float64)
    for padding in ("VALID", "SAME"):
        ours = W.PatchConv(4, (5, 5), padding=padding, param_dtype=jnp.float64)
        v = ours.init(jax.random.PRNGKey(1), x)
        assert v["params"]["kernel"].shape == (5, 5, 2, 4) and v["params"]["bias"].shape == (4,)
        ref = nn.Conv(4, (5, 5), padding=padding, param_dtype=jnp.float64, kernel_init=nn.initializers.glorot_uniform())
        v_ref = ref.init(jax.random.PRNGKey(1), x)
        # same parameter layout and the same initial values (same initialiser as WhetstoneNet passes, same key)
        np.testing.assert_array_equal(np.asarray(v["params"]["kernel"]), np.asarray(v_ref["params"]["kernel"]))
        p = {"params": {"kernel": v["params"]["kernel"], "bias": jnp.arange(4.0, dtype=jnp.float64)}}
        np.testing.assert_allclose(np.asarray(ours.apply(p, x)), np.asarray(ref.apply(p, x)), rtol=1e-12, atol=1e-12)


def test_conv_defaults_and_errors():
    assert W.Conv(8).padding == "VALID"  # Keras default
    x, w = jnp.zeros((1, 5, 5, 2)), jnp.zeros((3, 3, 2, 4))
    assert W.conv2d(x, w).shape == (1, 3, 3, 4)
    with pytest.raises(ValueError, match="conv impl"):
        W.conv2d(x, w, impl="fft")
    with pytest.raises(ValueError, match="channels"):
        W.conv2d(x, jnp.zeros((3, 3, 1, 4)))
    with pytest.raises(ValueError, match="padding"):
        W.conv2d(x, w, padding="FULL")
    with pytest.raises(ValueError, match="larger than"):
        W.conv2d(x, jnp.zeros((6, 6, 2, 4)))


@pytest.mark.parametrize("impl", ["slices", "lax"])
def test_spiking_cnn_valid_two_convs_matches(x64, impl):
    """The CNN-row topology (two VALID convs, two dense), float64: exported net == sharpened net."""
    model = W.WhetstoneNet(
        (W.Conv(3, (3, 3)), W.Conv(4, (2, 2)), W.Flatten(), W.Dense(12), W.Dense(20)),
        activation="sigmoid", batch_norm=True, param_dtype=jnp.float64, conv_impl=impl,
    )
    x = (jax.random.uniform(jax.random.PRNGKey(4), (64, 7, 7, 1), jnp.float64) > 0.5).astype(jnp.float64)
    v = model.init(jax.random.PRNGKey(0), x, jnp.zeros(4))
    _, upd = model.apply(v, x, jnp.zeros(4), train=True, mutable=["batch_stats"])
    v = {"params": v["params"], "batch_stats": upd["batch_stats"]}
    K = W.make_key(jax.random.PRNGKey(2), 10, 20)
    net = W.export_spiking(model, v, K, input_shape=(7, 7, 1), sharpness=np.ones(4))
    assert [op.kind for op in net.ops] == ["conv", "conv", "dense", "dense"]
    assert all(op.conv_impl == impl for op in net.ops if op.kind == "conv")
    y_sharp = np.asarray(model.apply(v, x, W.full_sharpness(4)))
    assert 0 < y_sharp.mean() < 1
    np.testing.assert_array_equal(np.asarray(net.run(encoding.direct(x, net.depth)))[net.depth - 1], y_sharp)


def test_direct_current_input_export():
    model = W.WhetstoneNet((W.Dense(16), W.Dense(10)))
    x = jax.random.uniform(jax.random.PRNGKey(1), (32, 12))
    v = model.init(jax.random.PRNGKey(0), x, jnp.zeros(2))
    K = jnp.eye(10)
    net = W.export_spiking(model, v, K, input_shape=(12,))
    y = np.asarray(model.apply(v, x, W.full_sharpness(2)))
    np.testing.assert_array_equal(np.asarray(net.run(encoding.direct(x, 2)))[1], y)


def test_convert_inputs():
    x = jnp.asarray(np.array([[[0.0, 0.49, 0.5, 1.0]]], np.float32))
    np.testing.assert_array_equal(np.asarray(W.convert_inputs(x, "binarize")), [[[0, 0, 1, 1]]])
    np.testing.assert_array_equal(np.asarray(W.convert_inputs(x, "direct")), np.asarray(x))
    img = np.zeros((1, 6, 6), np.float32)
    img[0, 2:4, 2:4] = 1.0
    c = np.asarray(W.convert_inputs(jnp.asarray(img), "contour"))
    assert set(np.unique(c)) <= {0.0, 1.0} and c.sum() > 0 and c[0, 0, 0] == 0


def test_optimizers_train():
    for name, lr in [("rmsprop", 1e-2), ("adadelta", 50.0)]:
        opt = W.make_optimizer(name, lr)
        p = jnp.asarray([3.0, -2.0])
        s = opt.init(p)
        for _ in range(50):
            g = jax.grad(lambda q: jnp.sum(q**2))(p)
            u, s = opt.update(g, s, p)
            p = optax.apply_updates(p, u)
        assert float(jnp.sum(p**2)) < 13.0 * 0.9, name
    # Keras-form RMSprop: first step = -lr g / (sqrt((1 - 0.9) g^2) + eps)
    opt = W.make_optimizer("rmsprop", 0.1)
    g = jnp.asarray([2.0])
    u, _ = opt.update(g, opt.init(g), g)
    np.testing.assert_allclose(np.asarray(u), [-0.1 * 2.0 / (np.sqrt(0.1 * 4.0) + 1e-7)], rtol=1e-6)
    # Adadelta (Zeiler 2012, Keras form): first step = -lr g sqrt(0 + eps)/sqrt((1 - rho) g^2 + eps)
    opt = W.make_optimizer("adadelta", 4.0)
    u, st = opt.update(g, opt.init(g), g)
    np.testing.assert_allclose(np.asarray(u), [-4.0 * 2.0 * np.sqrt(1e-8) / np.sqrt(0.05 * 4.0 + 1e-8)], rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------


def test_error_no_sharpenable_layer():
    with pytest.raises(ValueError, match="no sharpenable layer"):
        W.count_sharpenable((W.MaxPool(), W.Flatten()))
    model = W.WhetstoneNet((W.Flatten(),))
    with pytest.raises(ValueError, match="no sharpenable layer"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)), jnp.zeros(0))
    with pytest.raises(ValueError, match="no sharpenable layer"):
        W.WhetstoneNet(()).n_sharpenable


def test_error_key_width_below_classes():
    with pytest.raises(ValueError, match="width"):
        W.make_key(jax.random.PRNGKey(0), 10, 5)
    with pytest.raises(ValueError, match="must be >= the number of classes"):
        W.check_key(jnp.ones((10, 5)))
    model = W.WhetstoneNet((W.Dense(8),))
    v = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)), jnp.zeros(1))
    with pytest.raises(ValueError, match="output width"):
        W.export_spiking(model, v, W.make_key(jax.random.PRNGKey(0), 2, 6), input_shape=(4,))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_error_sharpness_out_of_range(bad):
    with pytest.raises(ValueError, match=r"sharpness must lie in \[0, 1\]"):
        W.brelu(jnp.zeros(3), bad)
    with pytest.raises(ValueError, match=r"sharpness must lie in \[0, 1\]"):
        W.steep_sigmoid(jnp.zeros(3), bad)
    model = W.WhetstoneNet((W.Dense(4), W.Dense(4)))
    with pytest.raises(ValueError, match=r"sharpness must lie in \[0, 1\]"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)), jnp.asarray([0.0, bad]))


def test_error_other_bad_inputs():
    model = W.WhetstoneNet((W.Dense(4), W.Dense(10)))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)), jnp.zeros(3))
    v = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)), jnp.zeros(2))
    with pytest.raises(ValueError, match="fully sharpened"):
        W.export_spiking(model, v, jnp.eye(10), input_shape=(3,), sharpness=[1.0, 0.5])
    with pytest.raises(ValueError, match="activation"):
        W.WhetstoneNet((W.Dense(4),), activation="relu").init(jax.random.PRNGKey(0), jnp.zeros((1, 3)), jnp.zeros(1))
    with pytest.raises(ValueError, match="input mode"):
        W.convert_inputs(jnp.zeros((2, 2)), "rate")
    with pytest.raises(ValueError, match="optimizer"):
        W.make_optimizer("lbfgs", 0.1)
    with pytest.raises(ValueError, match="schedule"):
        W.ScheduledSharpener(((3, 2),))
    with pytest.raises(ValueError, match="sharpener handles"):
        W.fit_whetstone(
            model, v, jnp.eye(10), W.SimpleSharpener(3), optax.sgd(0.1), (np.zeros((4, 3), np.float32), np.zeros(4, np.int32)),
            (np.zeros((4, 3), np.float32), np.zeros(4, np.int32)), max_epochs=1, batch_size=2, key=jax.random.PRNGKey(0),
        )


def test_whetstone_mnist_cnn_row_smoke(tmp_path, monkeypatch):
    """The experiment's CNN path end to end on 8x8 digits: trains, sharpens, exports, agrees."""
    import json

    import experiments
    from spikejax.experiment import run_experiment

    monkeypatch.setenv("SPIKEJAX_CKPT", str(tmp_path / "ckpt"))
    mod = experiments.load("whetstone_mnist")
    over = ["net=cnn_restricted", "n_train=800", "n_test=300", "start_epoch=1", "steps=1", "max_epochs=8", "val=100", "temperature=2"]
    path = run_experiment(mod, quick=True, overrides=over, out_dir=tmp_path, quiet=True)
    m = json.loads(path.read_text())["metrics"]
    assert m["fully_sharpened"] and m["epochs_run"] == 6  # 1 epoch at s = 0, then one layer per epoch
    assert m["spiking_vs_sharpened_disagreements"] == 0
    assert m["spiking_vs_sharpened_agree"] == f"{m['n_test']}/{m['n_test']}"
    assert [k for k in m["layers"] if "Conv" in k] and "VALID" in m["layers"][0]
    assert m["spiking_acc_pct"] == m["sharpened_acc_pct"] and m["spiking_acc_pct"] > 30.0
    assert m["n_train"] == 700 and m["n_val"] == 100  # the last 100 of the 800 training images
    h = m["history"]
    last_pre = max(i for i, s in enumerate(h["sharpness"]) if max(s) == 0.0)  # the last epoch before sharpening
    assert len(h["val_acc"]) == m["epochs_run"] and m["val_original_acc_pct"] == 100 * h["val_acc"][last_pre]
    assert mod.result_tag(dict(mod.CONFIG)) == ""
    assert mod.result_tag(dict(mod.CONFIG, net="stpu_cnn")) == "stpu_cnn"
    assert mod.result_tag(dict(mod.CONFIG, net="dense", dataset="fashion_mnist")) == "fashion_mnist-dense"


def test_whetstone_mnist_dataset_defaults():
    """``auto`` keys take the dataset's defaults; explicit values are converted, bad ones rejected."""
    import experiments

    mod = experiments.load("whetstone_mnist")
    cfg = mod.resolve_config(dict(mod.CONFIG))
    assert (cfg["input"], cfg["temperature"], cfg["val"]) == ("binarize", 1.0, 0)  # the MNIST rows as published
    cfg = mod.resolve_config(dict(mod.CONFIG, dataset="fashion_mnist"))
    assert (cfg["input"], cfg["temperature"], cfg["val"]) == ("direct", 10.0, 5000)
    cfg = mod.resolve_config(dict(mod.CONFIG, dataset="digits", val="100", temperature="2.5", input="contour"))
    assert (cfg["input"], cfg["temperature"], cfg["val"]) == ("contour", 2.5, 100)
    with pytest.raises(ValueError, match="'val'"):
        mod.resolve_config(dict(mod.CONFIG, val="half"))


def test_stepwise_epoch_equals_fused_epoch():
    """fuse_epoch=False (one jitted call per minibatch, as for lax convs on the CPU) trains on the
    same shuffles with the same dropout keys as the scanned epoch: same history, same weights.
    (Without batch norm: a bias just before a batch norm gets a gradient of pure rounding noise,
    which RMSprop scales up to full-size steps, so two compilations drift apart there.)"""
    xtr, ytr = load_dataset("digits", "train")
    xtr = np.asarray(W.convert_inputs(jnp.asarray(xtr[:256]), "binarize"))[..., None]
    ytr = np.asarray(ytr[:256], np.int32)
    model = W.WhetstoneNet((W.Conv(4, (3, 3)), W.Flatten(), W.Dense(16), W.Dense(20)), conv_impl="lax")
    K = W.make_key(jax.random.PRNGKey(3), 10, 20)
    v0 = model.init(jax.random.PRNGKey(0), jnp.asarray(xtr[:2]), jnp.zeros(3))
    out = {}
    for fused in (True, False):
        out[fused] = W.fit_whetstone(
            model, v0, K, W.SimpleSharpener(3, start_epoch=1, steps=1), W.make_optimizer("rmsprop", 3e-3), (xtr, ytr),
            (xtr[:100], ytr[:100]), max_epochs=3, batch_size=32, key=jax.random.PRNGKey(1), eval_batch=40, fuse_epoch=fused,
        )
    (va, sa, ha), (vb, sb, hb) = out[True], out[False]
    np.testing.assert_allclose(ha["train_loss"], hb["train_loss"], rtol=1e-4)
    assert ha["sharpness"] == hb["sharpness"] and ha["test_acc"] == hb["test_acc"]
    assert ha["train_loss"][1] < ha["train_loss"][0]  # it trains
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5), va, vb)


# ---------------------------------------------------------------------------------------------
# the exported network in fixed point (NSAT-style integer LIF)
# ---------------------------------------------------------------------------------------------


def test_fixed_point_export_integer_truth_and_agreement(trained_digits):
    """Every layer of the fixed-point net is exactly ``s @ round(w 2^f) + round(b 2^f) >=
    round(v_th 2^f)`` in integers (a numpy int64 reference, layer by layer); with enough fractional
    bits it classifies every test digit as the float spiking net does, with few bits it drifts."""
    model, v, K, st, sh, hist, xte, yte = trained_digits
    net = W.export_spiking(model, v, K, input_shape=xte.shape[1:])
    fx = W.to_fixed_point(net, frac_bits=8)
    assert fx.layers[0].w.dtype == jnp.int32
    frames = encoding.direct(jnp.asarray(xte, jnp.int32), fx.depth)
    spikes = fx.run(frames, record="all")
    h = np.asarray(xte, np.int64)
    for l, lp in enumerate(net.layers):
        w_int = np.round(np.asarray(lp.w, np.float64) * 256).astype(np.int64)
        b_int = np.round(np.asarray(lp.b, np.float64) * 256).astype(np.int64)
        th = int(np.round(float(lp.lif.v_th) * 256))
        h = (h @ w_int + b_int[None] >= th).astype(np.int64)
        assert spikes[l].dtype == jnp.int32
        np.testing.assert_array_equal(np.asarray(spikes[l][l]), h)
    pred_float = net.predict(xte)
    agree = {f: float(np.mean(W.to_fixed_point(net, frac_bits=f).predict(xte) == pred_float)) for f in (1, 16)}
    assert agree[16] == 1.0
    assert agree[1] < 1.0  # one fractional bit: weights round to multiples of 1/2, decisions move


def test_fixed_point_cnn_with_pool_matches_float():
    """Conv -> BN -> MaxPool -> Dense exported and quantised with 16 fractional bits gives the same
    output spikes as the float export on every sample (pool layers count spikes exactly)."""
    model = W.WhetstoneNet((W.Conv(4, (3, 3)), W.MaxPool((2, 2)), W.Flatten(), W.Dense(20)), activation="sigmoid", batch_norm=True)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (64, 8, 8, 1)) > 0.5).astype(jnp.float32)
    v = model.init(jax.random.PRNGKey(0), x, jnp.zeros(2))
    _, upd = model.apply(v, x, jnp.zeros(2), train=True, mutable=["batch_stats"])
    v = {"params": v["params"], "batch_stats": upd["batch_stats"]}
    net = W.export_spiking(model, v, W.make_key(jax.random.PRNGKey(2), 10, 20), input_shape=(8, 8, 1))
    fx = W.to_fixed_point(net, frac_bits=16)
    out_f = np.asarray(net.run(encoding.direct(x, net.depth), record="all")[1])
    out_i = np.asarray(fx.run(encoding.direct(x, fx.depth), record="all")[1])
    assert out_f[1].sum() > 0
    np.testing.assert_array_equal(out_i, out_f.astype(np.int32))
    np.testing.assert_array_equal(fx.predict(x), net.predict(x))


def test_fixed_point_export_errors(trained_digits):
    model, v, K, st, sh, hist, xte, yte = trained_digits
    net = W.export_spiking(model, v, K, input_shape=xte.shape[1:])
    with pytest.raises(ValueError, match="frac_bits"):
        W.to_fixed_point(net, frac_bits=30)
    with pytest.raises(ValueError, match="do not fit in 8 bits"):
        W.to_fixed_point(net, frac_bits=8, bits=8)
    with pytest.raises(ValueError, match="binary"):
        W.to_fixed_point(net).run(encoding.direct(jnp.full((2,) + xte.shape[1:], 0.3), 3))
    with pytest.raises(ValueError, match="SpikingNet"):
        W.to_fixed_point(model)
