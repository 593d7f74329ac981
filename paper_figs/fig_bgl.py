"""Node-failure prediction on Blue Gene/L: train / validation / test accuracy of the six models
(ours on LLNL's BGL logs, the seed's on RPI's) with the majority-class baseline, and the Design
Index (I_a, I_o) of our models."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._style import PALETTE, results, save

NAME = "bgl_node_failure"
_SHORT = {"linreg": "LinReg", "knn3": "k-NN k=3", "knn_sqrt": "k-NN k=√n", "svm": "SVM", "dnn": "DNN", "snn": "SNN"}
_PARTS = ("train", "val", "test")


VARIANTS = (NAME, NAME + "-midplane-24h")  # the default (node card x 1 day) and the midplane variant


def _row(ax, axd, m):
    models = list(_SHORT)
    x = np.arange(len(models))
    wd = 0.13
    for j, part in enumerate(_PARTS):
        ours = [m["models"][k]["acc_pct"][part] for k in models]
        seed = [m["models"][k]["seed_acc_pct"][part] for k in models]
        ax.bar(x + (j - 2.5) * wd, ours, wd, color=PALETTE[j], label=f"ours (LLNL BGL), {part}")
        ax.bar(x + (j + 0.5) * wd, seed, wd, color=PALETTE[j], alpha=0.35, hatch="//", edgecolor=PALETTE[j], lw=0, label=f"seed (RPI BG/L), {part}")
    for j, part in enumerate(_PARTS):
        ax.axhline(m["majority_acc_pct"][part], color=PALETTE[j], lw=0.8, ls=":")
    ax.plot([], [], color="k", lw=0.8, ls=":", label="majority class ('no alert'), per part")
    lo = min(min(m["models"][k]["acc_pct"][p] for k in models for p in _PARTS), min(m["models"][k]["seed_acc_pct"][p] for k in models for p in _PARTS))
    ax.set_ylim(max(0, lo - 2), 100.5)
    ax.set_xticks(x)
    ax.set_xticklabels([_SHORT[k] for k in models], fontsize=7)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"next-window alert, LLNL BGL\n{m['split_summary']}", fontsize=7.5)
    groups: dict = {}  # models on the same point share one label
    for i, k in enumerate(models):
        d = m["models"][k]["design_index"]
        axd.scatter(d["I_o"], d["I_a"], color=PALETTE[i % len(PALETTE)], s=18)
        groups.setdefault((round(d["I_o"], 3), round(d["I_a"], 3)), []).append(_SHORT[k])
    for (io, ia), names in groups.items():
        axd.annotate(", ".join(names), (io, ia), xytext=(3, 3), textcoords="offset points", fontsize=6)
    axd.axhline(0, color="k", lw=0.6)
    axd.axvline(0, color="k", lw=0.6)
    axd.set_xlabel("overfitting index I_o = log10(e_v / e_t)")
    axd.set_ylabel("accuracy index I_a = log10(e_p / e_t)")
    axd.set_title(f"Design Index\n(e_p = majority-class train error {100 * m['design_e_p']:.2f}%)", fontsize=7.5)


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    ms = [results(NAME, results_dir)["metrics"]]
    try:
        ms.append(results(VARIANTS[1], results_dir)["metrics"])
    except FileNotFoundError:
        pass
    fig, axes = plt.subplots(len(ms), 2, figsize=(9.0, 3.3 * len(ms) + 0.6), gridspec_kw={"width_ratios": [2.3, 1]}, squeeze=False)
    for (ax, axd), m in zip(axes, ms):
        _row(ax, axd, m)
    axes[-1, 0].legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return save(fig, out_dir, "fig_bgl")
