"""Sweeps: grids and their validation, vmapped sweep == each configuration alone, the sharded
(forced 4 CPU devices, in a subprocess) == single-device path, data-parallel training, width
masking (masked units silent with zero gradient, == a genuinely narrower network), tables."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import sweep as S
from spikejax.data import load_dataset
from spikejax.neurons import LIF
from spikejax.nn import Dense, SpikingMLP, init_mlp
from spikejax.surrogate import fast_sigmoid

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------
# grids


def test_grid_is_the_cartesian_product_last_axis_fastest():
    g = S.grid(lr=[0.1, 0.2], seed=[0, 1, 2])
    assert set(g) == {"lr", "seed"}
    np.testing.assert_allclose(g["lr"], [0.1, 0.1, 0.1, 0.2, 0.2, 0.2], rtol=1e-7)
    np.testing.assert_array_equal(g["seed"], [0, 1, 2, 0, 1, 2])
    assert g["lr"].dtype == np.float32 and g["seed"].dtype == np.int32
    assert S.check_hparams(g) == 6
    g2 = S.grid({"a": [1.0]}, b=[True, False])
    assert g2["b"].dtype == bool and len(g2["a"]) == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "no axes"),
        ({"lr": []}, "axis 'lr' is empty"),
        ({"lr": [0.1, [0.2, 0.3]]}, "axis 'lr' is ragged"),
        ({"opt": ["adam", "sgd"]}, "axis 'opt' must hold numbers"),
        ({"lr": "0.1"}, "axis 'lr'.*string"),
        ({"lr": [0.1, float("nan")]}, "axis 'lr' holds non-finite"),
        ({"lr": 0.1}, "axis 'lr'.*sequence"),
    ],
)
def test_bad_grids_raise_naming_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.grid(**kwargs)


def test_zip_grid_and_stack_configs_validate():
    z = S.zip_grid(lr=[0.1, 0.2], slope=[5.0, 10.0])
    assert S.check_hparams(z) == 2
    with pytest.raises(ValueError, match=r"ragged axes.*'lr': 2.*'slope': 3"):
        S.zip_grid(lr=[0.1, 0.2], slope=[1.0, 2.0, 3.0])
    st = S.stack_configs([{"lr": 0.1, "seed": 0}, {"lr": 0.2, "seed": 1}])
    np.testing.assert_array_equal(st["seed"], [0, 1])
    assert S.unstack_configs(st)[1] == {"lr": pytest.approx(0.2), "seed": 1}
    with pytest.raises(ValueError, match=r"configuration 1 has different keys.*missing \['seed'\]"):
        S.stack_configs([{"lr": 0.1, "seed": 0}, {"lr": 0.2}])
    with pytest.raises(ValueError, match="empty"):
        S.stack_configs([])
    with pytest.raises(ValueError, match="ragged hyperparameters"):
        S.check_hparams({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="scalar"):
        S.check_hparams({"a": np.float32(1.0)})
    with pytest.raises(ValueError, match="empty"):
        S.check_hparams({})


# ---------------------------------------------------------------------------------------------
# generic sweeps


def _poly(hp, offset):
    return {"y": hp["a"] * hp["b"]["c"] + offset, "v": jnp.stack([hp["a"], 2 * hp["a"]])}


def test_sweep_preserves_order_pytrees_shared_args_and_chunks():
    hp = {"a": np.arange(7, dtype=np.float32), "b": {"c": np.linspace(1, 2, 7).astype(np.float32)}}
    want = hp["a"] * hp["b"]["c"] + 0.5
    for chunk in (None, 3, 100):
        out = S.sweep(_poly, hp, jnp.float32(0.5), chunk=chunk)
        np.testing.assert_allclose(out["y"], want, rtol=1e-6)
        assert out["v"].shape == (7, 2)
    with pytest.raises(ValueError, match="chunk"):
        S.sweep(_poly, hp, jnp.float32(0.5), chunk=0)


def test_sweep_table_and_atomic_json(tmp_path):
    hp = S.grid(a=[1.0, 2.0], b=[3, 4])
    out = {"y": hp["a"] * 10, "curve": np.ones((4, 3))}
    rows = S.sweep_table(hp, out)
    assert rows[3] == {"config": {"a": 2.0, "b": 4}, "metrics": {"y": 20.0, "curve": [1.0, 1.0, 1.0]}}
    path = S.write_sweep(tmp_path / "sub" / "s.json", hp, out, note="x")
    rec = json.loads(path.read_text())
    assert rec["n_configs"] == 4 and rec["meta"] == {"note": "x"} and rec["rows"] == json.loads(json.dumps(rows))
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError, match="metrics hold 2 configurations but hparams hold 4"):
        S.sweep_table(hp, {"y": np.zeros(2)})


# ---------------------------------------------------------------------------------------------
# the vmapped sweep gives each configuration's own result


def _digits_task(**kw):
    xtr, ytr = load_dataset("digits", "train")
    xte, yte = load_dataset("digits", "test")
    xtr, xte = xtr.reshape(len(xtr), -1)[:256], xte.reshape(len(xte), -1)[:128]
    args = dict(T=8, steps=30, batch_size=16, eval_batch=64)
    args.update(kw)
    return S.MLPTask((xtr, ytr[:256]), (xte, yte[:128]), (64, 32, 10), **args)


HP_MIXED = dict(
    lr=[1e-2, 2e-2, 5e-3, 1e-2, 3e-2],
    slope=[25.0, 10.0, 5.0, 25.0, 40.0],
    dropout=[0.0, 0.1, 0.2, 0.0, 0.3],
    tau_mem=[20e-3, 30e-3, 10e-3, 20e-3, 15e-3],
    v_th=[0.3, 0.5, 0.4, 1.0, 0.3],
    seed=[0, 1, 2, 3, 0],
    width=[32, 8, 16, 1, 24],
)


def test_vmapped_sweep_equals_each_configuration_run_alone():
    task = _digits_task()
    hp = S.zip_grid(**HP_MIXED)
    swept = S.sweep(task, hp, task.data)
    alone = jax.jit(task)
    singles = [alone(c, task.data) for c in S.unstack_configs(hp)]
    for k, v in swept.items():
        ref = np.array([float(s[k]) for s in singles])
        np.testing.assert_allclose(v, ref, rtol=1e-4, atol=1e-5, err_msg=k)
    # the configurations differ from each other (the sweep did not run one config K times)
    assert len(set(np.round(swept["train_loss"], 5))) == len(HP_MIXED["lr"])
    assert swept["hidden_spikes"].max() > 0  # the networks spike
    np.testing.assert_allclose(swept["n_neurons"], np.asarray(HP_MIXED["width"]) + 10)


def test_mlp_task_rejects_unknown_hyperparameters_and_bad_shapes():
    task = _digits_task()
    with pytest.raises(ValueError, match=r"unknown hyperparameters \['momentum'\]"):
        S.sweep(task, S.grid(momentum=[0.9]), task.data)
    with pytest.raises(ValueError, match="expected x"):
        S.MLPTask((np.zeros((10, 5)), np.zeros(10)), (np.zeros((4, 6)), np.zeros(4)), (6, 4, 2))
    with pytest.raises(ValueError, match="hidden width"):
        S.MLPTask((np.zeros((10, 6)), np.zeros(10)), (np.zeros((4, 6)), np.zeros(4)), (6, 2))


# ---------------------------------------------------------------------------------------------
# width masking


def _masked_setup(key, h=5, n_max=12):
    k1, k2 = jax.random.split(key)
    layers = init_mlp(k1, [8, n_max, 4], gain=3.0)
    x = jax.random.bernoulli(k2, 0.5, (10, 3, 8)).astype(jnp.float32)  # [T, B, n_in]
    neuron = LIF(spike_fn=fast_sigmoid(10.0), reset="subtract")
    nparams = LIF.params(tau_mem=3e-3, v_th=0.3)
    return layers, x, neuron, nparams


def test_masked_units_never_spike_and_get_zero_gradient(key):
    h, n_max = 5, 12
    layers, x, neuron, nparams = _masked_setup(key, h, n_max)
    mask = S.width_masks(h, n_max)

    def loss(ls):
        out, hidden = S.masked_mlp(ls, [mask], nparams, x, neuron=neuron)
        return jnp.sum(out**2) + jnp.sum(hidden[0]), hidden

    (val, hidden), g = jax.value_and_grad(loss, has_aux=True)(layers)
    assert float(jnp.sum(hidden[0][..., h:])) == 0.0
    assert float(jnp.sum(hidden[0][..., :h])) > 0.0
    assert float(jnp.max(jnp.abs(g[0].w[:, h:]))) == 0.0
    assert float(jnp.max(jnp.abs(g[0].b[h:]))) == 0.0
    assert float(jnp.max(jnp.abs(g[1].w[h:, :]))) == 0.0
    assert float(jnp.max(jnp.abs(g[0].w[:, :h]))) > 0.0


def test_masked_network_equals_a_genuinely_narrower_network(key):
    h, n_max = 5, 12
    layers, x, neuron, nparams = _masked_setup(key, h, n_max)
    small = [Dense(layers[0].w[:, :h], layers[0].b[:h]), Dense(layers[1].w[:h], layers[1].b)]
    ref_net = SpikingMLP(neuron=neuron, readout="membrane")

    def masked_loss(ls):
        out, _ = S.masked_mlp(ls, [S.width_masks(h, n_max)], nparams, x, neuron=neuron)
        return jnp.sum(jnp.sin(out))

    def small_loss(ls):
        return jnp.sum(jnp.sin(ref_net(ls, nparams, x)))

    out_m, _ = S.masked_mlp(layers, [S.width_masks(h, n_max)], nparams, x, neuron=neuron)
    np.testing.assert_allclose(out_m, ref_net(small, nparams, x), rtol=1e-5, atol=1e-6)
    gm = jax.grad(masked_loss)(layers)
    gs = jax.grad(small_loss)(small)
    np.testing.assert_allclose(gm[0].w[:, :h], gs[0].w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gm[1].w[:h], gs[1].w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gm[1].b, gs[1].b, rtol=1e-4, atol=1e-6)


def test_init_masked_mlp_gives_the_narrow_networks_init_scale(key):
    full = init_mlp(key, [8, 64, 4])
    masked = S.init_masked_mlp(key, [8, 64, 4], [16])
    np.testing.assert_allclose(masked[0].w, full[0].w)
    np.testing.assert_allclose(masked[1].w, full[1].w * 2.0, rtol=1e-6)  # sqrt(64/16)
    assert float(jnp.max(jnp.abs(masked[1].w[:16]))) <= np.sqrt(6.0 / 16) + 1e-6


def test_width_masks_validate():
    np.testing.assert_array_equal(S.width_masks(np.array([1, 3]), 4), [[1, 0, 0, 0], [1, 1, 1, 0]])
    with pytest.raises(ValueError, match=r"widths must lie in 1\.\.4"):
        S.width_masks(5, 4)
    with pytest.raises(ValueError, match=r"widths must lie in 1\.\.4"):
        S.width_masks(0, 4)
    with pytest.raises(ValueError, match="max_width"):
        S.width_masks(1, 0)


# ---------------------------------------------------------------------------------------------
# data parallel on one device (the multi-device check is in the subprocess below)


def test_data_parallel_single_device_matches_jit_and_checks_batch(key):
    def step(w, xb, yb):
        loss, g = jax.value_and_grad(lambda w: jnp.mean((xb @ w - yb) ** 2))(w)
        return w - 0.1 * g, loss

    w = jax.random.normal(key, (3, 2))
    xb = jax.random.normal(jax.random.fold_in(key, 1), (8, 3))
    yb = jnp.ones((8, 2))
    dp = S.data_parallel(step, (1, 2))
    w1, l1 = dp(w, xb, yb)
    w2, l2 = jax.jit(step)(w, xb, yb)
    np.testing.assert_allclose(w1, w2, rtol=1e-6)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    with pytest.raises(ValueError, match="batch_argnums 5 out of range"):
        S.data_parallel(step, 5)(w, xb, yb)


# ---------------------------------------------------------------------------------------------
# multi-device: 4 forced host CPU devices in a fresh interpreter

_MULTI = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    sys.path.insert(0, sys.argv[1])
    from spikejax import sweep as S
    from tests.test_sweep import _digits_task, HP_MIXED
    out = {"n_devices": jax.device_count()}

    # which device ran which configuration: K = 6 padded to 8 over 4 devices
    def where(hp):
        return {"dev": jax.lax.axis_index("k"), "a": hp["a"] * 2}
    r = S.sweep(where, {"a": np.arange(6, dtype=np.float32)})
    out["where_dev"] = r["dev"].tolist(); out["where_a"] = r["a"].tolist()
    r = S.sweep(where, {"a": np.arange(6, dtype=np.float32)}, chunk=4)
    out["where_dev_chunked"] = r["dev"].tolist()

    task = _digits_task()
    hp = S.zip_grid(**HP_MIXED)
    sharded = S.sweep(task, hp, task.data)
    single = S.sweep(task, hp, task.data, devices=jax.devices()[:1])
    out["sweep"] = {k: [sharded[k].tolist(), single[k].tolist()] for k in sharded}

    # data-parallel training step of the same network, batch 16 over 4 devices vs 1 device
    full = task.resolve({"v_th": 0.4, "tau_mem": 0.02})
    params = task.init_params(full)
    seen = []
    def step(p, xb, yb, k):
        jax.debug.inspect_array_sharding(xb, callback=lambda s: seen.append(str(s)))
        loss, g = jax.value_and_grad(task.loss)(p, full, xb, yb, k)
        return jax.tree_util.tree_map(lambda a, b: a - 0.05 * b, p, g), loss
    xtr, ytr = task.data[:2]
    k = jax.random.PRNGKey(3)
    res = {}
    for name, devs in (("dp4", None), ("dp1", jax.devices()[:1])):
        f = S.data_parallel(step, (1, 2), devices=devs)
        p = params
        for i in range(5):
            p, loss = f(p, xtr[16 * i:16 * (i + 1)], ytr[16 * i:16 * (i + 1)], jax.random.fold_in(k, i))
        res[name] = (jax.tree_util.tree_leaves(p), float(loss))
    out["dp_max_param_diff"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                  for a, b in zip(res["dp4"][0], res["dp1"][0]))
    out["dp_loss"] = [res["dp4"][1], res["dp1"][1]]
    out["dp_sharding_seen"] = seen
    try:
        S.data_parallel(step, (1, 2))(params, xtr[:10], ytr[:10], k)
    except ValueError as e:
        out["dp_bad_batch"] = str(e)
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def multi_device_run(tmp_path_factory):
    script = tmp_path_factory.mktemp("multi") / "multi.py"
    script.write_text(_MULTI)
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, str(script), str(ROOT)], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def test_sweep_is_sharded_over_four_forced_cpu_devices(multi_device_run):
    r = multi_device_run
    assert r["n_devices"] == 4
    # 6 configurations padded to 8: two per device, in order; the padding is dropped
    assert r["where_dev"] == [0, 0, 1, 1, 2, 2, 3, 3][:6]
    assert r["where_a"] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert r["where_dev_chunked"] == [0, 1, 2, 3, 0, 1]


def test_sharded_sweep_equals_single_device_sweep(multi_device_run):
    for k, (sharded, single) in multi_device_run["sweep"].items():
        np.testing.assert_allclose(sharded, single, rtol=1e-4, atol=1e-5, err_msg=k)


def test_data_parallel_on_four_devices_equals_one_device(multi_device_run):
    r = multi_device_run
    assert r["dp_max_param_diff"] < 1e-4
    assert r["dp_loss"][0] == pytest.approx(r["dp_loss"][1], rel=1e-4, abs=1e-6)
    # the batch really was split over the 4 devices on the 4-device run
    assert any("data" in s and "4" in s for s in r["dp_sharding_seen"]), r["dp_sharding_seen"]
    assert "multiple of the 4 devices" in r["dp_bad_batch"]
