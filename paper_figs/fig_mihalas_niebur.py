"""The 20 behaviours of the Mihalas–Niebur neuron (paper figure 1, panels A–T), simulated with
:mod:`spikejax.neurons.mihalas_niebur` (forward Euler, dt = 0.1 ms, float64; about a second).

Each panel: membrane potential V (dark, spikes drawn as vertical strokes), threshold Theta (red,
dashed), and the drive I_e/C in a strip underneath.  ``python -m paper_figs.fig_mihalas_niebur``
writes ``fig_mihalas_niebur.png/.pdf`` to ``paper_figs/out/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paper_figs._style import OUT_DIR, PALETTE, apply, save  # noqa: E402
from spikejax.neurons.mihalas_niebur import mn_preset, mn_preset_names, run_preset  # noqa: E402

NAME = "fig_mihalas_niebur"
SPIKE_TOP = -15.0  # mV, height of the drawn spike strokes
NROWS, NCOLS = 4, 5
_SHORT = {"K": "Hyperpol.-induced spiking", "L": "Hyperpol.-induced bursting", "C": "Spike-freq. adaptation"}


def _simulate():
    """Run the 20 presets in float64 (panel B needs it); restores the x64 flag afterwards."""
    prev = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        return [(mn_preset(n), run_preset(n)) for n in mn_preset_names()]
    finally:
        jax.config.update("jax_enable_x64", prev)


def _panel(fig, cell, preset, tr, first_col: bool, last_row: bool):
    sub = cell.subgridspec(2, 1, height_ratios=[4, 1], hspace=0.06)
    ax = fig.add_subplot(sub[0])
    ax_i = fig.add_subplot(sub[1], sharex=ax)
    t = np.concatenate([[0.0], tr.t]) * 1e3  # ms, with the initial state at t = 0
    v = np.concatenate([[float(preset.state0.v)], tr.v]) * 1e3
    th = np.concatenate([[float(preset.state0.theta)], tr.theta]) * 1e3
    k = np.flatnonzero(tr.spikes) + 1  # spike steps in the padded arrays
    v_plot = v.copy()
    v_plot[k] = np.nan  # break the line at each reset; the spike is drawn as a stroke
    ax.plot(t, th, color=PALETTE[1], ls="--", lw=0.9, label=r"$\Theta$")
    ax.plot(t, v_plot, color="k", lw=0.9, label="V")
    ax.vlines(t[k], th[k - 1], SPIKE_TOP, color="k", lw=0.7)
    lo = min(np.nanmin(v_plot), th.min())
    ax.set_ylim(min(-80.0, np.floor((lo - 5.0) / 10.0) * 10.0), SPIKE_TOP + 3.0)
    ax.set_xlim(0.0, t[-1])
    ax.set_title(f"{preset.letter}  {_SHORT.get(preset.letter, preset.title)}", loc="left", fontweight="bold")
    ax.tick_params(labelbottom=False)
    ax.grid(True, alpha=0.25)

    stim = np.concatenate([tr.stimulus[:1], tr.stimulus])
    ax_i.step(t, stim, where="pre", color=PALETTE[0], lw=0.9)
    ax_i.axhline(0.0, color="0.6", lw=0.5)
    s_lo, s_hi = min(0.0, stim.min()), max(0.0, stim.max())
    pad = 0.15 * (s_hi - s_lo if s_hi > s_lo else 1.0)
    ax_i.set_ylim(s_lo - pad, s_hi + pad)
    ax_i.set_yticks(sorted({0.0, float(np.round(stim[np.argmax(np.abs(stim))], 1))}))
    ax_i.tick_params(labelsize=7)
    ax_i.grid(False)
    if first_col:
        ax.set_ylabel("mV")
        ax_i.set_ylabel("V/s", fontsize=7)
    if last_row:
        ax_i.set_xlabel("time (ms)")


def make(out_dir: Path) -> list[Path]:
    apply()
    runs = _simulate()
    fig = plt.figure(figsize=(17.0, 12.5))
    grid = fig.add_gridspec(NROWS, NCOLS, hspace=0.38, wspace=0.22, top=0.95)
    for n, (preset, tr) in enumerate(runs):
        r, c = divmod(n, NCOLS)
        _panel(fig, grid[r, c], preset, tr, first_col=c == 0, last_row=r == NROWS - 1)
    fig.suptitle(
        "Mihalas–Niebur neuron: the 20 behaviours of figure 1 (forward Euler, dt = 0.1 ms); "
        r"V (black), threshold $\Theta$ (red), drive $I_e/C$ (blue strip, V/s)",
        y=0.985,
    )
    return save(fig, out_dir, NAME)


if __name__ == "__main__":
    for p in make(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR):
        print(p)
