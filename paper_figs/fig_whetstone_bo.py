"""Whetstone hyperparameter search: best-so-far accuracy vs number of evaluations for Bayesian
optimisation (TPE, trained), TPE and random search restricted to the 256-point grid (lookups), the
full grid and the default configuration; MNIST and (when its results file exists) Fashion-MNIST."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._style import PALETTE, RESULTS_DIR, results, save

NAME = "whetstone_bo"
SETS = (("whetstone_bo", "MNIST"), ("whetstone_bo-fashion_mnist", "Fashion-MNIST"))


def _load(results_dir):
    out = [(SETS[0][1], results(NAME, results_dir))]  # MNIST required (raises with the command)
    for stem, label in SETS[1:]:
        p = Path(results_dir or RESULTS_DIR) / f"{stem}.json"
        if p.exists():
            out.append((label, json.loads(p.read_text())))
    return out


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    sets = _load(results_dir)
    fig, axes = plt.subplots(2, len(sets), figsize=(5.2 * len(sets), 6.4), squeeze=False)
    for col, (label, res) in enumerate(sets):
        m = res["metrics"]
        bo, tab = m["bo"], m["tabular"]
        reports = sorted(int(k) for k in bo if k.isdigit())
        for row, (key, what) in enumerate((("val_pct", "validation"), ("test_pct", "test"))):
            ax = axes[row, col]
            tkey = "best_so_far_val_pct_mean" if row == 0 else "best_so_far_test_pct_mean"
            rnd = np.asarray(tab["random"][tkey])
            ax.plot(np.arange(1, len(rnd) + 1), rnd, color=PALETTE[6], lw=1.2,
                    label=f"random search over the grid (mean of {tab['random']['n_orders']} orders)")
            tp = np.asarray(tab["tpe"][tkey])
            ax.plot(np.arange(1, len(tp) + 1), tp, color=PALETTE[3], lw=1.4, ls="--",
                    label=f"TPE over the grid points (mean of {tab['tpe']['n_studies']})")
            curves = np.asarray([c[key] for c in bo["curves"]])
            x = np.arange(1, curves.shape[1] + 1)
            for c in curves:
                ax.plot(x, c, color=PALETTE[0], lw=0.6, alpha=0.45)
            ax.plot(x, curves.mean(0), color=PALETTE[0], lw=2.0, label=f"BO, TPE trained (mean of {len(curves)} studies; thin: each)")
            g = m["grid"]
            gy = g["val_acc_pct"] if row == 0 else g["test_acc_pct"]
            ax.axhline(gy, color=PALETTE[2], lw=1.0, ls=":")
            ax.plot([g["n"]], [gy], marker="s", color=PALETTE[2], ms=6, label=f"full grid ({g['n']} points), val-selected")
            d = m["default"]
            dy = d["val_acc_pct"] if row == 0 else d["test_acc_pct"]
            ax.axhline(dy, color=PALETTE[1], lw=1.0, ls="-.", label="default configuration")
            for n in reports:
                ax.axvline(n, color="k", lw=0.5, alpha=0.4)
                if row == 1:
                    ax.annotate(f"BO-{n}: {bo[str(n)]['test_acc_pct_mean']:.2f}", (n, bo[str(n)]["test_acc_pct_mean"]),
                                xytext=(4, -12), textcoords="offset points", fontsize=7, color=PALETTE[0])
            ax.set_xscale("log")
            ax.set_xlim(0.9, g["n"] * 1.15)
            lo = min(np.nanmin(curves[:, min(4, curves.shape[1] - 1)]), dy, rnd[min(4, len(rnd) - 1)]) - 1.0
            hi = max(np.nanmax(curves), gy, np.nanmax(rnd)) + 0.6
            ax.set_ylim(lo, hi)
            ax.set_xlabel("evaluations (trained configurations)")
            ax.set_ylabel(f"{what} accuracy of the incumbent (%)" if row else "best-so-far validation accuracy (%)")
            if row == 0:
                p = m["protocol"]
                ax.set_title(f"{label}: spiking accuracy ({p['n_train']:,} train, {p['epochs']} epochs)\n"
                             f"test: default {d['test_acc_pct']:.2f} %, grid best {g['test_acc_pct']:.2f} %, "
                             f"BO-{reports[-1]} {bo[str(reports[-1])]['test_acc_pct_mean']:.2f} %")
            if row == 0 and col == 0:
                ax.legend(loc="lower right", fontsize=6.5)
    fig.suptitle("Whetstone hyperparameters (lr, sharpening start, dropout, N-hot units per class): search efficiency", y=1.0)
    fig.tight_layout()
    return save(fig, out_dir, "fig_whetstone_bo")
