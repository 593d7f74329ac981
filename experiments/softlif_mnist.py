"""SoftLIF MLP on MNIST converted to a spiking LIF network: accuracy vs presentation time.

A 784-H-H-10 MLP with the SoftLIF activation (Hunsberger & Eliasmith 2015; papers.md 4.1) is
trained with Adam (cross-entropy, light dropout), then converted: every hidden unit becomes a
spikejax ``LIF`` (``tau_mem = tau_rc``, ``v_th = 1``, ``t_ref = tau_ref``, current input), spikes
of area ``amplitude`` pass alpha synapses (the seed's ``Alpha(0.005)``), pixels are injected as
constant currents.  Each test image is presented for up to ``max(presentation_times)``; the class
is the argmax of the filtered output averaged from the start of the presentation, so one run
gives the whole accuracy-vs-presentation-time curve (the network is causal and deterministic:
a shorter presentation is a prefix of a longer one).  A rate-coded-input variant is run on the
first ``rate_input_n`` test images.  The LIF rate check (analytic ``r(J)`` vs simulated
spikejax LIF neurons) is stored for the figure.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spikejax.data import load_dataset
from spikejax.nn import init_mlp
from spikejax.softlif import SoftLIF, convert, lif_rate, lif_rate_discrete, measure_lif_rates, mlp_apply, softlif_rate
from spikejax.training import fit_classifier
from spikejax.uncertainty import dropout_mask

CONFIG = dict(
    hidden=256,
    n_hidden_layers=2,
    sigma=0.02,
    amplitude=0.01,
    tau_rc=0.02,
    tau_ref=0.002,
    dropout=0.1,
    epochs=8,
    batch_size=100,
    lr=1e-3,
    seed=0,
    n_train=0,  # 0 = all
    n_test=0,
    dt=5e-4,
    synapse="alpha",
    tau_syn=0.005,
    presentation_times=[0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3],
    chunk=2000,
    rate_input_n=1000,
    rate_input_max_rate=1000.0,
    rate_input_time=0.2,
)

QUICK = dict(hidden=128, epochs=3, lr=3e-3, n_train=6000, n_test=1000, presentation_times=[0.01, 0.02, 0.03, 0.05, 0.1],
             rate_input_n=200, rate_input_time=0.1, chunk=1000)

CLAIMS = [
    {
        "claim": "SoftLIF 784-256-256-10 MLP, MNIST test accuracy (rate network)",
        "published": "n/a (H&E 2015 MNIST number not retrieved)",
        "metric": "acc_softlif_pct",
        "fmt": ".2f",
    },
    {
        "claim": "... converted spiking LIF network at the longest presentation time (issue target: within 1 point)",
        "published": "within 1 point (target)",
        "metric": "acc_snn_final_pct",
        "fmt": ".2f",
    },
    {
        "claim": "... shortest presentation time [s] from which the spiking accuracy stays within 1 point",
        "published": "0.15 s used by Hunsberger's script",
        "metric": "presentation_time_needed_s",
    },
]


def _data(cfg, split):
    x, y = load_dataset("mnist", split, as_float=True)
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    y = np.asarray(y, np.int32)
    n = cfg["n_train"] if split == "train" else cfg["n_test"]
    return (x[:n], y[:n]) if n else (x, y)


def rate_check(act, dts=(1e-3, 5e-4, 1e-4), duration=2.0):
    """Analytic LIF/SoftLIF rates vs spikejax LIF neurons under constant drive (Hz)."""
    j = np.round(np.concatenate([np.linspace(0.5, 1.0, 6)[:-1], np.linspace(1.0, 1.2, 9), np.linspace(1.25, 6.0, 20)]), 6)
    one = dict(tau_rc=act.tau_rc, tau_ref=act.tau_ref, amplitude=1.0)
    out = {
        "j": j,
        "lif_rate": np.asarray(lif_rate(jnp.asarray(j, jnp.float32), **one)),
        "softlif_rate": np.asarray(softlif_rate(jnp.asarray(j, jnp.float32), sigma=act.sigma, **one)),
    }
    for dt in dts:
        m = measure_lif_rates(jnp.asarray(j, jnp.float32), act, dt=dt, duration=duration)
        out[f"measured_dt{dt:g}"] = m
        out[f"discrete_dt{dt:g}"] = lif_rate_discrete(j, dt, act.tau_rc, act.tau_ref)
        a = out["lif_rate"]
        on = a > 0
        out[f"max_rel_err_dt{dt:g}"] = float(np.max(np.abs(m[on] - a[on]) / a[on]))
        out[f"max_rel_err_over_rdt_dt{dt:g}"] = float(np.max(np.abs(m[on] - a[on]) / a[on] / (a[on] * dt)))
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in out.items()}


def run(cfg, ctx):
    xtr, ytr = _data(cfg, "train")
    xte, yte = _data(cfg, "test")
    key = jax.random.PRNGKey(cfg["seed"])
    k_init, k_train, k_rate = jax.random.split(key, 3)
    H, L, p = cfg["hidden"], cfg["n_hidden_layers"], cfg["dropout"]
    act = SoftLIF(sigma=cfg["sigma"], tau_rc=cfg["tau_rc"], tau_ref=cfg["tau_ref"], amplitude=cfg["amplitude"])
    layers = init_mlp(k_init, [xtr.shape[1]] + [H] * L + [10])

    def predict(params, x, k):
        return mlp_apply(params, x, act)

    def loss_fn(params, x, y, k):
        masks = tuple(dropout_mask(kk, (x.shape[0], H), p) for kk in jax.random.split(k, L)) if p > 0 else None
        return optax.softmax_cross_entropy_with_integer_labels(mlp_apply(params, x, act, masks), y).mean()

    steps = len(xtr) // cfg["batch_size"]
    t0 = time.time()
    layers, hist = fit_classifier(
        loss_fn, predict, layers, optax.adam(optax.cosine_decay_schedule(cfg["lr"], cfg["epochs"] * steps)),
        (xtr, ytr), (xte, yte), epochs=cfg["epochs"], batch_size=cfg["batch_size"], key=k_train, ctx=ctx,
    )
    train_s = time.time() - t0
    layers = tuple(layers)
    xte_j = jnp.asarray(xte)

    def acc(a):
        return float(np.mean(np.argmax(np.asarray(mlp_apply(layers, xte_j, a)), -1) == yte))

    acc_soft, acc_lif = acc(act), acc(act.hard())
    ctx.log(f"trained in {train_s:.0f}s: SoftLIF {acc_soft:.4f}, LIF-rate {acc_lif:.4f}")

    # -- spiking network, current input: one run of the longest presentation ------------------
    snn = convert(layers, act, synapse=(cfg["synapse"], cfg["tau_syn"]) if cfg["synapse"] != "none" else None, dt=cfg["dt"])
    pts = sorted(float(t) for t in cfg["presentation_times"])
    T = max(pts)
    n_at = [snn.config.steps(t) for t in pts]
    t0 = time.time()
    correct = np.zeros(len(pts))
    rates_hidden = []
    for c in range(0, len(xte), cfg["chunk"]):
        _, trace = snn(xte_j[c : c + cfg["chunk"]], T, record=True)
        cs = np.cumsum(np.asarray(trace, np.float64), axis=0)
        for i, n in enumerate(n_at):
            correct[i] += np.sum(np.argmax(cs[n - 1], -1) == yte[c : c + cfg["chunk"]])
        ctx.progress(min(c + cfg["chunk"], len(xte)), len(xte), snn_acc_at_T=correct[-1] / min(c + cfg["chunk"], len(xte)))
    snn_s = time.time() - t0
    acc_T = correct / len(xte)
    within = np.abs(acc_T - acc_soft) <= 0.01
    ok_from = [t for i, t in enumerate(pts) if np.all(acc_T[i:] >= acc_soft - 0.01)]
    needed = ok_from[0] if ok_from else None
    ctx.log(f"SNN ({len(xte)} images x {T}s) in {snn_s:.0f}s: " + ", ".join(f"{t*1e3:g}ms {a:.4f}" for t, a in zip(pts, acc_T)))

    # hidden-layer rates for one chunk of the test set (mean/max), from the rate model
    h1 = np.asarray(act.hard()(xte_j[:1000] @ layers[0].w + layers[0].b[None, :])) / act.amplitude
    rates_hidden = {"mean_hz": float(h1.mean()), "max_hz": float(h1.max()), "frac_active": float((h1 > 0).mean())}

    # -- rate-coded input variant ---------------------------------------------------------------
    rate_res = None
    if cfg["rate_input_n"]:
        n = min(cfg["rate_input_n"], len(xte))
        snn_r = convert(layers, act, synapse=(cfg["synapse"], cfg["tau_syn"]) if cfg["synapse"] != "none" else None,
                        dt=cfg["dt"], input_mode="rate", max_rate=cfg["rate_input_max_rate"])
        t0 = time.time()
        out = np.asarray(snn_r(xte_j[:n], cfg["rate_input_time"], key=k_rate))
        rate_res = {
            "n_test": n,
            "presentation_time_s": cfg["rate_input_time"],
            "max_rate_hz": cfg["rate_input_max_rate"],
            "acc_snn": float(np.mean(np.argmax(out, -1) == yte[:n])),
            "acc_softlif_same_images": float(np.mean(np.argmax(np.asarray(mlp_apply(layers, xte_j[:n], act)), -1) == yte[:n])),
            "time_s": time.time() - t0,
        }
        ctx.log(f"rate-coded input: {rate_res['acc_snn']:.4f} on {n} images")

    rc = rate_check(act)
    return {
        "n_train": int(len(xtr)),
        "n_test": int(len(xte)),
        "train_s": train_s,
        "history": hist,
        "acc_softlif": acc_soft,
        "acc_softlif_pct": 100 * acc_soft,
        "acc_lif_rate": acc_lif,
        "presentation_times_s": pts,
        "acc_snn": acc_T.tolist(),
        "acc_snn_final_pct": 100 * float(acc_T[-1]),
        "gap_final_points": 100 * float(acc_soft - acc_T[-1]),
        "within_1_point": within.tolist(),
        "presentation_time_needed_s": needed,
        "snn_time_s": snn_s,
        "dt": cfg["dt"],
        "hidden_rates": rates_hidden,
        "rate_input": rate_res,
        "rate_check": rc,
    }
