"""Permanent dropout on a SoftLIF regression MLP vs its spiking conversion: KS agreement study.

Protocol of Wycoff, Balaprakash & Xia (ICONS 2019; papers.md 4.2) on a stand-in data set: the
seed used CANDLE Combo (drug-combination growth), which is not bundled; here scikit-learn's
*diabetes* regression set (442 patients, 10 standardised features, disease progression after
one year) is used, so the numbers are not comparable with the seed's.

1. Train a 10-H-H-1 MLP with the SoftLIF activation and dropout (optax Adam, MSE on the
   standardised target).  The default smoothing is sigma = 0.002 (Hunsberger's test call): the
   converted network computes the *hard* LIF rate, and with sigma = 0.02 the SoftLIF network's
   outputs differ from the LIF-rate network's by ~30% of the dropout spread, which the KS study
   detects (run ``--set sigma=0.02``: written as ``softlif_dropout_diabetes-sigma0.02.json``).
2. Convert it to a spiking LIF network (constant-current input, alpha synapses, ``dt``,
   presentation time, readout = filtered output averaged after ``settle_time``).
3. For each of the first K test observations draw N permanent-dropout samples from the rate
   network (the LIF-rate network the conversion targets, and the SoftLIF network as trained) and
   N from the spiking network with independent masks (a fresh mask per observation and sample,
   as Keras' dropout draws them, so the K tests are independent); KS test per observation,
   uniformity test of the K p-values, most extreme KS statistic vs its null.
4. Controls: DNN vs DNN (calibration of the machinery) and a deliberately wrong conversion
   (all weights x ``wrong_scale``) that must be detected.
5. Speed: ``n_speed`` dropout samples over the whole test set in one vmapped call vs a Python
   loop over samples (one jitted call per sample).
6. The CANDLE-style summary table (Sample N PredMean PredStd PredMin PredMax) of the DNN with
   permanent dropout over the test set, in the target's original units, is written next to the
   results as ``<stem>.summary.tsv`` (and the spiking network's as ``<stem>.summary_snn.tsv``).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spikejax.nn import init_mlp
from spikejax.softlif import RateNet, SoftLIF, convert, mlp_apply
from spikejax.uncertainty import (
    dropout_mask,
    ks_agreement,
    permanent_dropout_samples,
    write_summary_tsv,
)

CONFIG = dict(
    hidden=64,
    n_hidden_layers=2,
    dropout=0.2,
    sigma=0.002,
    amplitude=0.01,
    tau_rc=0.02,
    tau_ref=0.002,
    train_steps=3000,
    batch_size=64,
    lr=3e-3,
    test_fraction=0.25,
    seed=0,
    K=100,
    N=100,
    dt=1e-4,
    synapse="alpha",
    tau_syn=0.02,
    presentation_time=1.0,
    settle_time=0.2,
    wrong_scale=1.3,
    n_null=2000,
    n_speed=1000,
    speed_repeats=3,
    tsv_samples=100,
)

QUICK = dict(train_steps=400, K=20, N=30, dt=2e-4, presentation_time=0.4, settle_time=0.15, n_null=300, n_speed=100,
             speed_repeats=1, tsv_samples=20)

CLAIMS = [
    {
        "claim": "Permanent dropout, SNN vs DNN (LIF rates): KS uniformity p-value of the K=100 per-observation "
        "p-values (diabetes data, not the seed's CANDLE Combo; seed: 'looks roughly uniform')",
        "published": "roughly uniform (seed slide)",
        "metric": "agreement.uniformity_pvalue",
        "fmt": ".3f",
    },
    {
        "claim": "... most extreme KS statistic vs the 95% quantile of its null (seed: 'looks close')",
        "published": "close (seed slide)",
        "metric": "max_ks_summary",
    },
    {
        "claim": "... SNN vs the SoftLIF DNN as trained (sigma=0.002): KS uniformity p-value",
        "published": "roughly uniform (seed slide)",
        "metric": "agreement_vs_softlif_dnn.uniformity_pvalue",
        "fmt": ".3f",
    },
    {
        "claim": "... negative control (SNN weights x1.3): uniformity p-value (must be tiny)",
        "published": "n/a (control)",
        "metric": "negative_control.uniformity_pvalue",
        "fmt": ".2e",
    },
    {
        "claim": "... 1,000 dropout samples over the 111-observation test set: one vmapped call vs a Python loop of "
        "jitted calls (target >= 20x)",
        "published": ">= 20x (target)",
        "metric": "speed.speedup",
        "fmt": ".1f",
    },
]


def _data(cfg):
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True)
    idx = np.arange(len(X))
    itr, ite = train_test_split(idx, test_size=cfg["test_fraction"], random_state=cfg["seed"])
    mu, sd = X[itr].mean(0), X[itr].std(0)
    ym, ys = y[itr].mean(), y[itr].std()
    f = lambda a: np.asarray((a - mu) / sd, np.float32)  # noqa: E731
    return f(X[itr]), np.float32((y[itr] - ym) / ys), f(X[ite]), np.float32((y[ite] - ym) / ys), ite, float(ym), float(ys)


def _train(cfg, act, xtr, ytr, key):
    H, L = cfg["hidden"], cfg["n_hidden_layers"]
    sizes = [xtr.shape[1]] + [H] * L + [1]
    k_init, k_train = jax.random.split(key)
    layers = init_mlp(k_init, sizes)
    opt = optax.adam(optax.cosine_decay_schedule(cfg["lr"], cfg["train_steps"], alpha=0.05))
    xtr, ytr = jnp.asarray(xtr), jnp.asarray(ytr)
    n, B, p = xtr.shape[0], cfg["batch_size"], cfg["dropout"]

    def loss(layers, xb, yb, k):
        ks = jax.random.split(k, L)
        masks = tuple(dropout_mask(kk, (xb.shape[0], H), p) for kk in ks)
        return jnp.mean((mlp_apply(layers, xb, act, masks)[:, 0] - yb) ** 2)

    @jax.jit
    def train(layers, key):
        st = opt.init(layers)

        def body(c, k):
            layers, st = c
            kb, kd = jax.random.split(k)
            idx = jax.random.choice(kb, n, (B,), replace=False)
            val, g = jax.value_and_grad(loss)(layers, xtr[idx], ytr[idx], kd)
            with jax.numpy_dtype_promotion("standard"):
                u, st = opt.update(g, st, layers)
                layers = optax.apply_updates(layers, u)
            return (layers, st), val

        (layers, _), losses = jax.lax.scan(body, (layers, st), jax.random.split(key, cfg["train_steps"]))
        return layers, losses

    return train(layers, k_train)


def _best(f, repeats):
    f()  # compile / warm up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def _speed(cfg, act, layers, xte, key):
    """One compiled call for n_speed samples vs a Python loop with one call per sample."""
    H, L, p, n, rep = cfg["hidden"], cfg["n_hidden_layers"], cfg["dropout"], cfg["n_speed"], cfg["speed_repeats"]
    sizes = (H,) * L
    net = RateNet(act)
    keys = list(jax.random.split(key, n))

    @jax.jit
    def one(layers, x, k):
        ks = jax.random.split(k, L)
        return mlp_apply(layers, x, act, tuple(dropout_mask(kk, (H,), p) for kk in ks))

    def one_eager(layers, x, k):  # the same model, op by op (no jit)
        ks = jax.random.split(k, L)
        return mlp_apply(layers, x, act, tuple(dropout_mask(kk, (H,), p) for kk in ks))

    def timings(x):
        def single(bs=None):
            return lambda: permanent_dropout_samples(
                net, layers, x, key, sizes=sizes, rate=p, n_samples=n, batch_size=bs
            ).block_until_ready()

        def loop_collect():  # like CANDLE infer.py: predict, then collect each sample to numpy
            return np.stack([np.asarray(one(layers, x, k)) for k in keys])

        def loop_async():  # same calls, dispatched asynchronously, one sync at the end
            return jnp.stack([one(layers, x, k) for k in keys]).block_until_ready()

        t = {
            "vmapped_s": _best(single(), rep),
            "vmapped_chunks64_s": _best(single(64), rep),
            "loop_s": _best(loop_collect, rep),
            "loop_async_s": _best(loop_async, rep),
        }
        t0 = time.perf_counter()
        np.stack([np.asarray(one_eager(layers, x, k)) for k in keys[: max(n // 10, 2)]])
        t["loop_eager_s_extrapolated"] = (time.perf_counter() - t0) * n / max(n // 10, 2)
        t["speedup"] = t["loop_s"] / t["vmapped_s"]
        t["speedup_vs_async_loop"] = t["loop_async_s"] / t["vmapped_s"]
        t["speedup_vs_eager_loop"] = t["loop_eager_s_extrapolated"] / t["vmapped_s"]
        t["speedup_chunked"] = t["loop_s"] / t["vmapped_chunks64_s"]
        return t

    whole = timings(jnp.asarray(xte))
    single_obs = timings(jnp.asarray(xte[:1]))
    return {
        "n_samples": n,
        "n_observations": int(len(xte)),
        **whole,
        "single_observation": single_obs,
        "note": f"compiled, min over repeats, on {_where()}. loop = one jitted call per sample, "
        "predictions collected to numpy (as CANDLE infer.py); async loop = same calls, one sync at the end; eager = "
        "un-jitted op-by-op loop (timed on n/10 samples, extrapolated); chunks64 = lax.map over vmapped chunks of 64",
    }


def _where() -> str:
    """The machine the speed section ran on, for its note."""
    if jax.default_backend() == "cpu":
        return f"a {os.cpu_count()}-core CPU (shared, so the wall clock is noisy)"
    return f"{jax.default_backend().upper()} {jax.devices()[0].device_kind}"


def result_tag(cfg):
    """The default sigma writes softlif_dropout_diabetes.json; other sigmas a tagged variant."""
    return "" if cfg["sigma"] == CONFIG["sigma"] else f"sigma{cfg['sigma']:g}"


def run(cfg, ctx):
    t_start = time.time()
    key = jax.random.PRNGKey(cfg["seed"])
    k_train, k_dnn, k_snn, k_dnn2, k_wrong, k_tsv, k_speed = jax.random.split(key, 7)
    xtr, ytr, xte, yte, ite, ym, ys = _data(cfg)
    act = SoftLIF(sigma=cfg["sigma"], tau_rc=cfg["tau_rc"], tau_ref=cfg["tau_ref"], amplitude=cfg["amplitude"])
    hard = act.hard()
    t0 = time.time()
    layers, losses = _train(cfg, act, xtr, ytr, k_train)
    train_s = time.time() - t0
    ctx.log(f"trained in {train_s:.1f}s, final loss {float(losses[-50:].mean()):.3f}")
    H, L, p, K, N = cfg["hidden"], cfg["n_hidden_layers"], cfg["dropout"], cfg["K"], cfg["N"]
    sizes = (H,) * L
    if K > len(xte):
        raise ValueError(f"K={K} exceeds the {len(xte)} test observations")
    x = jnp.asarray(xte[:K])

    def mse(a):
        pred = np.asarray(mlp_apply(layers, jnp.asarray(xte), a))[:, 0]
        return float(np.mean((pred - yte) ** 2))

    # -- permanent-dropout samples: DNN (hard LIF rates and SoftLIF) and SNN, independent masks --
    pdk = dict(sizes=sizes, rate=p, n_samples=N, per_observation=True)
    dnn = np.asarray(permanent_dropout_samples(RateNet(hard), layers, x, k_dnn, **pdk))[..., 0]
    dnn_soft = np.asarray(permanent_dropout_samples(RateNet(act), layers, x, k_dnn, **pdk))[..., 0]
    dnn2 = np.asarray(permanent_dropout_samples(RateNet(hard), layers, x, k_dnn2, **pdk))[..., 0]
    snn = convert(layers, act, synapse=(cfg["synapse"], cfg["tau_syn"]) if cfg["synapse"] != "none" else None, dt=cfg["dt"])
    apply_snn = snn.apply_fn(cfg["presentation_time"], cfg["settle_time"])
    t0 = time.time()
    spk = np.asarray(permanent_dropout_samples(apply_snn, layers, x, k_snn, **pdk))[..., 0]
    snn_s = time.time() - t0
    ctx.log(f"SNN: {N}x{K} networks x {cfg['presentation_time']}s in {snn_s:.1f}s")
    # paired diagnostic: the rate network on the SNN's own masks
    keys = jax.random.split(k_snn, N)

    def masks_of(k):
        ks = jax.random.split(k, L)
        return tuple(dropout_mask(kk, (K, n), p, x.dtype) for kk, n in zip(ks, sizes))

    paired = np.asarray(jax.vmap(lambda k: mlp_apply(layers, x, hard, masks_of(k)))(keys))[..., 0]
    err = spk - paired
    t0 = time.time()
    wrong = snn.scaled(cfg["wrong_scale"])
    spk_wrong = np.asarray(
        permanent_dropout_samples(wrong.apply_fn(cfg["presentation_time"], cfg["settle_time"]), wrong.layers, x, k_wrong, **pdk)
    )[..., 0]
    wrong_s = time.time() - t0

    kw = dict(n_null=cfg["n_null"], seed=cfg["seed"])
    agree = ks_agreement(dnn, spk, **kw)
    agree_soft = ks_agreement(dnn_soft, spk, **kw)
    ctrl = ks_agreement(dnn, dnn2, **kw)
    # the rate network on the SNN's own masks vs the DNN: what the SNN comparison would give with
    # zero conversion error (separates the SNN's error from the luck of the mask draws)
    ctrl_paired = ks_agreement(dnn, paired, **kw)
    neg = ks_agreement(dnn, spk_wrong, **kw)
    for name, r in [("SNN vs DNN(LIF)", agree), ("SNN vs DNN(SoftLIF)", agree_soft), ("DNN vs DNN", ctrl),
                    ("DNN vs DNN on the SNN's masks", ctrl_paired), ("wrong SNN", neg)]:
        ctx.log(f"{name}: uniformity p={r.uniformity_pvalue:.3g}, D_max={r.max_statistic:.3f} "
                f"(null 95% {r.max_null_quantiles['95']:.3f}, p_sim={r.max_pvalue_sim:.3g})")

    # -- summary tables (original target units) -----------------------------------------------
    M = cfg["tsv_samples"]
    tsv_dnn = np.asarray(permanent_dropout_samples(RateNet(act), layers, jnp.asarray(xte), k_tsv, sizes=sizes, rate=p, n_samples=M))
    ids = [f"diabetes.{i}" for i in ite]
    write_summary_tsv(ctx.aux_path("summary.tsv"), tsv_dnn[..., 0] * ys + ym, ids)
    write_summary_tsv(ctx.aux_path("summary_snn.tsv"), spk * ys + ym, ids[:K])

    speed = _speed(cfg, act, layers, xte, k_speed)
    ctx.log(f"speed: vmapped {speed['vmapped_s']*1e3:.1f} ms, loop {speed['loop_s']*1e3:.1f} ms -> {speed['speedup']:.1f}x; "
            f"one observation: {speed['single_observation']['speedup']:.1f}x")

    ctx.save_npz(
        "ks.npz",
        pvalues=agree.pvalues, statistics=agree.statistics,
        pvalues_softlif=agree_soft.pvalues, statistics_softlif=agree_soft.statistics,
        pvalues_control=ctrl.pvalues, statistics_control=ctrl.statistics,
        pvalues_wrong=neg.pvalues, statistics_wrong=neg.statistics,
        max_null=agree.max_null, dnn=dnn, snn=spk, snn_wrong=spk_wrong,
    )
    q95 = agree.max_null_quantiles["95"]
    return {
        "data": "scikit-learn diabetes (442 x 10), standardised; NOT the seed's CANDLE Combo",
        "n_train": int(len(xtr)),
        "n_test": int(len(xte)),
        "train_s": train_s,
        "final_train_loss": float(np.mean(np.asarray(losses)[-50:])),
        "test_mse_softlif": mse(act),
        "test_mse_lif_rate": mse(hard),
        "test_mse_mean_predictor": float(np.mean(yte**2)),
        "dropout_std_mean": float(dnn.std(0).mean()),
        "softlif_vs_lif_dnn_rms": float(np.sqrt(np.mean((dnn_soft - dnn) ** 2))),
        "snn_paired_error": {
            "bias": float(err.mean()),
            "rms": float(np.sqrt(np.mean(err**2))),
            "rms_over_dropout_std": float(np.sqrt(np.mean(err**2)) / dnn.std(0).mean()),
            "note": "SNN minus the LIF-rate DNN evaluated on the same dropout masks",
        },
        "snn_time_s": snn_s,
        "snn_wrong_time_s": wrong_s,
        "presentation_time_s": cfg["presentation_time"],
        "agreement": agree.as_dict(),
        "agreement_vs_softlif_dnn": agree_soft.as_dict(),
        "control_dnn_vs_dnn": ctrl.as_dict(),
        "control_dnn_vs_dnn_on_snn_masks": ctrl_paired.as_dict(),
        "negative_control": {**neg.as_dict(), "weight_scale": cfg["wrong_scale"]},
        "max_ks_summary": f"D_max={agree.max_statistic:.3f} vs null q95={q95:.3f} (p_sim={agree.max_pvalue_sim:.2f}); "
        f"wrong SNN D_max={neg.max_statistic:.3f}",
        "detected_negative_control": bool(neg.uniformity_pvalue < 1e-3 and neg.max_statistic > neg.max_null_quantiles["99"]),
        "speed": speed,
        "total_s": time.time() - t_start,
    }
