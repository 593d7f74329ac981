"""Permanent dropout, spiking vs rate network: p-value histogram, QQ plot vs Uniform(0, 1) and
the most extreme KS statistic against its null distribution (seed slides 'P value distribution
looks roughly uniform' and 'Most extreme KS statistic looks close')."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._style import RESULTS_DIR, results, save

NAME = "softlif_dropout_diabetes"


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    res = results(NAME, results_dir)
    m = res["metrics"]
    npz_path = Path(results_dir or RESULTS_DIR) / f"{NAME}.ks.npz"
    if not npz_path.exists():
        raise FileNotFoundError(f"{npz_path} not found: run `python -m experiments {NAME}` first")
    ks = np.load(npz_path)
    cfg = res["config"]
    K, N = cfg["K"], cfg["N"]
    series = [
        ("SNN vs DNN (LIF rate)", m["agreement"], "pvalues", "statistics", "#1f4e79"),
        ("SNN vs DNN (SoftLIF)", m["agreement_vs_softlif_dnn"], "pvalues_softlif", "statistics_softlif", "#4f8f3a"),
        ("DNN vs DNN (control)", m["control_dnn_vs_dnn"], "pvalues_control", "statistics_control", "#7f7f7f"),
        (f"SNN, weights x{cfg['wrong_scale']:g} (neg. control)", m["negative_control"], "pvalues_wrong", "statistics_wrong", "#c0504d"),
    ]

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    ax = axes[0]
    bins = np.linspace(0, 1, 11)
    ax.hist(ks["pvalues"], bins=bins, color="#1f4e79", alpha=0.85, label=series[0][0])
    ax.hist(ks["pvalues_wrong"], bins=bins, histtype="step", lw=1.5, color="#c0504d", label=series[3][0])
    ax.axhline(K / 10, color="k", lw=0.8, ls="--", label="uniform")
    ax.set_xlabel("per-observation KS p-value")
    ax.set_ylabel("observations")
    ax.set_title(f"p-values (K={K} obs., N={N} samples each)")
    ax.legend(loc="upper right", fontsize=6)

    ax = axes[1]
    q = (np.arange(1, K + 1) - 0.5) / K
    band = 1.358 / np.sqrt(K)  # 95% KS band for the empirical CDF of K uniforms
    ax.fill_between(q, np.clip(q - band, 0, 1), np.clip(q + band, 0, 1), color="0.85", label="95% KS band")
    for label, r, pk, _, c in series:
        ax.plot(q, np.sort(ks[pk]), ".", ms=3, color=c, label=f"{label}: p={r['uniformity_pvalue']:.2g}")
    ax.plot([0, 1], [0, 1], "k", lw=0.8)
    ax.set_xlabel("Uniform(0, 1) quantile")
    ax.set_ylabel("sorted p-value")
    ax.set_title("QQ plot vs Uniform(0, 1); legend: kstest p")
    ax.legend(loc="upper left", fontsize=6)

    ax = axes[2]
    null = ks["max_null"]
    n_lat = cfg["N"]  # D lives on a 1/N lattice for N = M
    edges = (np.arange(0, n_lat + 2) - 0.5) / n_lat
    ax.hist(null, bins=edges, density=False, color="0.6", label=f"null of max D ({len(null)} sims)")
    q95 = m["agreement"]["max_null_quantiles"]["95"]
    ax.axvline(q95, color="k", ls=":", lw=1, label=f"null 95% = {q95:.2f}")
    for label, r, _, _, c in series:
        ax.axvline(r["max_statistic"], color=c, lw=1.6, label=f"{label}: {r['max_statistic']:.2f}")
    ax.set_xlabel(f"most extreme KS statistic over {K} observations")
    ax.set_ylabel("count")
    ax.set_xlim(0, max(1.0, m["negative_control"]["max_statistic"] + 0.05))
    ax.set_title("most extreme KS statistic vs its null")
    ax.legend(loc="upper right", fontsize=6)
    fig.suptitle("Permanent dropout: converted SoftLIF network vs rate network (diabetes data, not CANDLE Combo)", y=1.03)
    return save(fig, out_dir, "fig_softlif_ks")
