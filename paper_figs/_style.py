"""House style for every spikejax figure: one look, PNG + PDF, written atomically."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spikejax.experiment import atomic_write_bytes  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
OUT_DIR = Path(__file__).resolve().parent / "out"

PALETTE = ["#1f4e79", "#c0504d", "#4f8f3a", "#8064a2", "#e59a2e", "#2c9fa3", "#7f7f7f"]


def apply():
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "font.size": 9,
            "axes.titlesize": 9,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.25,
            "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
            "lines.linewidth": 1.2,
        }
    )


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """Save ``fig`` as ``name.png`` and ``name.pdf`` in ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, bbox_inches="tight", metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(atomic_write_bytes(out_dir / f"{name}.{ext}", buf.getvalue()))
    plt.close(fig)
    return paths


def results(name: str, results_dir: Path | None = None) -> dict:
    """Load ``results/<name>.json``; a missing file names the experiment command to run."""
    import json

    path = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `python -m experiments {name}` first")
    with open(path) as f:
        return json.load(f)
