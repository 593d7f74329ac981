"""One runnable script per published result.  ``python -m experiments --list`` lists them.

Each module defines ``CONFIG`` (defaults), ``QUICK`` (smoke overrides), optional ``CLAIMS`` and
``run(cfg, ctx) -> metrics``; see :mod:`spikejax.experiment`.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["available", "load"]


def available() -> list[str]:
    import experiments

    return sorted(
        m.name for m in pkgutil.iter_modules(experiments.__path__) if not m.name.startswith("_") and m.name != "results_table"
    )


def load(name: str):
    names = available()
    if name not in names:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(names)}")
    return importlib.import_module(f"experiments.{name}")
