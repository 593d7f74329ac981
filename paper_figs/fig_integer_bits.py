"""Integer-weight MNIST logistic regression: test accuracy vs bit width for plain rounding, the MIP
and branch-and-bound + backprop, against the float model; solve times below."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._style import results, save

NAME = "integer_logreg_mnist"

_LABELS = {
    "round_maxabs": "rounding, max-abs scale",
    "round": "rounding (chosen scale)",
    "mip": "MIP (CBC, hinge)",
    "bnb": "B&B + backprop (our reconstruction)",
}


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    res = results(NAME, results_dir)
    m = res["metrics"]
    bits = np.asarray(m["bits"])
    acc = m["test_acc_pct"]
    fig, (ax, axt) = plt.subplots(2, 1, figsize=(5.2, 5.0), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    ax.axhline(m["float_test_acc_pct"], color="k", lw=1.0, label=f"float ({m['float_test_acc_pct']:.2f}%)")
    ax.axhline(92.3, color="k", lw=0.8, ls=":", label="seed: float 92.3%")
    ax.axhline(91.6, color="#7f7f7f", lw=0.8, ls="--", label="seed: integer 91.6% (bits not stated)")
    styles = {"round_maxabs": (":", "x"), "round": ("-", "o"), "mip": ("-", "s"), "bnb": ("-", "^")}
    colors = {}
    for key, (ls, mk) in styles.items():
        if key not in acc:
            continue
        (line,) = ax.plot(bits, [acc[key][str(b)] for b in bits], ls=ls, marker=mk, ms=4, label=_LABELS[key])
        colors[key] = line.get_color()
    lo = min(min(acc[k][str(b)] for b in bits) for k in ("round", "mip", "bnb"))
    ymin = max(lo - 0.6, 0)
    ax.set_ylim(ymin, m["float_test_acc_pct"] + 0.5)
    for b in bits:  # the naive max-abs rounding can fall far below the axis: say where
        v = acc.get("round_maxabs", {}).get(str(b))
        if v is not None and v < ymin:
            ax.annotate(f"{v:.1f}% ↓", (b, ymin), xytext=(3, 4), textcoords="offset points", fontsize=6.5, color=colors["round_maxabs"])
    ax.set_ylabel("test accuracy (%)")
    ax.legend(loc="lower right", fontsize=6.5)
    ax.set_title(f"MNIST softmax regression 784→10, integer weights in [-2^(b-1), 2^(b-1)-1], {res['config']['bias_bits']}-bit biases")
    for key, mk in (("mip", "s"), ("bnb", "^")):
        t = m["solve_time_s"][key]
        axt.plot(bits, [t[str(b)] for b in bits], marker=mk, ms=4, color=colors[key], label=_LABELS[key])
    axt.set_ylabel("solve time (s)")
    axt.set_xlabel("weight bits b")
    axt.set_xticks(bits)
    axt.set_ylim(0, None)
    axt.legend(loc="lower left", fontsize=6.5)
    return save(fig, out_dir, "fig_integer_bits")
