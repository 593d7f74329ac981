"""Whetstone on MNIST: accuracy as the network sharpens, the sharpening schedule, and one
activation's shape as it sharpens into a step."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._style import results, save

NAME = "whetstone_mnist"


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    res = results(NAME, results_dir)
    m = res["metrics"]
    h = m["history"]
    sharp = np.asarray(h["sharpness"], dtype=float)  # [epochs, layers]
    mean_s = sharp.mean(axis=1)
    acc = 100 * np.asarray(h["test_acc"], dtype=float)
    acc_sharp = 100 * np.asarray(h["test_acc_sharp"], dtype=float)
    epochs = np.asarray(h["epoch"])

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3), gridspec_kw={"width_ratios": [1.25, 1.0, 1.0]})

    ax = axes[0]
    ax.plot(mean_s, acc, "o-", ms=3, label="at current sharpness")
    ax.plot(mean_s, acc_sharp, "s--", ms=3, label="all layers sharp (spiking)")
    ax.axhline(m["original_acc_pct"], color="#7f7f7f", lw=0.8, ls=":", label=f"original (s = 0): {m['original_acc_pct']:.2f}%")
    ax.axhline(m["spiking_acc_pct"], color="#c0504d", lw=0.8, ls=":", label=f"exported LIF net: {m['spiking_acc_pct']:.2f}%")
    lo = min(np.nanmin(acc[mean_s > 0]) if np.any(mean_s > 0) else np.nanmin(acc), m["spiking_acc_pct"]) - 1.0
    ax.set_ylim(max(lo, np.nanmin(acc_sharp) - 0.5, 80.0), max(np.nanmax(acc), m["original_acc_pct"]) + 0.4)
    ax.set_xlabel("mean layer sharpness")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlim(-0.03, 1.03)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(f"{m['net']} on {res['config']['dataset']} ({res['config']['input']})")

    ax = axes[1]
    final = np.asarray(m["final_sharpness"], dtype=float)[None]
    ep = np.concatenate([epochs, epochs[-1:] + 1])  # one extra step: the sharpness after the last epoch
    for i in range(sharp.shape[1]):
        ax.step(ep, np.concatenate([sharp[:, i], final[:, i]]), where="post", label=f"layer {i + 1}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("sharpness during the epoch")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(f"{res['config']['sharpener']} sharpener, {m['epochs_run']} epochs, {m['train_time_s']:.0f} s")

    ax = axes[2]
    tr = m["activation_trace"]
    x = np.asarray(tr["x"])
    cmap = plt.get_cmap("viridis")
    for s, y in zip(tr["sharpness"], tr["y"]):
        if s >= 1.0:
            ax.plot(x, y, color="k", lw=1.8, label="s = 1 (step)")
        else:
            ax.plot(x, y, color=cmap(s), lw=0.9)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=ax, label="sharpness s", fraction=0.05, pad=0.02)
    ax.axvline(tr["threshold"], color="#7f7f7f", lw=0.6, ls=":")
    ax.set_xlabel("input x")
    ax.set_ylabel("activation")
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(f"layer-1 {tr['activation']} as it sharpens")
    fig.tight_layout()
    return save(fig, out_dir, "fig_whetstone")
