"""Connection density for the accuracy/SynOps search (spikejax.sweep): magnitude pruning keeps
exactly the top-|w| fraction of the active synapses, pruned synapses stay silent through
fine-tuning, SynOps count only existing synapses (hand count on a tiny network), and the
two-stage vmapped sweep (dense training per width, then prune + fine-tune per (width, density))
gives each configuration's own result run alone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import sweep as S
from spikejax.data import load_dataset
from spikejax.neurons import LIF
from spikejax.nn import Dense, init_mlp
from spikejax.surrogate import fast_sigmoid

# ---------------------------------------------------------------------------------------------
# magnitude pruning


def _np_top_k(w, active, k):
    """Reference: flat indices of the k largest |w| among the active ones, ties to the lower index."""
    flat = np.abs(np.asarray(w, np.float64)).ravel()
    act = np.asarray(active, bool).ravel()
    cand = np.nonzero(act)[0]
    order = cand[np.lexsort((cand, -flat[cand]))]  # by -|w|, then by index
    return set(order[:k].tolist())


@pytest.mark.parametrize("density", [1.0, 0.5, 0.25, 0.1, 0.05, 0.013])
def test_magnitude_mask_keeps_exactly_the_top_fraction(density, key):
    w = jax.random.normal(key, (37, 23))
    active = np.zeros((37, 23), bool)
    active[:, :17] = True  # 17 active output units
    mask = np.asarray(S.magnitude_mask(w, density, active))
    n = 37 * 17
    k = max(1, int(np.floor(density * n + 0.5)))
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    assert int(mask.sum()) == k
    assert mask[:, 17:].sum() == 0  # inactive synapses are never kept
    kept = set(np.nonzero(mask.ravel())[0].tolist())
    assert kept == _np_top_k(w, active, k)
    a = np.abs(np.asarray(w))
    if k < n:  # every kept |w| >= every dropped active |w|
        assert a[mask > 0].min() >= a[(mask == 0) & active].max()


def test_magnitude_mask_ties_go_to_the_lower_index_and_counts_round_half_up():
    w = jnp.asarray([[1.0, -3.0, 3.0], [2.0, 3.0, -1.0]])
    # 6 weights, density 0.5 -> 3 kept: the three |w| = 3 (flat 1, 2, 4)
    np.testing.assert_array_equal(S.magnitude_mask(w, 0.5), [[0, 1, 1], [0, 1, 0]])
    # density 1/3 -> 2 kept: the first two of the tie
    np.testing.assert_array_equal(S.magnitude_mask(w, 1 / 3), [[0, 1, 1], [0, 0, 0]])
    # 0.25 * 6 = 1.5 -> 2 (half up); 0.01 * 6 -> at least 1
    assert int(S.n_kept(0.25, 6)) == 2 and int(S.n_kept(0.01, 6)) == 1 and int(S.n_kept(1.0, 6)) == 6
    # relative to a reference count: 0.5 of 4 = 2 out of the 3 active ones
    act = jnp.asarray([[1, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(S.magnitude_mask(w, 0.5, act, n_total=4), [[0, 1, 0], [0, 1, 0]])


def test_magnitude_mask_is_traceable_under_vmap(key):
    w = jax.random.normal(key, (10, 8))
    dens = jnp.asarray([1.0, 0.5, 0.1], jnp.float32)
    widths = jnp.asarray([8, 4, 6], jnp.int32)

    def one(d, h):
        return S.magnitude_mask(w, d, S.width_masks(h, 8)[None, :])

    masks = jax.jit(jax.vmap(one))(dens, widths)
    for m, d, h in zip(masks, [1.0, 0.5, 0.1], [8, 4, 6]):
        np.testing.assert_array_equal(m, S.magnitude_mask(w, d, S.width_masks(h, 8)[None, :]))
        assert int(m.sum()) == int(np.floor(d * 10 * h + 0.5))


def test_prune_mlp_and_active_connections(key):
    layers = init_mlp(key, [6, 5, 3])
    act = S.active_connections([S.width_masks(2, 5)], (6, 5, 3))
    np.testing.assert_array_equal(act[0], np.repeat([[1, 1, 0, 0, 0]], 6, axis=0))
    np.testing.assert_array_equal(act[1], np.array([[1, 1, 1]] * 2 + [[0, 0, 0]] * 3))
    conn = S.prune_mlp(layers, [0.25, 1.0], act)
    assert int(conn[0].sum()) == 3 and int(conn[1].sum()) == 6  # round(0.25 * 12), all 6 active
    np.testing.assert_array_equal(conn[1], act[1])
    with pytest.raises(ValueError, match="one density per layer"):
        S.prune_mlp(layers, [0.5], act)


# ---------------------------------------------------------------------------------------------
# pruned synapses carry nothing and get no gradient


def test_pruned_synapses_are_silent_and_stay_zero_through_fine_tuning(key):
    k1, k2 = jax.random.split(key)
    layers = init_mlp(k1, [8, 12, 4], gain=3.0)
    x = jax.random.bernoulli(k2, 0.5, (10, 3, 8)).astype(jnp.float32)
    neuron = LIF(spike_fn=fast_sigmoid(10.0), reset="subtract")
    nparams = LIF.params(tau_mem=3e-3, v_th=0.3)
    conn = S.prune_mlp(layers, [0.3, 0.5])
    dense_equiv = [Dense(l.w * c, l.b) for l, c in zip(layers, conn)]

    def loss(ls, c):
        out, hidden = S.masked_mlp(ls, None, nparams, x, neuron=neuron, conn=c)
        return jnp.sum(jnp.sin(out)) + jnp.sum(hidden[0])

    # forward: the masked network == the network whose pruned weights are zero
    out_c, _ = S.masked_mlp(layers, None, nparams, x, neuron=neuron, conn=conn)
    out_z, _ = S.masked_mlp(dense_equiv, None, nparams, x, neuron=neuron)
    np.testing.assert_allclose(out_c, out_z, rtol=1e-6, atol=1e-6)
    g = jax.grad(loss)(layers, conn)
    for gl, c in zip(g, conn):
        assert float(jnp.max(jnp.abs(gl.w * (1 - c)))) == 0.0
        assert float(jnp.max(jnp.abs(gl.w * c))) > 0.0


def _digits(n_train=256, n_test=128):
    xtr, ytr = load_dataset("digits", "train")
    xte, yte = load_dataset("digits", "test")
    return (xtr.reshape(len(xtr), -1)[:n_train], ytr[:n_train]), (xte.reshape(len(xte), -1)[:n_test], yte[:n_test])


def test_fit_with_fixed_masks_keeps_pruned_weights_exactly_zero():
    train, test = _digits()
    task = S.MLPTask(train, test, (64, 24, 10), T=4, steps=20, batch_size=16, finetune_steps=15)
    hp = task.resolve({"width": 16, "density": 0.2, "lr": 2e-2})
    params = task.init_params(hp)
    conn = task.prune(params, hp)
    params = [Dense(l.w * c, l.b) for l, c in zip(params, conn)]
    tuned, losses = jax.jit(lambda p: task.fit(p, hp, jax.random.PRNGKey(3), conn=conn, steps=15))(params)
    assert losses.shape == (15,)
    for l0, l1, c in zip(params, tuned, conn):
        assert float(jnp.max(jnp.abs(l1.w * (1 - c)))) == 0.0  # pruned: still exactly zero
    assert float(jnp.max(jnp.abs((tuned[0].w - params[0].w) * conn[0]))) > 0.0  # kept synapses learn
    assert int(conn[0].sum()) == int(np.floor(0.2 * 64 * 16 + 0.5))
    assert int(conn[1].sum()) == int(np.floor(0.2 * 16 * 10 + 0.5))  # density_out follows density


# ---------------------------------------------------------------------------------------------
# SynOps: spikes x existing (active, unpruned) fan-out, by hand on a tiny network


def _tiny_task(density_out):
    # 3 test samples of 4 binary pixels: rate coding of 0/1 is deterministic (T spikes or none)
    x = np.array([[1, 1, 1, 1], [1, 0, 0, 1], [0, 1, 1, 0]], np.float32)
    y = np.array([0, 1, 0], np.int32)
    task = S.MLPTask((x, y), (x, y), (4, 3, 2), T=3, steps=1, batch_size=2, eval_batch=2, finetune_steps=0)
    # hidden width 2 of a maximal 3; the masked unit 2 has the largest weights (never kept)
    w0 = jnp.asarray([[5.0, 4.5, 9.0], [4.0, 0.5, 9.0], [0.1, 3.0, 9.0], [0.2, 6.0, 9.0]])
    b0 = jnp.asarray([1000.0, -1000.0, 1000.0])  # unit 0 fires every step, unit 1 never
    w1 = jnp.asarray([[1.0, -7.0], [8.0, 2.0], [100.0, 100.0]])
    params = [Dense(w0, b0), Dense(w1, jnp.zeros((2,)))]
    hp = {"width": 2, "density": 0.5, "density_out": density_out}
    return task, params, hp


@pytest.mark.parametrize("density_out, expect_conn1, hidden_fan", [(1.0, [[1, 1], [1, 1], [0, 0]], 2), (0.5, [[0, 1], [1, 0], [0, 0]], 1)])
def test_pruned_synops_equal_a_hand_count(density_out, expect_conn1, hidden_fan):
    task, params, hp = _tiny_task(density_out)
    conn = task.prune(params, hp)
    # layer 0: 8 active synapses (4 pixels x 2 units), keep 4: |w| = 6 (3,1), 5 (0,0), 4.5 (0,1), 4 (1,0)
    np.testing.assert_array_equal(conn[0], [[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(conn[1], expect_conn1)
    m = task.finetune({**hp, "params": params})
    # pixel fan-outs 2, 1, 0, 1; T = 3 spikes per lit pixel; samples light {0,1,2,3}, {0,3}, {1,2}
    synops_in = 3 * ((2 + 1 + 0 + 1) + (2 + 1) + (1 + 0)) / 3  # = 8 per classification
    # hidden: unit 0 spikes at all 3 steps, unit 1 never; unit 0's readout fan-out is hidden_fan
    synops_hidden = 3 * hidden_fan
    np.testing.assert_allclose(m["input_spikes"], 3 * (4 + 2 + 2) / 3, rtol=1e-6)
    np.testing.assert_allclose(m["hidden_spikes"], 3.0, rtol=1e-6)
    np.testing.assert_allclose(m["synops_input"], synops_in, rtol=1e-6)
    np.testing.assert_allclose(m["synops_hidden"], synops_hidden, rtol=1e-6)
    np.testing.assert_allclose(m["synops"], synops_in + synops_hidden, rtol=1e-6)
    n_syn = 4 + (4 if density_out == 1.0 else 2)
    np.testing.assert_allclose(m["n_synapses"], n_syn)
    np.testing.assert_allclose(m["density_actual"], n_syn / (8 + 4), rtol=1e-6)
    np.testing.assert_allclose(m["n_neurons"], 2 + 2)


def test_dense_synops_are_input_spikes_times_width_plus_hidden_spikes_times_outputs():
    train, test = _digits()
    task = S.MLPTask(train, test, (64, 32, 10), T=4, steps=10, batch_size=16, eval_batch=50)
    hp = S.grid(width=[32, 7])
    m = S.sweep(task, hp, task.data)
    np.testing.assert_allclose(m["synops"], m["input_spikes"] * hp["width"] + m["hidden_spikes"] * 10, rtol=1e-5)
    np.testing.assert_allclose(m["n_synapses"], 64 * hp["width"] + 10 * hp["width"])
    np.testing.assert_allclose(m["density_actual"], 1.0)


# ---------------------------------------------------------------------------------------------
# iterative pruning and the two-stage vmapped sweep


def test_iterative_pruning_is_nested_and_ends_at_the_one_shot_count(key):
    layers = init_mlp(key, [20, 16, 10])
    act = S.active_connections([S.width_masks(12, 16)], (20, 16, 10))
    n_total = [jnp.sum(a) for a in act]
    conn, prev = act, act
    for r in range(1, 4):
        conn = S.prune_mlp(layers, [0.1 ** (r / 3), 0.3 ** (r / 3)], prev, n_total)
        for c, p in zip(conn, prev):
            assert float(jnp.sum(c * (1 - p))) == 0.0  # only survivors are kept
        prev = conn
    assert int(conn[0].sum()) == int(np.floor(0.1 * 240 + 0.5))
    assert int(conn[1].sum()) == int(np.floor(0.3 * 120 + 0.5))


def test_two_stage_vmapped_pruning_sweep_equals_each_configuration_alone():
    train, test = _digits()
    task = S.MLPTask(train, test, (64, 32, 10), T=4, steps=24, batch_size=16, eval_batch=64, finetune_steps=12, prune_rounds=2,
                     defaults=(("lr", 2e-2), ("finetune_lr", 1e-2)))
    widths = [32, 8, 20]
    pre = S.sweep(task.pretrain, S.grid(width=widths), task.data)
    hp = S.grid(width=widths, density=[1.0, 0.3, 0.05], finetune_spike_reg=[0.0, 2.0])
    which = np.array([widths.index(int(w)) for w in hp["width"]])
    swept = S.sweep(task.finetune, {**hp, "params": jax.tree_util.tree_map(lambda a: a[which], pre["params"])}, task.data)
    alone = jax.jit(task)
    configs = S.unstack_configs(hp)
    singles = [alone(c, task.data) for c in configs]
    for k, v in swept.items():
        np.testing.assert_allclose(v, [float(s[k]) for s in singles], rtol=2e-4, atol=1e-5, err_msg=k)
    np.testing.assert_allclose(pre["train_loss"][which], [float(s["pretrain_loss"]) for s in singles], rtol=2e-4)
    # the configurations differ, and the sparse networks are as sparse as asked
    assert len(set(np.round(swept["synops"], 3))) == len(configs)
    # both layers pruned (density_out None follows density)
    expect = [np.floor(c["density"] * 64 * c["width"] + 0.5) + np.floor(c["density"] * 10 * c["width"] + 0.5) for c in configs]
    np.testing.assert_allclose(swept["n_synapses"], expect)
    # sparser networks of one width cost fewer SynOps; the rate penalty lowers the hidden rate
    syn = swept["synops"].reshape(3, 3, 2)
    assert np.all(np.diff(syn, axis=1) < 0)
    rate = swept["hidden_rate"].reshape(3, 3, 2)
    assert np.all(rate[..., 1] <= rate[..., 0])
    assert np.all(rate[..., 1][rate[..., 0] > 0] < rate[..., 0][rate[..., 0] > 0])


def test_spike_penalty_adds_lambda_times_the_mean_hidden_rate():
    train, test = _digits()
    task = S.MLPTask(train, test, (64, 24, 10), T=5, steps=2, batch_size=16)
    hp = task.resolve({"width": 13, "density": 0.5, "v_th": 0.05})
    params = task.init_params(hp)
    conn = task.prune(params, hp)
    xb, yb = jnp.asarray(task.data[0][:16]), jnp.asarray(task.data[1][:16])
    k = jax.random.PRNGKey(7)
    base = task.loss(params, hp, xb, yb, k, conn)
    _, (_, hidden) = task.forward(params, hp, xb, k, train=True, conn=conn)
    z = np.asarray(hidden[0])
    assert z[..., 13:].sum() == 0
    rate = z[..., :13].mean()  # spikes per active unit per step
    assert rate > 0
    np.testing.assert_allclose(task.loss(params, hp, xb, yb, k, conn, 0.7), float(base) + 0.7 * rate, rtol=1e-5)
    np.testing.assert_allclose(task.loss(params, {**hp, "spike_reg": 0.7}, xb, yb, k, conn), float(base) + 0.7 * rate, rtol=1e-5)


def test_finetune_needs_params_and_task_validates_new_fields():
    train, test = _digits()
    task = S.MLPTask(train, test, (64, 8, 10), T=2, steps=2, batch_size=16)
    with pytest.raises(ValueError, match="params"):
        task.finetune({"width": 8})
    with pytest.raises(ValueError, match="finetune_steps"):
        S.MLPTask(train, test, (64, 8, 10), finetune_steps=-1)
    with pytest.raises(ValueError, match="prune_rounds"):
        S.MLPTask(train, test, (64, 8, 10), finetune_steps=3, prune_rounds=4)
    with pytest.raises(ValueError, match="prune_rounds"):
        S.MLPTask(train, test, (64, 8, 10), prune_rounds=0)
