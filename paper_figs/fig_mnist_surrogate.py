"""Surrogate-gradient MNIST: learning curve and a spike raster of one test digit."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._style import RESULTS_DIR, results, save

NAME = "mnist_surrogate"


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    res = results(NAME, results_dir)
    hist = res["metrics"]["history"]
    ras_path = Path(results_dir or RESULTS_DIR) / f"{NAME}.raster.npz"
    if not ras_path.exists():
        raise FileNotFoundError(f"{ras_path} not found: run `python -m experiments {NAME}` first")
    ras = np.load(ras_path)

    fig = plt.figure(figsize=(10, 3.6))
    gs = fig.add_gridspec(3, 3, width_ratios=[1.2, 0.45, 1.6], height_ratios=[1.2, 2.5, 0.8])
    ax = fig.add_subplot(gs[:, 0])
    ep = np.asarray(hist["epoch"])
    ax.plot(ep, 100 * np.asarray(hist["test_acc"]), "o-", label="test accuracy")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax2 = ax.twinx()
    ax2.plot(ep, hist["train_loss"], "s--", color="#c0504d", label="train loss")
    ax2.set_ylabel("train loss")
    ax2.grid(False)
    ax.set_title(f"784-{res['config']['hidden']}-10 LIF, T={res['config']['steps']}: "
                 f"{100 * res['metrics']['test_acc']:.2f}%")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right")

    axi = fig.add_subplot(gs[0, 1])
    axi.imshow(ras["image"].reshape(28, 28), cmap="gray_r")
    axi.set_title(f"label {int(ras['label'])}")
    axi.axis("off")

    T = ras["input"].shape[0]
    n_show = 200  # a readable subset of the hidden layer
    rate_h = float(ras["hidden"].mean())
    for row, (key, title) in enumerate(
        [("input", "input px (784)"), ("hidden", f"hidden 0-{n_show - 1}\n(mean rate {rate_h:.2f}/step)")]
    ):
        a = fig.add_subplot(gs[row, 2])
        data = ras[key] if key == "input" else ras[key][:, :n_show]
        t, n = np.nonzero(data)
        a.scatter(t, n, s=2.0, marker="|", color="k", linewidths=0.6)
        a.set_xlim(-0.5, T - 0.5)
        a.set_ylabel(title)
        a.set_xticklabels([])
    a = fig.add_subplot(gs[2, 2])
    out = ras["output"]
    for c in range(out.shape[1]):
        a.plot(out[:, c], lw=2.0 if c == int(ras["label"]) else 0.7, label=str(c) if c == int(ras["label"]) else None)
    a.set_xlim(-0.5, T - 0.5)
    a.set_xlabel("time step")
    a.set_ylabel("readout")
    a.legend(loc="upper left", fontsize=6)
    fig.suptitle("Surrogate-gradient BPTT on rate-coded MNIST", y=1.02)
    return save(fig, out_dir, "fig_mnist_surrogate")
