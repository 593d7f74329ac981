"""Integer weights for MNIST logistic regression: plain rounding vs MIP vs branch-and-bound + backprop, 2..8 bits.

A float softmax regression (784 -> 10, Adam, a few epochs) is trained on the full training set.
For every bit width ``b`` the weights are made integers in ``[-2**(b-1), 2**(b-1) - 1]`` with
one scale per layer (chosen once per bit width by :func:`spikejax.integer.choose_scale`, the
training error of the rounded layer on ``n_scale`` samples, and shared by the three methods);
biases are integers on the same scale in a ``bias_bits``-bit range:

* ``round``: plain rounding at that scale (``round_maxabs``: rounding at the max-abs scale,
  the naive baseline, reported too);
* ``mip``: :func:`spikejax.integer.mip_layer`, hinge objective on ``n_mip`` training samples the
  float model gets right, floor/ceil choices (``mip_radius=0``), block-coordinate descent over the
  10 classes with CBC, warm-started from rounding, ``mip_time_limit`` seconds;
* ``bnb``: :func:`spikejax.integer.bnb_layer` (our reconstruction of the seed's "branch and
  bound coupled with backpropagation"), cross-entropy on ``n_bnb`` training samples, groups of
  ``bnb_group_size`` weights per branching, ``bnb_gd_steps`` jitted projected-Adam steps per node,
  ``bnb_time_limit`` seconds.

Accuracies are those of the exact int32 fixed-point path (:func:`spikejax.integer.fixed_point_forward`
on the integer pixels; an exact tie between integer logits goes to the lowest class index); the
dequantised float path is recorded too and may differ only on such ties.
Optionally (``mlp_bits``) a 784-``mlp_hidden``-10 ReLU MLP is integerised layer by layer
(:func:`spikejax.integer.integerize_mlp`) with the same three methods.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spikejax.data import load_dataset
from spikejax.integer import (
    bnb_layer,
    choose_scale,
    fixed_point_forward,
    integerize_mlp,
    mip_layer,
    mlp_forward,
    round_layer,
    weight_range,
)
from spikejax.metrics import design_index

CONFIG = dict(
    dataset="mnist",
    epochs=5,
    batch_size=100,
    lr=1e-3,
    seed=0,
    bits=[2, 3, 4, 5, 6, 7, 8],
    bias_bits=16,
    n_scale=10000,  # 0 = all training samples
    n_mip=3000,
    mip_time_limit=25.0,
    mip_radius=0,
    margin=1.0,
    threads=1,
    n_bnb=10000,
    bnb_time_limit=25.0,
    bnb_group_size=512,
    bnb_gd_steps=20,
    bnb_lr=0.2,
    design_threshold_error=0.08,  # e_p of the Design Index (92 % accuracy)
    mlp_hidden=100,
    mlp_bits=[4],  # [] = skip the MLP part
    mlp_epochs=5,
    mlp_n=2000,
    mlp_time_limit=30.0,  # per method, split equally over the two layers
)

QUICK = dict(
    dataset="digits",
    epochs=40,
    batch_size=32,
    lr=1e-2,
    bits=[2, 3, 4, 8],
    n_scale=0,
    n_mip=0,
    mip_time_limit=2.0,
    n_bnb=0,
    bnb_time_limit=2.0,
    bnb_group_size=64,
    bnb_gd_steps=20,
    mlp_hidden=32,
    mlp_bits=[4],
    mlp_epochs=40,
    mlp_n=0,
    mlp_time_limit=4.0,
)

CLAIMS = [
    {
        "claim": "Logistic regression on MNIST, non-integral (float) weights: test accuracy (%)",
        "published": "92.3",
        "metric": "float_test_acc_pct",
        "fmt": ".2f",
    },
    {
        "claim": "... integral weights, branch and bound + backprop (seed; bit width not stated; ours: 4-bit, our reconstruction)",
        "published": "91.6",
        "metric": "test_acc_pct.bnb.4",
        "fmt": ".2f",
    },
    {
        "claim": "... integral weights, 4-bit, MIP (CBC, hinge on float-correct samples; not in the seed)",
        "published": "-",
        "metric": "test_acc_pct.mip.4",
        "fmt": ".2f",
    },
    {
        "claim": "... integral weights, 2-bit, best of MIP / B&B (not in the seed)",
        "published": "-",
        "metric": "best_2bit.test_acc_pct",
        "fmt": ".2f",
    },
    {
        "claim": "Issue target: best integer model at <= 4 bits within 0.3 points of our float model (points below float)",
        "published": "<= 0.3 (target)",
        "metric": "best_le4bits.gap_pts",
        "fmt": ".2f",
    },
    {
        "claim": "... its solve time on the shared 2-core CPU (target < 600 s)",
        "published": "< 600 s (target)",
        "metric": "best_le4bits.solve_time_s",
        "fmt": ".0f",
    },
]


def _data(cfg, split):
    kw = {"as_float": True}
    x, y = load_dataset(cfg["dataset"], split, **kw)
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    return x, np.asarray(y, np.int32)


def _input_unit(cfg):
    return 16 if cfg["dataset"] == "digits" else 255  # digits: pixels 0..16; MNIST: uint8


def _int_inputs(x, unit):
    xi = np.rint(np.asarray(x, np.float64) * unit).astype(np.int32)
    if not np.allclose(xi / unit, x, atol=1e-6):
        raise ValueError(f"inputs are not integers / {unit}")
    return xi


def _train(cfg, sizes, xtr, ytr, epochs, key):
    """Float ReLU MLP (``sizes = [784, 10]``: softmax regression), Adam, minibatches, lax.scan."""
    keys = jax.random.split(key, len(sizes))
    params = []
    for k, (a, b) in zip(keys, zip(sizes[:-1], sizes[1:])):
        params.append((jax.random.normal(k, (a, b), jnp.float32) * jnp.float32(np.sqrt(1.0 / a)), jnp.zeros((b,), jnp.float32)))

    def fwd(p, x):
        for i, (w, b) in enumerate(p):
            x = x @ w + b[None, :]
            if i < len(p) - 1:
                x = jax.nn.relu(x)
        return x

    def loss(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(fwd(p, x), y).mean()

    opt = optax.adam(cfg["lr"])
    X, Y = jnp.asarray(xtr), jnp.asarray(ytr)
    bs = cfg["batch_size"]
    nb = len(xtr) // bs

    @jax.jit
    def epoch(p, st, k):
        idx = jax.random.permutation(k, len(xtr))[: nb * bs].reshape(nb, bs)

        def body(c, i):
            p, st = c
            l, g = jax.value_and_grad(loss)(p, X[i], Y[i])
            with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats with int32 counts
                u, st = opt.update(g, st, p)
            return (optax.apply_updates(p, u), st), l

        (p, st), ls = jax.lax.scan(body, (p, st), idx)
        return p, st, ls.mean()

    st = opt.init(params)
    t0 = time.time()
    for e, k in enumerate(jax.random.split(key, epochs)):
        params, st, l = epoch(params, st, k)
    jax.block_until_ready(params)
    return [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in params], time.time() - t0, float(l)


def _acc(z, y):
    return float(np.mean(np.argmax(z, axis=1) == y))


def _int_acc(layers, x_int, x, y):
    """Accuracy of the exact int32 fixed-point path (ties -> lowest class index, as np.argmax),
    and how it compares with the dequantised float path: the two can only differ on samples
    whose integer logits tie exactly (float rounding then breaks the tie arbitrarily)."""
    z = np.asarray(fixed_point_forward(layers, x_int))
    pred = np.argmax(z, axis=1)
    ties = (z == z.max(axis=1, keepdims=True)).sum(axis=1) > 1
    pred_float = np.argmax(mlp_forward(layers, x), axis=1)
    differ = pred != pred_float
    return float(np.mean(pred == y)), {
        "float_path_acc_pct": 100 * float(np.mean(pred_float == y)),
        "n_integer_ties": int(ties.sum()),
        "n_float_path_disagreements": int(differ.sum()),
        "disagreements_are_ties": bool(np.all(ties[differ])),
    }


def _sub(x, y, n, perm):
    if not n or n >= len(x):
        return x, y
    return x[perm[:n]], y[perm[:n]]


def run(cfg, ctx):
    xtr, ytr = _data(cfg, "train")
    xte, yte = _data(cfg, "test")
    unit = _input_unit(cfg)
    xte_int = _int_inputs(xte, unit)
    xtr_int = _int_inputs(xtr, unit)
    key = jax.random.PRNGKey(cfg["seed"])
    k_lr, k_mlp = jax.random.split(key)
    perm = np.random.default_rng(cfg["seed"]).permutation(len(xtr))
    ytr64 = ytr.astype(np.int64)

    [(w, b)], train_time, last_loss = _train(cfg, [xtr.shape[1], 10], xtr, ytr, cfg["epochs"], k_lr)
    float_test = _acc(xte @ w + b, yte)
    float_train = _acc(xtr @ w + b, ytr)
    ctx.log(f"float softmax regression: test {100 * float_test:.2f}% train {100 * float_train:.2f}% ({train_time:.1f}s)")

    bias_range = weight_range(cfg["bias_bits"])
    xs, ys = _sub(xtr, ytr64, cfg["n_scale"], perm)
    xm, ym = _sub(xtr, ytr64, cfg["n_mip"], perm)
    xb, yb = _sub(xtr, ytr64, cfg["n_bnb"], perm)
    methods = ("round_maxabs", "round", "mip", "bnb")
    test_acc = {m: {} for m in methods}
    train_acc = {m: {} for m in methods}
    solve_time = {m: {} for m in methods}
    rows = []
    ties_ok = True
    for i, bits in enumerate(cfg["bits"]):
        lo, hi = weight_range(bits)
        t0 = time.perf_counter()
        scale = choose_scale(w, b, xs, ys, lo=lo, hi=hi, bias_range=bias_range)
        scale_time = time.perf_counter() - t0
        res = {
            "round_maxabs": round_layer(w, b, lo=lo, hi=hi, scale=max(np.abs(w).max(), np.abs(b).max()) / max(-lo, hi), bias_range=bias_range),
            "round": round_layer(w, b, xm, ym, lo=lo, hi=hi, scale=scale, bias_range=bias_range, margin=cfg["margin"]),
            "mip": mip_layer(
                w, b, xm, ym, lo=lo, hi=hi, scale=scale, bias_range=bias_range, margin=cfg["margin"], radius=cfg["mip_radius"],
                time_limit=cfg["mip_time_limit"], threads=cfg["threads"],
            ),
            "bnb": bnb_layer(
                w, b, xb, yb, lo=lo, hi=hi, scale=scale, bias_range=bias_range, objective="xent", keep="all",
                group_size=cfg["bnb_group_size"], gd_steps=cfg["bnb_gd_steps"], lr=cfg["bnb_lr"], time_limit=cfg["bnb_time_limit"],
            ),
        }
        row = {"bits": bits, "lo": lo, "hi": hi, "bias_range": list(bias_range), "scale": scale, "scale_choice_s": scale_time}
        for m, r in res.items():
            layer = r.layer._replace(input_unit=unit)
            te, check = _int_acc([layer], xte_int, xte, yte)
            tr, _ = _int_acc([layer], xtr_int, xtr, ytr)
            ties_ok &= check["disagreements_are_ties"]
            test_acc[m][str(bits)] = 100 * te
            train_acc[m][str(bits)] = 100 * tr
            solve_time[m][str(bits)] = r.solve_time_s
            row[m] = {**r.summary(), "test_acc_pct": 100 * te, "train_acc_pct": 100 * tr, **check}
        rows.append(row)
        ctx.progress(
            i + 1, len(cfg["bits"]), bits=bits, round=test_acc["round"][str(bits)], mip=test_acc["mip"][str(bits)],
            bnb=test_acc["bnb"][str(bits)], mip_status=res["mip"].status, bnb_status=res["bnb"].status,
        )

    def best(pred):
        cands = [(test_acc[m][str(bt)], m, bt) for m in ("mip", "bnb") for bt in cfg["bits"] if pred(bt)]
        if not cands:
            return None
        acc, m, bt = max(cands)
        return {
            "method": m,
            "bits": bt,
            "test_acc_pct": acc,
            "gap_pts": 100 * float_test - acc,
            "solve_time_s": solve_time[m][str(bt)],
        }

    e_p = cfg["design_threshold_error"]
    di = {}
    for m in ("round", "mip", "bnb"):
        di[m] = {}
        for bt in cfg["bits"]:
            et, ev = 1 - train_acc[m][str(bt)] / 100, 1 - test_acc[m][str(bt)] / 100
            d = design_index(et, ev, e_p)
            di[m][str(bt)] = {"I_a": d.accuracy, "I_o": d.overfitting}
    dfl = design_index(1 - float_train, 1 - float_test, e_p)

    metrics = {
        "float_test_acc_pct": 100 * float_test,
        "float_train_acc_pct": 100 * float_train,
        "float_train_time_s": train_time,
        "float_last_epoch_loss": last_loss,
        "n_train": int(len(xtr)),
        "n_test": int(len(xte)),
        "input_unit": unit,
        "bits": list(cfg["bits"]),
        "test_acc_pct": test_acc,
        "train_acc_pct": train_acc,
        "solve_time_s": solve_time,
        "rows": rows,
        "fixed_point_float_path_differ_only_on_ties": bool(ties_ok),
        "best_le4bits": best(lambda bt: bt <= 4),
        "best_2bit": best(lambda bt: bt == 2),
        "design_index": {"e_p": e_p, "float": {"I_a": dfl.accuracy, "I_o": dfl.overfitting}, **di},
    }

    if cfg["mlp_bits"]:
        sizes = [xtr.shape[1], cfg["mlp_hidden"], 10]
        layers, mlp_time, _ = _train(cfg, sizes, xtr, ytr, cfg["mlp_epochs"], k_mlp)
        h = np.maximum(xte @ layers[0][0] + layers[0][1], 0.0)
        mlp_float = _acc(h @ layers[1][0] + layers[1][1], yte)
        ctx.log(f"float MLP {sizes}: test {100 * mlp_float:.2f}% ({mlp_time:.1f}s)")
        xn, yn = _sub(xtr, ytr64, cfg["mlp_n"], perm)
        mlp = {"sizes": sizes, "float_test_acc_pct": 100 * mlp_float, "float_train_time_s": mlp_time, "by_bits": {}}
        for bits in cfg["mlp_bits"]:
            lo, hi = weight_range(bits)
            out = {}
            for m in ("round", "mip", "bnb"):
                t0 = time.perf_counter()
                kw = {}
                if m == "mip":
                    kw = {"mip_options": {"threads": cfg["threads"], "radius": cfg["mip_radius"]}}
                if m == "bnb":
                    kw = {"bnb_options": {"group_size": 4 * cfg["bnb_group_size"], "gd_steps": cfg["bnb_gd_steps"], "lr": cfg["bnb_lr"]}}
                L, R = integerize_mlp(
                    layers, xn, yn, lo=lo, hi=hi, method=m, input_unit=unit, time_limit=cfg["mlp_time_limit"],
                    bias_range=bias_range, margin=cfg["margin"], **kw,
                )
                dt = time.perf_counter() - t0
                te, check = _int_acc(L, xte_int, xte, yte)
                ties_ok &= check["disagreements_are_ties"]
                out[m] = {
                    "test_acc_pct": 100 * te,
                    **check,
                    "time_s": dt,
                    "input_units": [int(layer.input_unit) for layer in L],
                    "layers": [r.summary() for r in R],
                }
                ctx.log(f"MLP {bits} bits {m}: test {100 * te:.2f}% (exact int32 path), {dt:.1f}s")
            mlp["by_bits"][str(bits)] = out
        metrics["mlp"] = mlp
        metrics["fixed_point_float_path_differ_only_on_ties"] = bool(ties_ok)
    return metrics
