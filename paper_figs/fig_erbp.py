"""eRBP on PI-MNIST: test error vs epoch for eRBP / peRBP / RBP / BP, a hidden-layer raster of one
test digit, and accuracy vs SynOps (decision after n steps, and at the first output spike)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np

from ._style import PALETTE, RESULTS_DIR, results, save

NAME = "erbp_pimnist"
ARCH = "784-100-10"
METHODS = (("erbp", "eRBP"), ("perbp", "peRBP"), ("rbp", "RBP (non-spiking)"), ("bp", "BP (non-spiking)"))


def make(out_dir: Path, results_dir: Path | None = None, arch: str = ARCH) -> list[Path]:
    runs = {}
    for m, _ in METHODS:
        try:
            runs[m] = results(f"{NAME}-{arch}-{m}", results_dir)
        except FileNotFoundError:
            pass
    if "erbp" not in runs:
        raise FileNotFoundError(
            f"{Path(results_dir or RESULTS_DIR) / f'{NAME}-{arch}-erbp.json'} not found: run "
            f"`python -m experiments {NAME} --set arch={arch} --set method=erbp` first"
        )

    fig = plt.figure(figsize=(11, 3.6))
    gs = fig.add_gridspec(2, 4, width_ratios=[1.15, 1.3, 0.22, 1.15], height_ratios=[3, 1], wspace=0.35)

    # (a) learning curves
    ax = fig.add_subplot(gs[:, 0])
    for (m, label), color in zip(METHODS, PALETTE):
        if m not in runs:
            continue
        h = runs[m]["metrics"]["history"]
        ax.plot(h["epoch"], h["test_err_pct"], "o-", ms=3, color=color, label=f"{label}: {h['test_err_pct'][-1]:.2f}%")
        pub = runs[m]["metrics"].get("published_test_err_pct")
        if pub is not None:
            ax.axhline(pub, color=color, ls=":", lw=0.9)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.FixedLocator([0.5, 1, 2, 3, 5, 10, 20, 30, 50, 100]))
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)  [dotted: published]")
    ax.set_title(f"PI-MNIST {arch}, full test set")
    ax.legend(loc="upper right")

    # (b) raster of one test digit through the trained eRBP network
    ras_path = Path(results_dir or RESULTS_DIR) / f"{NAME}-{arch}-erbp.raster.npz"
    if ras_path.exists():
        ras = np.load(ras_path)
        dt_ms = float(ras["dt"]) * 1e3
        a = fig.add_subplot(gs[0, 1])
        t, n = np.nonzero(ras["hidden1"])
        a.scatter(t * dt_ms, n, s=1.0, marker="|", color="k")
        a.set_ylabel(f"hidden ({ras['hidden1'].shape[1]})")
        a.set_title(f"eRBP raster, test digit (label {int(ras['label'])})")
        a.tick_params(labelbottom=False)
        T = ras["hidden1"].shape[0]
        a.set_xlim(0, T * dt_ms)
        b = fig.add_subplot(gs[1, 1], sharex=a)
        t, n = np.nonzero(ras["output"])
        colors = ["#c0504d" if k == int(ras["label"]) else "#7f7f7f" for k in n]
        b.scatter(t * dt_ms, n, s=4.0, marker="|", c=colors)
        b.set_ylim(-0.5, ras["output"].shape[1] - 0.5)
        b.set_ylabel("output")
        b.set_xlabel("time (ms)")
        ins = fig.add_subplot(gs[0, 2])
        side = int(round(np.sqrt(ras["image"].size)))
        ins.imshow(ras["image"].reshape(side, side), cmap="gray_r")
        ins.set_title("input", fontsize=7)
        ins.axis("off")

    # (c) accuracy vs SynOps
    ax = fig.add_subplot(gs[:, 3])
    for (m, label), color in zip(METHODS[:2], PALETTE):
        if m not in runs:
            continue
        s = runs[m]["metrics"]["synops"]
        a_ = s["after_steps"]
        ax.plot(np.asarray(a_["mean_synops"]) / 1e3, 100 * np.asarray(a_["accuracy"]), "o-", ms=2.5, color=color, label=f"{label}, after n steps")
        f = s["first_spike"]
        ax.plot([f["mean_synops"] / 1e3], [100 * f["accuracy"]], "*", ms=10, color=color, label=f"{label}, first output spike")
        e5 = s["error_below_5pct"]
        if e5["reached"]:
            ax.plot([e5["mean_synops"] / 1e3], [100 * e5["accuracy"]], "D", ms=6, mfc="none", color=color,
                    label=f"{label}, first n with < 5% error (n = {e5['steps']})")
    ax.plot([100.0], [95.0], "kx", ms=8, label="seed: ~100k SynOps at < 5% error")
    ax.set_xscale("log")
    pj = float(runs["erbp"]["metrics"]["synops"]["pj_per_synop"])
    ax.set_xlabel(f"SynOps per classification (x1000); 1k SynOps = {pj * 1e-3:g} uJ at {pj:g} pJ")
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs SynOps (inference)")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=6.5)  # outside: the points span the whole axes
    fig.suptitle("Event-driven random back-propagation (eRBP) on PI-MNIST", y=1.02)
    paths = save(fig, out_dir, "fig_erbp")
    paths += _rows_figure(out_dir, results_dir)
    return paths


ARCHS = ("784-100-10", "784-200-10", "784-500-10", "784-200-200-10", "784-500-500-10")


def _rows_figure(out_dir: Path, results_dir: Path | None) -> list[Path]:
    """Every row of the seed's table that has results: spikejax test error (bars, epochs run in the
    label) next to the published number (black ticks), one group per architecture."""
    rows = {}
    for a in ARCHS:
        for m, _ in METHODS:
            try:
                rows[(a, m)] = results(f"{NAME}-{a}-{m}", results_dir)["metrics"]
            except FileNotFoundError:
                pass
    if len(rows) <= 4:
        return []
    fig, ax = plt.subplots(figsize=(10, 3.4))
    width = 0.2
    labelled = set()
    for j, ((m, label), color) in enumerate(zip(METHODS, PALETTE)):
        for i, a in enumerate(ARCHS):
            x = i + (j - 1.5) * width
            r = rows.get((a, m))
            pub = PUBLISHED_ROWS.get(a, {}).get(m)
            if r is not None:
                ax.bar(x, r["test_err_pct"], width * 0.9, color=color, label=None if m in labelled else label)
                labelled.add(m)
                top = max(r["test_err_pct"], pub or 0.0)  # label above the bar and the published mark
                ax.text(x, top * 1.03, f"{r['test_err_pct']:.2f}\n{len(r['history']['test_err_pct'])}ep", ha="center", va="bottom", fontsize=5.5)
            if pub is not None:
                ax.plot([x - width * 0.45, x + width * 0.45], [pub, pub], "k-", lw=1.6)
    ax.plot([], [], "k-", lw=1.6, label="published (seed slide 23)")
    ax.set_xticks(range(len(ARCHS)))
    ax.set_xticklabels(ARCHS)
    ax.set_ylabel("test error (%), full MNIST test set")
    ax.set_title("PI-MNIST: spikejax (bars; number of epochs run below each value) vs published (black)")
    ax.legend(fontsize=7, ncol=5, loc="upper right")
    ax.set_ylim(0, max(r["test_err_pct"] for r in rows.values()) * 1.3)
    return save(fig, out_dir, "fig_erbp_rows")


PUBLISHED_ROWS = {
    "784-100-10": {"erbp": 3.94, "perbp": 3.02, "rbp": 2.74, "bp": 2.19},
    "784-200-10": {"erbp": 3.53, "perbp": 2.69, "rbp": 2.15, "bp": 1.81},
    "784-500-10": {"erbp": 2.76, "perbp": 2.40, "rbp": 2.08, "bp": 1.8},
    "784-200-200-10": {"erbp": 3.48, "perbp": 2.29, "rbp": 2.42, "bp": 1.91},
    "784-500-500-10": {"erbp": None, "perbp": 2.02, "rbp": 2.20, "bp": 1.90},
}
