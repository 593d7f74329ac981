"""Accuracy vs SynOps per classification for the width x input-density x spike-penalty x T sweep:
colour = input connection density, marker = T, marker size = hidden width, white centre = trained
with the firing-rate penalty; the Pareto front, the front of the dense (width x T only) networks,
the most accurate network and the cheapest within tolerance."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from ._style import results, save

NAME = "pareto_synops"
MARKERS = ["v", "s", "o", "D", "^", "P"]


def _front(rows):
    """Rows of the (accuracy up, SynOps down) front of ``rows``, by increasing SynOps."""
    out, best = [], -np.inf
    for r in sorted(rows, key=lambda r: (r["synops"], -r["test_acc_pct"])):
        if r["test_acc_pct"] > best:
            out.append(r)
            best = r["test_acc_pct"]
    return out


def _label(r):
    reg = f" $\\lambda$={r['spike_reg']:g}" if r.get("spike_reg", 0.0) else ""
    return f"h={r['width']} d={r.get('density', 1.0):g} T={r['T']}{reg}"


def _annotate_apart(fig, ax, rows, fontsize=6):
    """Label points (to the right, or to the left where the label would leave the axes), nudging
    labels down so no two overlap (positions compared in typographic points)."""
    fig.canvas.draw()
    scale = 72.0 / fig.dpi

    def to_pts(xy):
        px, py = ax.transData.transform(xy)
        return px * scale, py * scale

    placed = []
    x_right = to_pts((ax.get_xlim()[1], 0.0))[0]
    for r in rows:
        px, py = to_pts((r["synops"], r["test_acc_pct"]))
        left = px + 0.5 * fontsize * len(_label(r)) > x_right  # the label would leave the axes
        dx, dy = (-6, 0) if left else (5, -2)
        width = 0.5 * fontsize * len(_label(r).replace("$\\lambda$", "l"))  # rough text width in points
        x0 = px + dx - (width if left else 0)
        while any(abs(py + dy - qy) < fontsize + 1 and x0 < qx1 and qx0 < x0 + width for qx0, qx1, qy in placed):
            dy -= 2
        placed.append((x0, x0 + width, py + dy))
        ax.annotate(_label(r), (r["synops"], r["test_acc_pct"]), fontsize=fontsize, xytext=(dx, dy),
                    textcoords="offset points", ha="right" if left else "left", va="center",
                    arrowprops=dict(arrowstyle="-", lw=0.3, color="#999999") if dy < -5 else None)


def make(out_dir: Path, results_dir: Path | None = None, name: str = NAME) -> list[Path]:
    res = results(name, results_dir)
    m = res["metrics"]
    rows = m["rows"]
    for r in rows:
        r.setdefault("density", 1.0)  # results from the width-only sweep
    cw = m["cheapest_within_tolerance"]
    Ts = sorted({r["T"] for r in rows})
    dens = sorted({r["density"] for r in rows}, reverse=True)
    widths = sorted({r["width"] for r in rows})
    cmap = plt.get_cmap("viridis")
    colour = {d: cmap(0.9 * i / max(len(dens) - 1, 1)) for i, d in enumerate(dens)}
    marker = {T: MARKERS[i % len(MARKERS)] for i, T in enumerate(Ts)}
    size = {w: 10 + 60 * i / max(len(widths) - 1, 1) for i, w in enumerate(widths)}
    front = sorted((rows[k] for k in m["front"]), key=lambda r: r["synops"])
    dense_front = _front([r for r in rows if r["density"] == 1.0])
    ref, ch = rows[cw["reference"]], rows[cw["cheapest"]]

    fig, (ax, axz) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.4, 1]})
    for ax_, zoom in ((ax, False), (axz, True)):
        for r in rows:
            on = r["on_front"]
            ax_.scatter([r["synops"]], [r["test_acc_pct"]], s=size[r["width"]], marker=marker[r["T"]],
                        color=colour[r["density"]], alpha=1.0 if on else 0.45,
                        edgecolor="k" if on else "none", linewidth=0.7, zorder=4 if on else 3)
            if r.get("spike_reg", 0.0):
                ax_.scatter([r["synops"]], [r["test_acc_pct"]], s=size[r["width"]] / 8, marker="o", color="w",
                            linewidth=0, zorder=4.5 if on else 3.5, alpha=1.0 if on else 0.6)
        ax_.step([r["synops"] for r in front], [r["test_acc_pct"] for r in front], where="post", color="k", lw=0.9, zorder=2)
        if len(dense_front) > 1 and len(dens) > 1:
            ax_.step([r["synops"] for r in dense_front], [r["test_acc_pct"] for r in dense_front], where="post",
                     color="#7f7f7f", lw=0.9, ls="--", zorder=1)
        ax_.scatter([ref["synops"]], [ref["test_acc_pct"]], s=260, marker="*", facecolor="none", edgecolor="#e59a2e",
                    linewidth=1.3, zorder=5)
        ax_.scatter([ch["synops"]], [ch["test_acc_pct"]], s=220, marker="o", facecolor="none", edgecolor="#c0504d",
                    linewidth=1.3, zorder=5)
        ax_.set_xscale("log")
        ax_.xaxis.set_minor_formatter(NullFormatter())
        ax_.set_xlabel("SynOps per classification (spikes x existing fan-out)")
        if zoom:
            lo = cw["reference_accuracy"] - 3 * max(cw["tolerance"], 0.5)
            keep = [r for r in rows if r["test_acc_pct"] >= lo]
            xs = [r["synops"] for r in keep]
            ax_.set_ylim(lo, cw["reference_accuracy"] + 0.4)
            ax_.set_xlim(min(xs) / 1.3, max(xs) * 1.6)
            ax_.axhspan(cw["reference_accuracy"] - cw["tolerance"], cw["reference_accuracy"], color="#e59a2e", alpha=0.12, lw=0)
            title = (f"top {3 * max(cw['tolerance'], 0.5):g} points: {cw['cost_ratio']:.1f}x fewer SynOps than the most accurate\n"
                     f"for {cw['accuracy_loss_pts']:.2f} pt lost (shaded band: {cw['tolerance']:g} pt)")
            vd = m.get("vs_dense_reference")
            if vd and len(dens) > 1 and vd["reference"] != cw["reference"]:
                dr = vd["reference_row"]
                title += (f"\n(vs the most accurate dense net, h={dr['width']} T={dr['T']}: {vd['cost_ratio']:.1f}x "
                          f"for {vd['accuracy_loss_pts']:.2f} pt)")
            ax_.set_title(title)
            labelled = sorted((r for r in keep if r["on_front"] or r is ref or r is ch), key=lambda r: -r["test_acc_pct"])
            _annotate_apart(fig, ax_, labelled)
        else:
            ax_.set_ylabel("test accuracy (%)")
            lo = np.percentile([r["test_acc_pct"] for r in rows], 5)
            ax_.set_ylim(max(lo - 2, 0), 100.0)
            for r in front[:: max(1, len(front) // 7)]:
                ax_.annotate(_label(r), (r["synops"], r["test_acc_pct"]), fontsize=5.5, xytext=(-6, 5),
                             textcoords="offset points", ha="right")
            cfg = res["config"]
            steps = m.get("train_steps_per_config")
            n_in = {"mnist": "784", "fashion_mnist": "784", "digits": "64"}.get(cfg["dataset"], "in")
            ax_.set_title(f"{n_in}-h-10 LIF, {cfg['dataset']}, {steps} training steps per network"
                          + (f"\n({m['pretrain_steps']} dense + {m['finetune_steps']} after pruning)" if "pretrain_steps" in m else ""))
            handles = [Line2D([], [], ls="none", marker="o", color=colour[d], label=f"density {d:g}") for d in dens]
            handles += [Line2D([], [], ls="none", marker=marker[T], color="#555555", markerfacecolor="none", label=f"T = {T}") for T in Ts]
            handles += [Line2D([], [], ls="none", marker="o", color="#555555", markersize=np.sqrt(size[w]), label=f"h = {w}")
                        for w in (widths[0], widths[-1])]
            if any(r.get("spike_reg", 0.0) for r in rows):
                lam = sorted({r["spike_reg"] for r in rows if r.get("spike_reg", 0.0)})
                handles += [Line2D([], [], ls="none", marker="o", color="#555555", markersize=7, markerfacecolor="w",
                                   markeredgecolor="#555555", markeredgewidth=2.5, label="spike penalty $\\lambda$=" + ",".join(f"{v:g}" for v in lam)
                                   + " (white centre)")]
            handles += [Line2D([], [], color="k", lw=0.9, label="Pareto front (filled, black edge)")]
            if len(dense_front) > 1 and len(dens) > 1:
                handles += [Line2D([], [], color="#7f7f7f", lw=0.9, ls="--", label="front of dense nets only")]
            handles += [Line2D([], [], ls="none", marker="*", markersize=12, markerfacecolor="none", color="#e59a2e", label="most accurate"),
                        Line2D([], [], ls="none", marker="o", markersize=11, markerfacecolor="none", color="#c0504d",
                               label=f"cheapest within {cw['tolerance']:g} pt")]
            ax_.legend(handles=handles, loc="lower right", fontsize=6.5, ncol=2, framealpha=0.9)
    fig.suptitle("Accuracy vs synaptic operations: hidden width x input connection density (magnitude pruning) x "
                 "spike penalty x presentation length (one vmapped program per T and stage)", y=1.01)
    fig.tight_layout()
    return save(fig, out_dir, "fig_pareto")
