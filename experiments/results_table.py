"""Regenerate the table in RESULTS.md from the committed results files.

``python -m experiments.results_table`` rewrites the block between the markers
``<!-- results-table:start -->`` and ``<!-- results-table:end -->`` in RESULTS.md.  Each
results file lists its ``claims``: ``{"claim", "published", "metric", "fmt"}``; the spikejax
number is read from ``metrics[metric]`` (dotted path), never typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"


def _get(metrics: dict, path: str):
    cur = metrics
    for part in path.split("."):
        if isinstance(cur, list):
            cur = cur[int(part)]
        else:
            cur = cur[part]
    return cur


def rows(results_dir: Path) -> list[str]:
    out = []
    for path in sorted(results_dir.glob("*.json")):
        if path.stem.endswith("-quick"):
            continue
        rec = json.loads(path.read_text())
        for c in rec.get("claims", []):
            try:
                val = _get(rec["metrics"], c["metric"])
                if val is None:  # e.g. an operating point the run never reached
                    ours = "not reached"
                else:
                    ours = format(val, c.get("fmt", "")) if not isinstance(val, str) else val
            except (KeyError, IndexError, TypeError, ValueError):
                ours = "missing"
            rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            out.append(f"| {c['claim']} | {c['published']} | {ours} | `{rec['command']}` | `{rel}` |")
    return out


def render(results_dir: Path = ROOT / "results") -> str:
    head = "| published claim | published number | spikejax number | command | results file |\n|---|---|---|---|---|"
    return "\n".join([head, *rows(results_dir)])


def main() -> int:
    md = ROOT / "RESULTS.md"
    text = md.read_text() if md.exists() else f"# Results\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        print(f"RESULTS.md lacks the markers {START} / {END}", file=sys.stderr)
        return 2
    pre, rest = text.split(START, 1)
    _, post = rest.split(END, 1)
    from spikejax.experiment import atomic_write_bytes

    atomic_write_bytes(md, f"{pre}{START}\n{render()}\n{END}{post}".encode())
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
