"""Integer weights for a 784-100-10 spiking (integrate-and-fire) network on MNIST, layer by layer
with rounding, MIP and branch-and-bound + backprop, and the fixed-point (NSAT-like) run with
predictions identical to the integer model evaluated in float.

Network (:mod:`spikejax.integer_snn`): integer pixels 0..255 become deterministic regular spike
trains over ``T`` ticks (:func:`spikejax.integer_snn.encode_regular`, integer arithmetic: the
count of a pixel ``p`` is ``floor((T p + 127) / 255)``); a hidden layer of IF neurons (spikejax
``LIF``, ``input_mode="delta"``, no leak, subtractive reset, threshold 1, bias per tick); a
non-spiking integrator output whose membrane after ``T`` ticks is the logit vector.  Trained in
float32 by surrogate-gradient BPTT (fast sigmoid) with Adam on the full training set.

Integer weights (:func:`spikejax.integer_snn.integerize_spiking_mlp`), for each bit width ``b``:
weights in ``[-2**(b-1), 2**(b-1)-1]``, 16-bit biases, one scale per layer.  The hidden layer's
scale is ``1 / theta`` where ``theta`` is its integer threshold, chosen once per bit width (shared
by the three methods) from a geometric grid above the no-clipping value by the training accuracy
of the plainly rounded network on ``n_scale`` samples.  Then, layer by layer from the input:

* ``round``: plain rounding;
* ``mip``: :func:`spikejax.integer.mip_layer` (CBC): hidden layer ``l1relu`` against the float
  network's mean drive (exact per-column MIPs), output layer ``hinge`` on the integer network's
  hidden counts (class block-coordinate descent), ``n_mip`` samples, ``mip_time_limit`` seconds;
* ``bnb``: :func:`spikejax.integer.bnb_layer` (our reconstruction of the seed's "branch and bound
  coupled with backpropagation"): hidden ``l1relu``, output ``xent``, ``n_bnb`` samples, groups of
  ``bnb_group_size`` weights per branching, ``bnb_time_limit`` seconds.

Every integer network is evaluated on the full test set three ways: (1) the integer model in
float32 with spikejax's LIF (exact: integer values below 2**24), (2) the fixed-point simulator
(:class:`spikejax.fixed_point.FixedPointLIF` + ``fixed_dense``, int32 saturated to a membrane
width that provably cannot saturate, 16-bit synaptic accumulator), (3) the dequantised float
model (weights ``scale * w_int``, threshold 1; float rounding near the threshold may differ).
Reported: accuracies, the number of test images on which (1) and (2) predict the same class and
whether their output membranes are equal, and the same count for (3).  Training accuracy (and
the Design Index) is measured on ``n_eval_train`` training images.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spikejax.data import load_dataset
from spikejax.integer import weight_range
from spikejax.integer_snn import (
    encode_regular,
    fixed_point_forward_snn,
    if_forward,
    integer_forward_dequantized,
    integer_forward_float,
    integerize_spiking_mlp,
    predict_batched,
    worst_case_membrane,
)
from spikejax.metrics import design_index
from spikejax.nn import init_mlp
from spikejax.surrogate import fast_sigmoid
from spikejax.training import fit_classifier

CONFIG = dict(
    dataset="mnist",
    hidden=100,
    T=8,
    epochs=8,
    batch_size=100,
    lr=2e-3,
    surrogate_slope=10.0,
    seed=0,
    bits=[4, 3],
    bias_bits=16,
    n_scale=5000,
    theta_grid=6,  # thresholds theta_0 * 2**(k/2), k < theta_grid (theta_0: no clipping)
    n_mip=1000,
    mip_time_limit=60.0,  # per network, split over the two layers
    n_bnb=5000,
    bnb_time_limit=60.0,
    bnb_group_size=2048,
    bnb_gd_steps=20,
    bnb_lr=0.2,
    margin=1.0,
    threads=1,
    n_eval_train=10000,
    design_threshold_error=0.05,  # e_p of the Design Index (95 % accuracy)
)

QUICK = dict(
    dataset="digits",
    hidden=32,
    T=8,
    epochs=12,
    batch_size=32,
    lr=5e-3,
    bits=[4],
    n_scale=0,
    theta_grid=3,
    n_mip=300,
    mip_time_limit=2.0,
    n_bnb=0,
    bnb_time_limit=2.0,
    bnb_group_size=128,
    n_eval_train=0,
)

CLAIMS = [
    {
        "claim": "784-100-10 spiking (IF, T=8 deterministic spikes) MNIST network, float weights: test accuracy (%) (the seed gives no SNN number)",
        "published": "-",
        "metric": "float_test_acc_pct",
        "fmt": ".2f",
    },
    {
        "claim": "... integer weights, 4-bit, layer by layer, branch and bound + backprop (our reconstruction): test accuracy (%)",
        "published": "-",
        "metric": "by_bits.4.bnb.test_acc_pct",
        "fmt": ".2f",
    },
    {
        "claim": "... integer weights, 4-bit, layer by layer, MIP (CBC): test accuracy (%)",
        "published": "-",
        "metric": "by_bits.4.mip.test_acc_pct",
        "fmt": ".2f",
    },
    {
        "claim": "... integer weights, 4-bit, plain rounding: test accuracy (%)",
        "published": "-",
        "metric": "by_bits.4.round.test_acc_pct",
        "fmt": ".2f",
    },
    {
        "claim": "... fixed-point (NSAT-like int32) run vs integer model in float32: test images with identical predictions, every method and bit width (issue: identical)",
        "published": "identical (target)",
        "metric": "agreement_summary",
    },
    {
        "claim": "... best integer network at <= 4 bits: points below the float SNN",
        "published": "-",
        "metric": "best_le4bits.gap_pts",
        "fmt": ".2f",
    },
]


def _data(cfg, split):
    x, y = load_dataset(cfg["dataset"], split, as_float=True)
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    unit = 16 if cfg["dataset"] == "digits" else 255
    xi = np.rint(x * unit).astype(np.int32)
    if not np.allclose(xi / unit, x, atol=1e-6):
        raise ValueError(f"inputs are not integers / {unit}")
    return xi, np.asarray(y, np.int32), unit


def _sub(x, y, n, perm):
    if not n or n >= len(x):
        return x, y
    return x[perm[:n]], y[perm[:n]]


def _train(cfg, xtr, ytr, xte, yte, unit, key, ctx):
    T = cfg["T"]
    sizes = [xtr.shape[1], cfg["hidden"], 10]
    k_init, k_fit = jax.random.split(key)
    params = [(layer.w, layer.b) for layer in init_mlp(k_init, sizes)]
    spike_fn = fast_sigmoid(cfg["surrogate_slope"])

    def logits(p, xb):
        s = encode_regular(xb, T, unit)
        return if_forward(p, s, [1.0], spike_fn=spike_fn) / jnp.float32(T)

    def loss(p, xb, yb, k):
        return optax.softmax_cross_entropy_with_integer_labels(logits(p, xb), yb).mean()

    steps = cfg["epochs"] * (len(xtr) // cfg["batch_size"])
    opt = optax.adam(optax.cosine_decay_schedule(cfg["lr"], steps))
    t0 = time.time()
    params, hist = fit_classifier(
        loss, lambda p, xb, k: logits(p, xb), params, opt, (xtr, ytr), (xte, yte),
        epochs=cfg["epochs"], batch_size=cfg["batch_size"], key=k_fit, ctx=ctx,
    )
    return [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in params], time.time() - t0, hist


def _float_logits(layers, x_int, T, unit):
    f32 = [(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)) for w, b in layers]
    fwd = jax.jit(lambda s: if_forward(f32, s, [1.0]))
    return predict_batched(fwd, x_int, T=T, unit=unit)


def _evaluate(net, x_int, y, unit):
    """The three evaluations of an integer network on (x_int, y)."""
    T = net.T
    zf = predict_batched(jax.jit(lambda s: integer_forward_float(net, s)), x_int, T=T, unit=unit)
    zx = predict_batched(jax.jit(lambda s: fixed_point_forward_snn(net, s)), x_int, T=T, unit=unit)
    zd = predict_batched(jax.jit(lambda s: integer_forward_dequantized(net, s)), x_int, T=T, unit=unit)
    pf, px, pd = (np.argmax(z, axis=1) for z in (zf, zx, zd))
    return {
        "acc_pct": 100 * float(np.mean(pf == y)),
        "fixed_point_acc_pct": 100 * float(np.mean(px == y)),
        "dequantized_acc_pct": 100 * float(np.mean(pd == y)),
        "n": int(len(y)),
        "n_agree_fixed_vs_float": int(np.sum(pf == px)),
        "membranes_equal_fixed_vs_float": bool(np.array_equal(zf.astype(np.int64), zx.astype(np.int64))),
        "n_agree_dequantized_vs_fixed": int(np.sum(pd == px)),
        "n_output_ties": int(np.sum((zx == zx.max(axis=1, keepdims=True)).sum(axis=1) > 1)),
    }


def run(cfg, ctx):
    xtr, ytr, unit = _data(cfg, "train")
    xte, yte, _ = _data(cfg, "test")
    T = cfg["T"]
    key = jax.random.PRNGKey(cfg["seed"])
    perm = np.random.default_rng(cfg["seed"]).permutation(len(xtr))
    layers, train_time, hist = _train(cfg, xtr, ytr, xte, yte, unit, key, ctx)
    xev, yev = _sub(xtr, ytr, cfg["n_eval_train"], perm)
    float_test = float(np.mean(np.argmax(_float_logits(layers, xte, T, unit), axis=1) == yte))
    float_train = float(np.mean(np.argmax(_float_logits(layers, xev, T, unit), axis=1) == yev))
    ctx.log(f"float IF {xtr.shape[1]}-{cfg['hidden']}-10, T={T}: test {100 * float_test:.2f}% train {100 * float_train:.2f}% ({train_time:.0f}s)")

    bias_range = weight_range(cfg["bias_bits"])
    xs, ys = _sub(xtr, ytr, cfg["n_scale"], perm)
    xm, ym = _sub(xtr, ytr, cfg["n_mip"], perm)
    xb, yb = _sub(xtr, ytr, cfg["n_bnb"], perm)
    w1max = float(np.abs(layers[0][0]).max())
    e_p = cfg["design_threshold_error"]
    by_bits = {}
    agree_all, n_agree_total, n_total = True, 0, 0
    for bits in cfg["bits"]:
        lo, hi = weight_range(bits)
        # hidden threshold (= 1 / hidden scale): grid above the no-clipping value, by rounded accuracy
        theta0 = max(1, int(np.floor((hi + 0.5) / w1max)))
        grid = sorted({max(1, int(round(theta0 * 2 ** (k / 2)))) for k in range(cfg["theta_grid"])})
        t0 = time.perf_counter()
        scores = {}
        for th in grid:
            net, _ = integerize_spiking_mlp(layers, xs, ys, T=T, unit=unit, thresholds=[th], lo=lo, hi=hi, method="round", bias_range=bias_range, margin=cfg["margin"])
            z = predict_batched(jax.jit(lambda s, net=net: integer_forward_float(net, s)), xs, T=T, unit=unit)
            scores[th] = float(np.mean(np.argmax(z, axis=1) == ys))
        theta = max(grid, key=lambda th: (scores[th], -th))
        theta_time = time.perf_counter() - t0
        ctx.log(f"{bits} bits: threshold grid {grid} -> rounded train acc {[round(100 * scores[t], 2) for t in grid]}; theta = {theta}")
        out = {"lo": lo, "hi": hi, "theta": theta, "theta_grid": grid, "theta_scores_pct": {str(t): 100 * s for t, s in scores.items()}, "theta_choice_s": theta_time}
        for method, (xx, yy) in (("round", (xs, ys)), ("mip", (xm, ym)), ("bnb", (xb, yb))):
            kw = {}
            if method == "mip":
                kw = dict(time_limit=cfg["mip_time_limit"], mip_options={"threads": cfg["threads"]})
            elif method == "bnb":
                kw = dict(time_limit=cfg["bnb_time_limit"], bnb_options={"group_size": cfg["bnb_group_size"], "gd_steps": cfg["bnb_gd_steps"], "lr": cfg["bnb_lr"]})
            t0 = time.perf_counter()
            net, results = integerize_spiking_mlp(layers, xx, yy, T=T, unit=unit, thresholds=[theta], lo=lo, hi=hi, method=method, bias_range=bias_range, margin=cfg["margin"], **kw)
            solve = time.perf_counter() - t0
            te = _evaluate(net, xte, yte, unit)
            tr = _evaluate(net, xev, yev, unit)
            agree_all &= te["n_agree_fixed_vs_float"] == te["n"] and te["membranes_equal_fixed_vs_float"]
            n_agree_total += te["n_agree_fixed_vs_float"]
            n_total += te["n"]
            di = design_index(max(1 - tr["acc_pct"] / 100, 1 / tr["n"]), max(1 - te["acc_pct"] / 100, 1 / te["n"]), e_p)
            out[method] = {
                "test_acc_pct": te["acc_pct"],
                "train_acc_pct": tr["acc_pct"],
                "test": te,
                "train": tr,
                "time_s": solve,
                "worst_case_membrane": worst_case_membrane(net),
                "weight_scales": [float(L.scale) for L in net.layers],
                "layers": [r.summary() for r in results],
                "design_index": {"I_a": di.accuracy, "I_o": di.overfitting},
                "n_fit_samples": int(len(xx)),
            }
            ctx.log(
                f"{bits} bits {method}: test {te['acc_pct']:.2f}% (fixed point {te['fixed_point_acc_pct']:.2f}%, "
                f"agree {te['n_agree_fixed_vs_float']}/{te['n']}, membranes equal {te['membranes_equal_fixed_vs_float']}; "
                f"dequantised agree {te['n_agree_dequantized_vs_fixed']}/{te['n']}), statuses {[r.status for r in results]}, {solve:.1f}s"
            )
        by_bits[str(bits)] = out

    def best(pred):
        cands = [(by_bits[str(b)][m]["test_acc_pct"], m, b) for b in cfg["bits"] if pred(b) for m in ("round", "mip", "bnb")]
        if not cands:
            return None
        acc, m, b = max(cands)
        return {"method": m, "bits": b, "test_acc_pct": acc, "gap_pts": 100 * float_test - acc, "time_s": by_bits[str(b)][m]["time_s"]}

    dfl = design_index(max(1 - float_train, 1 / len(yev)), max(1 - float_test, 1 / len(yte)), e_p)
    return {
        "float_test_acc_pct": 100 * float_test,
        "float_train_acc_pct": 100 * float_train,
        "float_train_time_s": train_time,
        "float_history": hist,
        "sizes": f"{xtr.shape[1]}-{cfg['hidden']}-10",
        "T": T,
        "input_unit": unit,
        "n_train": int(len(xtr)),
        "n_test": int(len(xte)),
        "n_eval_train": int(len(yev)),
        "bits": list(cfg["bits"]),
        "by_bits": by_bits,
        "fixed_point_identical_everywhere": bool(agree_all),
        "agreement_summary": (
            f"{n_agree_total}/{n_total} ({len(cfg['bits'])} bit widths x 3 methods x {len(yte)} test images; "
            + ("all identical, output membranes bit-equal)" if agree_all else "NOT all identical)")
        ),
        "best_le4bits": best(lambda b: b <= 4),
        "design_index": {"e_p": e_p, "e_v": "test error (no separate validation split)", "float": {"I_a": dfl.accuracy, "I_o": dfl.overfitting}},
    }
