"""Input validation shared by the library: every error names the offending argument."""

from __future__ import annotations

import math

import jax
import numpy as np


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_positive(name: str, value, *, allow_zero: bool = False):
    """Raise ``ValueError`` unless every element of ``value`` is > 0 (>= 0 with allow_zero)."""
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=float)
    bad = ~np.isfinite(arr) | ((arr < 0) if allow_zero else (arr <= 0))
    if np.any(bad):
        what = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be {what} and finite, got {value!r}")


def check_probability(name: str, value, *, open_right: bool = False):
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=float)
    hi_bad = (arr >= 1.0) if open_right else (arr > 1.0)
    if np.any(~np.isfinite(arr) | (arr < 0.0) | hi_bad):
        rng = "[0, 1)" if open_right else "[0, 1]"
        raise ValueError(f"{name} must be a probability in {rng}, got {value!r}")


def check_range(name: str, value, lo=-math.inf, hi=math.inf):
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=float)
    if np.any(~np.isfinite(arr) | (arr < lo) | (arr > hi)):
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value!r}")


def check_choice(name: str, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
