"""Run an experiment: ``python -m experiments NAME [--quick] [--set key=value ...] [--out DIR]``.

Writes ``DIR/NAME[-quick].json`` (default DIR: results/) atomically.  Tunes glibc's allocator
first (:mod:`spikejax.runtime`; ``SPIKEJAX_TUNE_MALLOC=0`` disables it).  An interrupted run resumes
from its last checkpoint when restarted with the same command.
"""

from __future__ import annotations

import argparse
import sys

from spikejax.experiment import run_experiment

from . import available, load


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    ap.add_argument("name", nargs="?", help="experiment name (see --list)")
    ap.add_argument("--list", action="store_true", help="list the experiments")
    ap.add_argument("--quick", action="store_true", help="run the small smoke configuration")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="results", help="directory for results files (default: results)")
    ap.add_argument("--ckpt", default=None, help="checkpoint directory (default: $SPIKEJAX_CKPT or runs/)")
    ap.add_argument("--show-config", action="store_true", help="print the configuration and exit")
    args = ap.parse_args(argv)
    if args.list or not args.name:
        for n in available():
            doc = (load(n).__doc__ or "").strip().splitlines()
            print(f"{n:28s} {doc[0] if doc else ''}")
        return 0
    from spikejax.runtime import tune_from_env

    tune_from_env()  # CPU: keep XLA's temporaries out of fresh mmaps (SPIKEJAX_TUNE_MALLOC=0 disables)
    try:
        mod = load(args.name)
        if args.show_config:
            from spikejax.experiment import parse_overrides

            cfg = dict(mod.CONFIG)
            if args.quick:
                cfg.update(getattr(mod, "QUICK", {}))
            for k, v in parse_overrides(cfg, args.overrides).items():
                print(f"{k} = {v!r}")
            return 0
        path = run_experiment(mod, quick=args.quick, overrides=args.overrides, out_dir=args.out, ckpt_dir=args.ckpt)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
