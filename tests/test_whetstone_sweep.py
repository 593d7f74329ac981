"""WhetstoneTask: one pure Whetstone training run per hyperparameter configuration, vmapped sweeps
equal single runs, exact steps at full sharpness, the masked N-hot code, the sharpening schedule
and bad hyperparameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spikejax.data import load_dataset
from spikejax.sweep import stack_configs, sweep, unstack_configs
from spikejax.whetstone_sweep import WhetstoneTask, masked_nhot_key, output_mask


def _digits():
    x, y = load_dataset("digits", "train")
    xt, yt = load_dataset("digits", "test")
    b = lambda a: (np.asarray(a, np.float32).reshape(len(a), -1) >= 0.5).astype(np.float32)
    x, xt = b(x), b(xt)
    y, yt = np.asarray(y, np.int32), np.asarray(yt, np.int32)
    return tuple(jnp.asarray(a) for a in (x[:600], y[:600], x[600:900], y[600:900], xt[:300], yt[:300]))


DATA = None


def data():
    global DATA
    if DATA is None:
        DATA = _digits()
    return DATA


def _task(**kw):
    kw = {"n_in": 64, "hidden": (24, 12), "max_key_units": 3, "epochs": 6, "batch_size": 25, "eval_batch": 128, **kw}
    return WhetstoneTask(**kw)


# moderate learning rates: at lr ~1e-2 the sharpening net is chaotic, and a last-bit rounding
# difference between the batched and the unbatched program grows to a visibly different run
HP3 = [
    {"log10_lr": -2.0, "sharpen_start": 0.0, "dropout": 0.0, "key_units": 1, "seed": 0, "data_seed": 0},
    {"log10_lr": -2.3, "sharpen_start": 0.5, "dropout": 0.2, "key_units": 3, "seed": 1, "data_seed": 0},
    {"log10_lr": -2.5, "sharpen_start": 0.25, "dropout": 0.1, "key_units": 2, "seed": 2, "data_seed": 5},
]


def test_vmapped_sweep_equals_three_single_runs():
    task = _task()
    hp = stack_configs(HP3)
    swept = sweep(task, hp, *data())
    alone = jax.jit(task)
    singles = [alone(c, *data()) for c in unstack_configs(hp)]
    n_val = data()[2].shape[0]
    for k, v in swept.items():
        ref = np.array([float(s[k]) for s in singles])
        if k in ("val_acc", "test_acc"):
            # a fully sharpened net is a step function of its weights: a last-bit difference between
            # a batched and an unbatched matmul can flip a unit that sits exactly at threshold, so
            # allow a few samples (1 point); the smooth quantities below agree to rounding
            np.testing.assert_allclose(v, ref, atol=0.01, err_msg=k)
        elif k == "val_acc_soft":
            np.testing.assert_allclose(v, ref, atol=1.01 / n_val, err_msg=k)
        else:
            np.testing.assert_allclose(v, ref, rtol=1e-4, atol=1e-5, err_msg=k)
    assert len(set(np.round(swept["train_loss"], 5))) == 3  # the configurations really differ
    assert swept["val_acc"].max() > 0.5  # it learns (10 classes; binary net, 6 short epochs)
    np.testing.assert_allclose(swept["final_model_sharpness"], np.full(3, 1.0), atol=0.05)


def test_full_sharpness_gives_exact_steps_and_binary_outputs():
    for act, theta in (("sigmoid", 0.0), ("brelu", 0.5)):
        task = _task(activation=act)
        params = task.init_params(jax.random.PRNGKey(3))
        params = [(w, b + 0.05 * jax.random.normal(jax.random.PRNGKey(i), b.shape)) for i, (w, b) in enumerate(params)]
        x = data()[0][:64]
        ones = jnp.ones((task.n_layers,), jnp.float32)
        out, hidden = task.forward(params, x, ones, 2, return_hidden=True)
        h = x
        for i, (w, b) in enumerate(params):
            h = ((h @ w + b[None, :]) >= theta).astype(jnp.float32)  # Heaviside by hand
            if i < len(hidden):
                np.testing.assert_array_equal(np.asarray(hidden[i]), np.asarray(h))
        mask = output_mask(2, task.n_classes, task.max_key_units)
        np.testing.assert_array_equal(np.asarray(out), np.asarray(h * mask[None, :]))
        assert set(np.unique(np.asarray(out)).tolist()) <= {0.0, 1.0}
        # below full sharpness the activations are graded
        half = task.forward(params, x, 0.5 * ones, 2)
        assert np.any((np.asarray(half) > 0) & (np.asarray(half) < 1))


def test_masked_nhot_code_equals_a_narrower_output_layer():
    task = _task()
    M, C = task.max_key_units, task.n_classes
    K = np.asarray(masked_nhot_key(2, C, M))
    assert K.shape == (C, C * M) and np.all(K.sum(1) == 2) and np.all(K.sum(0) <= 1)
    y = jax.random.uniform(jax.random.PRNGKey(0), (7, C * M)) * output_mask(2, C, M)[None, :]
    s_masked = np.asarray(task.scores(y, 2))
    keep = np.asarray(output_mask(2, C, M)) > 0
    Kn, yn = K[:, keep], np.asarray(y)[:, keep]
    s_narrow = (2 * yn - 1) @ (2 * Kn - 1).T
    diff = s_masked - s_narrow
    np.testing.assert_allclose(diff, np.broadcast_to(diff[:, :1], diff.shape), atol=1e-5)  # constant per sample
    labels = jnp.arange(7) % C
    np.testing.assert_allclose(
        optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(s_masked), labels),
        optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(s_narrow, jnp.float32), labels),
        rtol=1e-5,
    )


def test_sharpening_schedule_is_bottom_up_from_the_start_fraction():
    task = _task()
    L = task.n_layers
    s = lambda t: np.asarray(task.sharpness_at(t, 100, 0.5))
    np.testing.assert_array_equal(s(0), np.zeros(L))
    np.testing.assert_array_equal(s(50), np.zeros(L))
    mid = s(60)  # model sharpness 0.2 -> layer 0 partly sharp, the rest at 0
    assert 0 < mid[0] < 1 and np.all(mid[1:] == 0)
    late = s(90)  # model sharpness 0.8 -> lower layers done, top layer partly sharp
    assert np.all(late[:-1] == 1) and 0 < late[-1] < 1
    np.testing.assert_array_equal(np.asarray(task.sharpness_at(100, 100, 0.5)), np.ones(L))


def test_bad_hyperparameters_raise():
    task = _task()
    with pytest.raises(ValueError, match=r"unknown hyperparameters \['momentum'\]"):
        task.resolve({"momentum": 0.9})
    with pytest.raises(ValueError, match="key_units must lie in 1..3"):
        task.resolve({"key_units": 4})
    with pytest.raises(ValueError, match="sharpen_start"):
        task.resolve({"sharpen_start": 1.0})
    with pytest.raises(ValueError, match="dropout"):
        task.resolve({"dropout": -0.1})
    with pytest.raises(ValueError, match="activation"):
        _task(activation="relu")
    with pytest.raises(ValueError, match="unknown defaults"):
        _task(defaults=(("lr", 0.1),))
    with pytest.raises(ValueError, match="epochs"):
        _task(epochs=0)


def test_whetstone_bo_interrupted_in_the_bo_stage_resumes(tmp_path, monkeypatch):
    """Kill the smoke run during its second BO round: the restart trains no grid point again,
    re-runs the interrupted (asked, never told) trials with their stored parameters, and the
    study ends with exactly bo_evals trials numbered 0..bo_evals-1 (continued, not restarted)."""
    import json

    from experiments import whetstone_bo as W
    from spikejax.experiment import run_experiment

    real = W._evaluate
    calls = []

    def crashing(task, configs, data, chunk):
        calls.append(len(configs))
        if len(calls) == 4:  # 2 grid chunks, BO round 1, then BO round 2 dies
            raise KeyboardInterrupt("simulated interruption")
        return real(task, configs, data, chunk)

    monkeypatch.setattr(W, "_evaluate", crashing)
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(W, quick=True, out_dir=tmp_path, ckpt_dir=ck, quiet=True)
    assert list(ck.glob("*.optuna.log")), "the Optuna study must persist"
    calls.clear()
    asked = []

    def recording(task, configs, data, chunk):
        calls.append(len(configs))
        asked.append([dict(c) for c in configs])
        return real(task, configs, data, chunk)

    monkeypatch.setattr(W, "_evaluate", recording)
    path = run_experiment(W, quick=True, out_dir=tmp_path, ckpt_dir=ck, quiet=True)
    rec = json.loads(path.read_text())
    q = {**W.CONFIG, **W.QUICK}
    assert rec["resumed_from_step"] == len(q["grid_log10_lr"]) ** 4  # the grid was not redone
    # first call after restart: the interrupted round (its trials were pending), not a new study
    assert calls[0] == q["bo_batch"] * q["bo_seeds"]
    study = rec["metrics"]["bo"]["studies"][0]
    assert [t["number"] for t in study] == list(range(q["bo_evals"]))
    resumed = {(round(c["log10_lr"], 6), c["key_units"]) for c in asked[0]}
    stored = {(round(t["config"]["log10_lr"], 6), t["config"]["key_units"]) for t in study[q["bo_batch"] : 2 * q["bo_batch"]]}
    assert resumed == stored  # the pending trials ran with the parameters asked before the crash
    assert not list(ck.glob("*.ckpt")) and not list(ck.glob("*.optuna.log"))  # cleaned up after success
