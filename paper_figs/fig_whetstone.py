"""Whetstone on MNIST and Fashion-MNIST: accuracy as each network sharpens (every table row that
has a results file), original vs spiking accuracy per row against the MLDL 2017 slides, and one
activation's shape as it sharpens into a step."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._style import PALETTE, RESULTS_DIR, results, save

NAME = "whetstone_mnist"

#: (results-file stem, short label) in table order; the dense MNIST row is required.
ROWS = (
    ("whetstone_mnist", "MNIST dense 784-512-512"),
    ("whetstone_mnist-stpu_cnn", "MNIST CNN 3x11x11 + pool"),
    ("whetstone_mnist-cnn_restricted", "MNIST CNN 8x3x3 x2, 100 x2"),
    ("whetstone_mnist-cnn_unrestricted", "MNIST CNN 32x10x10 x2, 100 x2"),
    ("whetstone_mnist-fashion_mnist-dense", "Fashion dense 784-512-512"),
    ("whetstone_mnist-fashion_mnist-stpu_cnn", "Fashion CNN 3x11x11 + pool"),
    ("whetstone_mnist-fashion_mnist-cnn_restricted", "Fashion CNN 8x3x3 x2, 100 x2"),
    ("whetstone_mnist-fashion_mnist-cnn_unrestricted", "Fashion CNN 32x10x10 x2, 100 x2"),
)

_PUBLISHED = {"dense": (97.3, 97.3), "stpu_cnn": (97.1, 94.9), "cnn_restricted": (98.5, 97.3), "cnn_unrestricted": (99.1, 98.5)}


def _load_rows(results_dir: Path | None):
    rows = [(ROWS[0][1], results(NAME, results_dir))]  # required (raises with the command if missing)
    d = Path(results_dir or RESULTS_DIR)
    for stem, label in ROWS[1:]:
        p = d / f"{stem}.json"
        if p.exists():
            with open(p) as f:
                rows.append((label, json.load(f)))
    return rows


def _row_panel(ax, label, res):
    m, h = res["metrics"], res["metrics"]["history"]
    sharp = np.asarray(h["sharpness"], dtype=float)  # [epochs, layers]
    mean_s = sharp.mean(axis=1)
    acc = 100 * np.asarray(h["test_acc"], dtype=float)
    acc_sharp = 100 * np.asarray(h["test_acc_sharp"], dtype=float)
    ax.plot(mean_s, acc, "o-", ms=2.5, label="at current sharpness")
    ax.plot(mean_s, acc_sharp, "s--", ms=2.5, label="all layers sharp")
    ax.axhline(m["original_acc_pct"], color="#7f7f7f", lw=0.8, ls=":", label=f"original: {m['original_acc_pct']:.2f}%")
    ax.axhline(m["spiking_acc_pct"], color=PALETTE[1], lw=0.8, ls="-.", label=f"spiking (LIF): {m['spiking_acc_pct']:.2f}%")
    top = max(np.nanmax(acc), m["original_acc_pct"]) + 0.4
    late = acc[mean_s > 0] if np.any(mean_s > 0) else acc
    lo = min(np.nanmin(late), m["spiking_acc_pct"]) - 1.0
    ax.set_ylim(max(lo, top - 12.0), top)
    ax.set_xlim(-0.03, 1.03)
    agree = m.get("spiking_vs_sharpened_agree") or f"{m['n_test'] - m['spiking_vs_sharpened_disagreements']}/{m['n_test']}"
    cfg = res.get("config", {})
    extra = []
    if cfg.get("input", "binarize") != "binarize":
        extra.append(f"{cfg['input']} input")
    if float(cfg.get("temperature", 1.0)) != 1.0:
        extra.append(f"loss T={float(cfg['temperature']):g}")
    label = f"{label}\n({', '.join(extra)})" if extra else label
    val = f"\nvalidation gap {m['val_original_minus_spiking_pts']:.2f} points" if "val_original_minus_spiking_pts" in m else ""
    ax.set_title(f"{label}\n{m['epochs_run']} epochs, {m['train_time_s']:.0f} s; agree {agree}{val}", fontsize=8)
    ax.legend(loc="lower left", fontsize=6)


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    rows = _load_rows(results_dir)
    fixed = rows[0][1]["metrics"].get("fixed_point") or []
    n_panels = len(rows) + 2 + (1 if fixed else 0)
    ncol = 4 if n_panels > 3 else n_panels
    nrow = -(-n_panels // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 2.9 * nrow), squeeze=False)
    flat = axes.ravel()
    for ax, (label, res) in zip(flat, rows):
        _row_panel(ax, label, res)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    for ax in flat[: len(rows)]:
        ax.set_xlabel("mean layer sharpness")

    # summary: original vs spiking per row, with the slides' numbers for the MNIST rows
    ax = flat[len(rows)]
    xs = np.arange(len(rows))
    orig = [r["metrics"]["original_acc_pct"] for _, r in rows]
    spk = [r["metrics"]["spiking_acc_pct"] for _, r in rows]
    ax.bar(xs - 0.2, orig, 0.4, label="original (ours)", color=PALETTE[0])
    ax.bar(xs + 0.2, spk, 0.4, label="spiking (ours)", color=PALETTE[1])
    for i, (_, r) in enumerate(rows):
        if r["config"].get("dataset", "mnist") == "mnist" and r["metrics"]["net"] in _PUBLISHED:
            po, ps = _PUBLISHED[r["metrics"]["net"]]
            ax.plot([i - 0.2], [po], "k_", ms=9, mew=1.5)
            ax.plot([i + 0.2], [ps], "k_", ms=9, mew=1.5, label="slides (MLDL 2017)" if i == 0 else None)
    ax.set_xticks(xs, [str(i + 1) for i in xs])
    ax.set_xlabel("row (panel order)")
    ax.set_ylim(min(orig + spk + [94.9]) - 2.0, 100.0)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(loc="lower left", fontsize=6)
    ax.set_title("original vs spiking per row", fontsize=8)

    # one activation's shape as it sharpens (layer 1 of the dense MNIST row)
    ax = flat[len(rows) + 1]
    tr = rows[0][1]["metrics"]["activation_trace"]
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
    ax.set_title(f"layer-1 {tr['activation']} as it sharpens", fontsize=8)

    # the dense MNIST row's exported net in fixed point: accuracy and agreement vs fractional bits
    if fixed:
        ax = flat[len(rows) + 2]
        fb = [r["frac_bits"] for r in fixed]
        ax.plot(fb, [r["accuracy_pct"] for r in fixed], "o-", color=PALETTE[1], label="fixed-point test accuracy (%)")
        ax.axhline(rows[0][1]["metrics"]["spiking_acc_pct"], color=PALETTE[1], ls=":", lw=0.8, label="float spiking net")
        ax.set_ylim(max(0.0, min(r["accuracy_pct"] for r in fixed) - 2), 100.0)
        ax.set_xlabel("fractional bits (LSB = 2^-bits)")
        ax.set_ylabel("test accuracy (%)")
        ax2 = ax.twinx()
        ax2.plot(fb, [100 * r["agreement_with_float"] for r in fixed], "s--", color=PALETTE[0], label="agreement with float (%)")
        ax2.set_ylabel("same class as float net (%)", fontsize=7)
        ax2.set_ylim(ax.get_ylim())
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=6)
        ax.set_title("MNIST dense row in integer arithmetic (NSAT-style LIF)", fontsize=8)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    fig.tight_layout()
    return save(fig, out_dir, "fig_whetstone")
