"""Accuracy vs SynOps per classification for the width x T sweep, Pareto front highlighted."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from ._style import PALETTE, results, save

NAME = "pareto_synops"
MARKERS = ["o", "s", "^", "D", "v", "P"]


def make(out_dir: Path, results_dir: Path | None = None, name: str = NAME) -> list[Path]:
    res = results(name, results_dir)
    m = res["metrics"]
    rows = m["rows"]
    cw = m["cheapest_within_tolerance"]
    Ts = sorted({r["T"] for r in rows})
    style = {T: (MARKERS[i % len(MARKERS)], PALETTE[(i + 1) % len(PALETTE)]) for i, T in enumerate(Ts)}
    front = sorted((rows[k] for k in m["front"]), key=lambda r: r["synops"])
    ref, ch = rows[cw["reference"]], rows[cw["cheapest"]]

    fig, (ax, axz) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1.5, 1]})
    for ax_, zoom in ((ax, False), (axz, True)):
        for T in Ts:
            mk, col = style[T]
            rs = [r for r in rows if r["T"] == T]
            on = [r for r in rs if r["on_front"]]
            off = [r for r in rs if not r["on_front"]]
            ax_.scatter([r["synops"] for r in off], [r["test_acc_pct"] for r in off], s=24, marker=mk,
                        facecolor="none", edgecolor=col, zorder=3, label=f"T = {T} steps" if not zoom else None)
            ax_.scatter([r["synops"] for r in on], [r["test_acc_pct"] for r in on], s=30, marker=mk,
                        color=col, edgecolor="k", linewidth=0.6, zorder=4,
                        label=f"T = {T}, on the front" if not zoom else None)
        ax_.step([r["synops"] for r in front], [r["test_acc_pct"] for r in front], where="post", color="k", lw=0.8,
                 zorder=2, label="Pareto front" if not zoom else None)
        ax_.scatter([ref["synops"]], [ref["test_acc_pct"]], s=160, marker="*", facecolor="none", edgecolor="#e59a2e",
                    linewidth=1.2, zorder=5, label="most accurate" if not zoom else None)
        ax_.scatter([ch["synops"]], [ch["test_acc_pct"]], s=150, marker="o", facecolor="none", edgecolor="#c0504d",
                    linewidth=1.2, zorder=5, label=f"cheapest within {cw['tolerance']:g} pt" if not zoom else None)
        ax_.set_xscale("log")
        ax_.xaxis.set_minor_formatter(NullFormatter())
        ax_.set_xlabel("SynOps per classification (spikes x fan-out)")
        if zoom:
            lo = cw["reference_accuracy"] - 4 * max(cw["tolerance"], 0.5)
            keep = [r for r in rows if r["test_acc_pct"] >= lo]
            xs = [r["synops"] for r in keep]
            ax_.set_ylim(lo, cw["reference_accuracy"] + 0.5)
            ax_.set_xlim(min(xs) / 1.4, max(xs) * 1.4)
            ax_.axhspan(cw["reference_accuracy"] - cw["tolerance"], cw["reference_accuracy"], color="#e59a2e", alpha=0.12, lw=0)
            ax_.set_title(f"top {4 * max(cw['tolerance'], 0.5):g} points: {cw['cost_ratio']:.1f}x fewer SynOps "
                          f"for {cw['accuracy_loss_pts']:.2f} pt (band: {cw['tolerance']:g} pt)")
            for r in keep:
                ax_.annotate(f"{r['width']}/T{r['T']}", (r["synops"], r["test_acc_pct"]), fontsize=6,
                             xytext=(4, -3), textcoords="offset points")
        else:
            ax_.set_ylabel("test accuracy (%)")
            for r in front:
                ax_.annotate(f"h={r['width']}, T={r['T']}", (r["synops"], r["test_acc_pct"]), fontsize=6,
                             xytext=(4, -8), textcoords="offset points")
            ax_.legend(loc="lower right", fontsize=7)
            cfg = res["config"]
            ax_.set_title(f"784-h-10 LIF, {cfg['dataset']}, {m['train_steps_per_config']} training steps per network")
    fig.suptitle("Accuracy vs synaptic operations: hidden width x presentation length (one vmapped program per T)", y=1.02)
    fig.tight_layout()
    return save(fig, out_dir, "fig_pareto")
