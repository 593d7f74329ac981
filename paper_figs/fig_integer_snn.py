"""Integer-weight 784-100-10 spiking MNIST network: test accuracy of the float network and of the
integer networks (rounding, MIP, B&B + backprop) per bit width, with the number of test images on
which the fixed-point simulator and the integer model in float32 predict the same class."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._style import PALETTE, results, save

NAME = "integer_spiking_mnist"
_LABELS = {"round": "rounding", "mip": "MIP (CBC)", "bnb": "B&B + backprop (our reconstruction)"}


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    res = results(NAME, results_dir)
    m = res["metrics"]
    bits = [str(b) for b in m["bits"]]
    fig, ax = plt.subplots(figsize=(5.4, 3.2))
    x = np.arange(len(bits))
    wd = 0.26
    accs = []
    for j, meth in enumerate(("round", "mip", "bnb")):
        vals = [m["by_bits"][b][meth]["test_acc_pct"] for b in bits]
        accs += vals
        bars = ax.bar(x + (j - 1) * wd, vals, wd, color=PALETTE[j + 1], label=_LABELS[meth])
        for bar, b in zip(bars, bits):
            t = m["by_bits"][b][meth]["test"]
            ax.annotate(f"{t['n_agree_fixed_vs_float']}/{t['n']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2), textcoords="offset points", ha="center", fontsize=5.5, rotation=90)
    ax.axhline(m["float_test_acc_pct"], color="k", lw=1.0, label=f"float SNN ({m['float_test_acc_pct']:.2f}%)")
    lo = min(accs + [m["float_test_acc_pct"]])
    ax.set_ylim(max(0, lo - 3), 100)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{b}-bit weights" for b in bits])
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax.set_title(f"IF {m.get('sizes', '784-' + str(res['config']['hidden']) + '-10')}, T = {m['T']} deterministic spikes; label: fixed-point vs float32 agreement", fontsize=7.5)
    return save(fig, out_dir, "fig_integer_snn")
