"""Converted SoftLIF MNIST network: accuracy vs presentation time, and the LIF rate check
(analytic r(J) vs simulated spikejax LIF neurons)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._style import results, save

NAME = "softlif_mnist"


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    res = results(NAME, results_dir)
    m = res["metrics"]
    cfg = res["config"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    t = 1e3 * np.asarray(m["presentation_times_s"])
    acc = 100 * np.asarray(m["acc_snn"])
    soft = 100 * m["acc_softlif"]
    for ax, zoom in zip(axes[:2], (False, True)):
        ax.axhspan(soft - 1, soft + 1, color="0.9", label="SoftLIF net $\\pm$ 1 point")
        ax.axhline(soft, color="#4f8f3a", lw=1, label=f"SoftLIF net {soft:.2f}%")
        ax.axhline(100 * m["acc_lif_rate"], color="#8064a2", lw=1, ls="--", label=f"LIF-rate net {100 * m['acc_lif_rate']:.2f}%")
        ax.plot(t, acc, "o-", color="#1f4e79", ms=4, label="spiking LIF net")
        if m.get("presentation_time_needed_s"):
            ax.axvline(1e3 * m["presentation_time_needed_s"], color="#c0504d", ls=":", lw=1,
                       label=f"within 1 point from {1e3 * m['presentation_time_needed_s']:g} ms")
        if m.get("rate_input"):
            r = m["rate_input"]
            ax.plot([1e3 * r["presentation_time_s"]], [100 * r["acc_snn"]], "s", color="#e59a2e",
                    label=f"rate-coded input ({r['n_test']} images)")
        ax.set_xscale("log")
        ax.set_xlabel("presentation time per image (ms)")
        ax.set_ylabel("test accuracy (%)")
        if zoom:
            ax.set_ylim(max(0.0, soft - 4), min(100.0, soft + 1.5))
            ax.set_title("zoom: the 1-point band")
            ax.legend(loc="lower right", fontsize=6)
        else:
            ax.set_ylim(0, 100)
            ax.set_title(f"784-{'-'.join([str(cfg['hidden'])] * cfg['n_hidden_layers'])}-10, dt={1e3 * cfg['dt']:g} ms, "
                         f"{cfg['synapse']} {1e3 * cfg['tau_syn']:g} ms synapses")

    ax = axes[2]
    rc = m["rate_check"]
    j = np.asarray(rc["j"])
    ax.plot(j, rc["lif_rate"], "k-", lw=1.2, label="LIF rate r(J), closed form")
    ax.plot(j, rc["softlif_rate"], "-", color="#4f8f3a", lw=1, label=f"SoftLIF, $\\sigma$={cfg['sigma']:g}")
    marks = {"0.001": ("x", "#c0504d"), "0.0005": ("+", "#e59a2e"), "0.0001": (".", "#1f4e79")}
    for dt, (mk, c) in marks.items():
        key = f"measured_dt{float(dt):g}"
        if key in rc:
            err = rc[f"max_rel_err_dt{float(dt):g}"]
            ax.plot(j, rc[key], mk, color=c, ms=5, label=f"spikejax LIF, dt={1e3 * float(dt):g} ms (max rel. err {100 * err:.1f}%)")
    ax.set_xlabel("input current J (threshold 1)")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(f"tau_rc={1e3 * cfg['tau_rc']:g} ms, tau_ref={1e3 * cfg['tau_ref']:g} ms: error O(dt)")
    ax.legend(loc="lower right", fontsize=6)
    fig.suptitle("SoftLIF-trained MLP converted to spiking LIF neurons (MNIST)", y=1.03)
    return save(fig, out_dir, "fig_softlif_presentation")
