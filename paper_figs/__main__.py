"""Rebuild every figure: ``python -m paper_figs [--out DIR] [--only NAME ...]``.

Each ``paper_figs/fig_*.py`` exposes ``make(out_dir) -> list[Path]``.  Figures are drawn from
the committed results files in ``results/`` (nothing is trained here); a figure whose results
file is missing is reported and skipped, and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from ._style import OUT_DIR, apply


def figure_modules() -> list[str]:
    import paper_figs

    return sorted(m.name for m in pkgutil.iter_modules(paper_figs.__path__) if m.name.startswith("fig_"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paper_figs", description=__doc__)
    ap.add_argument("--out", default=str(OUT_DIR))
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    apply()
    failed = []
    for name in figure_modules():
        if args.only and name not in args.only and name.removeprefix("fig_") not in args.only:
            continue
        mod = importlib.import_module(f"paper_figs.{name}")
        try:
            paths = mod.make(Path(args.out))
            for p in paths:
                print(p)
        except FileNotFoundError as e:
            print(f"skipped {name}: {e}", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
