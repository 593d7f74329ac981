"""Model-quality metrics.

Design Index (Date, Hendler, Carothers, "Design Index for Deep Neural Networks", Procedia Computer
Science 88, BICA 2016; papers.md section 5.2): a pair of log-ratio indices that summarise how a
trained network sits relative to an acceptable error and to its own validation error.

* accuracy index    ``I_a = log10(e_p / e_t)``: ``e_p`` the threshold (acceptable) error, ``e_t``
  the training error.  ``I_a > 0``: the training error is below the threshold (``I_a = 1``: ten
  times below); ``I_a < 0``: the model does not reach the threshold even on its training data.
* overfitting index ``I_o = log10(e_v / e_t)``: ``e_v`` the validation error.  ``I_o = 0``: the
  validation error equals the training error; ``I_o > 0``: the model does worse on held-out data
  (overfitting, ``I_o = 1``: ten times worse); ``I_o < 0``: validation better than training.

Errors may be error rates (``1 - accuracy``) or any other positive error measure, as long as all
three use the same one.  They must be positive and finite: an error of 0 makes a ratio 0 or
infinite, so the logarithm is undefined; such inputs raise ``ValueError`` naming the argument
(add a floor such as ``max(e, 1 / n_samples)`` yourself if you want a finite index).
Scalars give Python floats; array inputs are accepted and broadcast (numpy float64 arrays).

Test-set uncertainty: :func:`error_rate_ci` gives the exact (Clopper-Pearson) confidence interval
of an error rate measured as ``k`` errors on ``n`` test samples (``scipy.stats.binomtest``), the
sampling error of the test set alone (a fixed model, test digits drawn at random): a published
number inside the interval is not distinguishable from the measured one by that test set.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["DesignIndex", "accuracy_index", "overfitting_index", "design_index", "error_rate_ci"]


def _check_error(name: str, value) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if arr.size == 0:
        raise ValueError(f"{name} must be a positive finite number, got an empty array")
    if np.any(~np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if np.any(arr <= 0):
        raise ValueError(
            f"{name} must be positive (the Design Index is the log10 of an error ratio, undefined for an "
            f"error <= 0), got {value!r}"
        )
    return arr


def _out(x: np.ndarray):
    return float(x) if x.ndim == 0 else x


def accuracy_index(e_p, e_t):
    """``I_a = log10(e_p / e_t)``: threshold error ``e_p`` over training error ``e_t`` (both > 0)."""
    p = _check_error("e_p (threshold error)", e_p)
    t = _check_error("e_t (training error)", e_t)
    return _out(np.log10(p / t))


def overfitting_index(e_v, e_t):
    """``I_o = log10(e_v / e_t)``: validation error ``e_v`` over training error ``e_t`` (both > 0)."""
    v = _check_error("e_v (validation error)", e_v)
    t = _check_error("e_t (training error)", e_t)
    return _out(np.log10(v / t))


class DesignIndex(NamedTuple):
    """The Design Index tuple ``(I_a, I_o)``."""

    accuracy: float  # I_a = log10(e_p / e_t)
    overfitting: float  # I_o = log10(e_v / e_t)


def design_index(e_t, e_v, e_p) -> DesignIndex:
    """``DesignIndex(I_a=log10(e_p/e_t), I_o=log10(e_v/e_t))`` from training error ``e_t``,
    validation error ``e_v`` and threshold error ``e_p`` (all positive and finite)."""
    return DesignIndex(accuracy_index(e_p, e_t), overfitting_index(e_v, e_t))


def error_rate_ci(n_errors, n, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided ``level`` confidence interval ``(low, high)`` of an error
    rate measured as ``n_errors`` errors out of ``n`` samples (rates in [0, 1]).

    ``n_errors`` and ``n`` are whole numbers with ``0 <= n_errors <= n`` and ``n >= 1``;
    ``0 < level < 1``.  ``error_rate_ci(281, 10000)`` is the interval of a 2.81% test error on
    the MNIST test set."""
    from scipy.stats import binomtest

    for name, v in (("n_errors", n_errors), ("n", n)):
        if isinstance(v, bool) or not float(v).is_integer():
            raise ValueError(f"{name} must be a whole number of samples, got {v!r}")
    k, n = int(n_errors), int(n)
    if n < 1:
        raise ValueError(f"n (number of samples) must be >= 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"n_errors must lie in [0, n] = [0, {n}], got {k}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level (confidence level) must lie in (0, 1), got {level!r}")
    ci = binomtest(k, n).proportion_ci(confidence_level=float(level), method="exact")
    return float(ci.low), float(ci.high)
