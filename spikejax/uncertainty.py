r"""Permanent (Monte Carlo) dropout and the two-sample agreement study of Wycoff, Balaprakash &
Xia (ICONS 2019, papers.md 4.2).

Permanent dropout
-----------------
Dropout stays on at inference (Gal & Ghahramani 2016): model sample ``s`` uses its own mask
``m_s`` (``m = 1/(1-p)`` kept with probability ``1-p``, else 0, so ``E[m] = 1`` and the mean
activation is preserved) and the ``N`` predictions per observation form a predictive
distribution.  :func:`permanent_dropout_samples` draws the ``N`` masks from ``N`` PRNG keys and
evaluates all samples with ``jax.vmap`` in one compiled call.  Two mask layouts:

* ``per_observation=False``: one mask per model sample, shared by every observation (a model
  sample is one thinned network);
* ``per_observation=True``: a fresh mask per (sample, observation), as Keras' dropout layers
  (and hence CANDLE's ``PermanentDropout``/``infer.py``) draw them.  The samples of different
  observations are then independent, which the agreement study needs.

Any model works: ``apply_fn(params, x, masks) -> y`` with ``masks`` one array per dropout site
(e.g. :func:`spikejax.softlif.mlp_apply` or the converted spiking network
:func:`spikejax.softlif.run_converted`).

Agreement study
---------------
For each of ``K`` observations, ``N`` samples ``a`` (e.g. the DNN with permanent dropout) and
``M`` samples ``b`` (e.g. the spiking network, independent masks) are compared with the two-sample
Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``).  If the two predictive distributions agree,
the ``K`` p-values of independent observations are Uniform(0, 1), tested with
``scipy.stats.kstest(p, 'uniform')``.  The exact KS p-value ``P(D >= d)`` is discrete (for
``N = M = 100``, ``D`` lives on a 1/100 lattice) and conservative, and a uniformity test of many
of them detects that discreteness even when the distributions agree; the reported p-values are
therefore the *randomised* exact p-values ``P(D > d) + U P(D = d)`` (exactly uniform under the
null), computed from an exact lattice-path recursion (:func:`ks_2samp_tails`, equal to
scipy's exact p-value); scipy's own p-values are kept alongside.  The most
extreme statistic ``D_max = max_k D_k`` is compared with its null distribution, simulated from
``K`` independent pairs of samples of one continuous distribution (the null of ``D`` is
distribution-free), and with the exact tail ``1 - (1 - P(D >= D_max))^K``.
"""

from __future__ import annotations

import functools
import io
import os
from functools import partial
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from ._checks import is_concrete
from .experiment import atomic_write_bytes

__all__ = [
    "dropout_mask",
    "sample_masks",
    "permanent_dropout_samples",
    "predictive_summary",
    "summary_tsv",
    "write_summary_tsv",
    "ks_statistics",
    "ks_2samp_tails",
    "ks_randomized_pvalues",
    "ks_max_null",
    "KSAgreement",
    "ks_agreement",
]


def check_rate(rate) -> float:
    """Dropout rate must be a probability in [0, 1)."""
    if not is_concrete(rate):
        return rate
    r = float(rate)
    if not (np.isfinite(r) and 0.0 <= r < 1.0):
        raise ValueError(f"dropout rate must lie in [0, 1), got {rate!r}")
    return r


def check_n_samples(n, name="n_samples") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"{name} must be an integer >= 2 (a predictive distribution needs at least two samples), got {n!r}")
    return int(n)


def dropout_mask(key, shape, rate, dtype=jnp.float32):
    """Scaled dropout mask: ``1/(1-rate)`` with probability ``1-rate``, else 0 (``E = 1``)."""
    rate = check_rate(rate)
    keep = jax.random.bernoulli(key, 1.0 - rate, tuple(shape))
    return keep.astype(dtype) * jnp.asarray(1.0 / (1.0 - rate), dtype)


def sample_masks(key, sizes: Sequence[int], rate, n_samples: int, *, batch_shape=(), dtype=jnp.float32):
    """``n_samples`` independent mask sets: a tuple with one ``[n_samples, *batch_shape, n]``
    array per dropout site of width ``n`` (``batch_shape=()`` shares each mask over the batch)."""
    rate = check_rate(rate)
    n_samples = check_n_samples(n_samples)
    keys = jax.random.split(key, len(sizes))
    return tuple(dropout_mask(k, (n_samples, *tuple(batch_shape), int(n)), rate, dtype) for k, n in zip(keys, sizes))


@partial(jax.jit, static_argnames=("apply_fn", "sizes", "rate", "n_samples", "per_observation", "batch_size"))
def _pd_samples(apply_fn, params, x, key, *, sizes, rate, n_samples, per_observation, batch_size=None):
    batch = x.shape[:-1] if per_observation else ()
    keys = jax.random.split(key, n_samples)

    def one(k):
        ks = jax.random.split(k, len(sizes))
        masks = tuple(dropout_mask(kk, batch + (n,), rate, x.dtype) for kk, n in zip(ks, sizes))
        return apply_fn(params, x, masks)

    if batch_size is None or batch_size >= n_samples:
        return jax.vmap(one)(keys)
    return jax.lax.map(one, keys, batch_size=batch_size)  # vmapped chunks, scanned: bounded memory


def permanent_dropout_samples(
    apply_fn: Callable,
    params,
    x,
    key,
    *,
    sizes: Sequence[int],
    rate: float,
    n_samples: int,
    per_observation: bool = False,
    batch_size: int | None = None,
):
    """``n_samples`` permanent-dropout predictions ``[n_samples, *apply_fn(...).shape]``.

    ``apply_fn(params, x, masks)`` must be a hashable (module-level) function; ``sizes`` lists
    the widths of the dropout sites; sample ``s`` uses masks drawn from ``split(key, N)[s]``.
    All samples are evaluated by ``jax.vmap`` in one jitted call; with ``batch_size`` the samples
    are vmapped in chunks of that size scanned by ``lax.map`` (same values, bounded memory,
    still one call).
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    rate = check_rate(rate)
    n_samples = check_n_samples(n_samples)
    x = jnp.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have a feature axis [..., n_in]")
    return _pd_samples(
        apply_fn, params, x, key, sizes=tuple(int(s) for s in sizes), rate=rate, n_samples=n_samples,
        per_observation=bool(per_observation), batch_size=batch_size,
    )


# ---------------------------------------------------------------------------------------------
# Predictive summaries


def predictive_summary(samples, axis: int = 0) -> dict:
    """Mean, std (``ddof=0`` as CANDLE's ``infer.py``), min, max and N over the sample axis."""
    s = np.asarray(samples, np.float64)
    n = s.shape[axis]
    check_n_samples(n, "number of samples")
    return {
        "N": n,
        "mean": s.mean(axis),
        "std": s.std(axis),
        "min": s.min(axis),
        "max": s.max(axis),
    }


def summary_tsv(samples, sample_ids=None, *, prefix: str = "Pred", fmt: str = "%.4f") -> str:
    """Tab-separated table ``Sample N PredMean PredStd PredMin PredMax`` (one row per
    observation) of ``samples [N, K]`` (or ``[N, K, 1]``), like CANDLE Combo's ``infer.py``."""
    s = np.asarray(samples, np.float64)
    if s.ndim == 3 and s.shape[-1] == 1:
        s = s[..., 0]
    if s.ndim != 2:
        raise ValueError(f"samples must be [N, K] (N samples of K observations), got shape {s.shape}")
    summ = predictive_summary(s, axis=0)
    K = s.shape[1]
    ids = [str(i) for i in (range(K) if sample_ids is None else sample_ids)]
    if len(ids) != K:
        raise ValueError(f"sample_ids has {len(ids)} entries for {K} observations")
    buf = io.StringIO()
    buf.write("\t".join(["Sample", "N", f"{prefix}Mean", f"{prefix}Std", f"{prefix}Min", f"{prefix}Max"]) + "\n")
    for k in range(K):
        vals = [fmt % summ[c][k] for c in ("mean", "std", "min", "max")]
        buf.write("\t".join([ids[k], str(summ["N"]), *vals]) + "\n")
    return buf.getvalue()


def write_summary_tsv(path: os.PathLike, samples, sample_ids=None, **kw):
    """Write :func:`summary_tsv` atomically to ``path``."""
    return atomic_write_bytes(path, summary_tsv(samples, sample_ids, **kw).encode())


# ---------------------------------------------------------------------------------------------
# KS machinery


def ks_statistics(a, b) -> np.ndarray:
    """Two-sample KS statistics of rows: ``a [R, n]``, ``b [R, m]`` -> ``D [R]`` (vectorised)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n, m = a.shape[-1], b.shape[-1]
    both = np.concatenate([a, b], axis=-1)
    order = np.argsort(both, axis=-1, kind="stable")
    srt = np.take_along_axis(both, order, -1)
    step = np.where(order < n, 1.0 / n, -1.0 / m)
    cdf_diff = np.cumsum(step, axis=-1)
    # only compare at the last of tied values
    last = np.ones_like(srt, dtype=bool)
    last[..., :-1] = srt[..., 1:] != srt[..., :-1]
    return np.max(np.where(last, np.abs(cdf_diff), 0.0), axis=-1)


def ks_max_null(n: int, m: int, k: int, n_sim: int = 2000, seed: int = 0) -> np.ndarray:
    """``n_sim`` draws of ``max`` over ``k`` independent two-sample KS statistics (sizes ``n``,
    ``m``) under the null (both samples from one continuous distribution).  Cached."""
    out = _ks_max_null(int(n), int(m), int(k), int(n_sim), int(seed)).copy()
    return out


@functools.lru_cache(maxsize=16)
def _ks_max_null(n, m, k, n_sim, seed, chunk=20000):
    rng = np.random.default_rng(seed)
    total = n_sim * k
    ds = []
    for start in range(0, total, chunk):
        r = min(chunk, total - start)
        ds.append(ks_statistics(rng.random((r, n)), rng.random((r, m))))
    return np.concatenate(ds).reshape(n_sim, k).max(axis=1)


def _inside_prob(n: int, m: int, num: int, strict: bool) -> float:
    """P(every point of a uniformly random interleaving of n a's and m b's has
    ``|i m - j n| < num`` (strict) or ``<= num``), by dynamic programming over anti-diagonals
    with the sampling-without-replacement step probabilities (stable for any n, m)."""
    prev = np.ones(1)
    i_lo_prev = 0
    for k in range(1, n + m + 1):
        i = np.arange(max(0, k - m), min(k, n) + 1)
        j = k - i
        val = np.zeros(len(i))
        # from (i-1, j) by an 'a' step: probability (n-(i-1)) / (n-(i-1) + m-j)
        ia = i - 1
        ok = (ia >= i_lo_prev) & (ia < i_lo_prev + len(prev))
        src = prev[np.clip(ia - i_lo_prev, 0, len(prev) - 1)]
        val += np.where(ok, src * (n - ia) / np.maximum(n - ia + m - j, 1), 0.0)
        # from (i, j-1) by a 'b' step: probability (m-(j-1)) / (n-i + m-(j-1))
        jb = j - 1
        ok = (jb >= 0) & (i >= i_lo_prev) & (i < i_lo_prev + len(prev))
        src = prev[np.clip(i - i_lo_prev, 0, len(prev) - 1)]
        val += np.where(ok, src * (m - jb) / np.maximum(n - i + m - jb, 1), 0.0)
        dev = np.abs(i * m - j * n)
        val = np.where(dev < num if strict else dev <= num, val, 0.0)
        prev, i_lo_prev = val, int(i[0])
    return float(prev[0])


@functools.lru_cache(maxsize=4096)
def ks_2samp_tails(n: int, m: int, num: int) -> tuple[float, float]:
    """Exact null tails ``(P(D > d), P(D >= d))`` of the two-sample KS statistic ``D`` for sample
    sizes ``n``, ``m`` (continuous data) at ``d = num / (n m)`` (D always has this form)."""
    return 1.0 - _inside_prob(n, m, num, strict=False), 1.0 - _inside_prob(n, m, num, strict=True)


def ks_randomized_pvalues(d, n: int, m: int, seed: int = 0) -> np.ndarray:
    """Randomised exact p-values ``P(D > d) + U P(D = d)``, ``U ~ Uniform(0, 1)``: exactly
    Uniform(0, 1) under the null (the ordinary exact p-value ``P(D >= d)`` is discrete and
    conservative, which a uniformity test of many of them detects)."""
    d = np.asarray(d, np.float64)
    nums = np.rint(d * n * m).astype(np.int64)
    rng = np.random.default_rng(seed)
    u = rng.random(d.shape)
    out = np.empty(d.shape)
    for idx, num in np.ndenumerate(nums):
        gt, ge = ks_2samp_tails(int(n), int(m), int(num))
        out[idx] = gt + u[idx] * (ge - gt)
    return np.clip(out, 0.0, 1.0)


class KSAgreement(NamedTuple):
    """Result of :func:`ks_agreement` (numpy arrays and floats)."""

    statistics: np.ndarray  # [K] KS statistic per observation
    pvalues: np.ndarray  # [K] randomised exact p-values (Uniform(0, 1) under the null)
    pvalues_scipy: np.ndarray  # [K] ks_2samp p-values P(D >= d) (discrete, conservative)
    uniformity_statistic: float  # kstest(pvalues, 'uniform')
    uniformity_pvalue: float
    uniformity_pvalue_scipy: float  # kstest(pvalues_scipy, 'uniform') (anti-conservative for large K)
    excess_small_pvalue: float  # one-sided kstest(pvalues, 'uniform', alternative='greater'): too many small p
    max_statistic: float  # D_max
    max_index: int
    max_null_quantiles: dict  # {"50": ..., "95": ..., "99": ...} of the simulated null of D_max
    max_pvalue_sim: float  # P(D_max_null >= D_max), simulated
    max_pvalue_exact: float  # 1 - (1 - P(D >= D_max))^K, exact KS distribution
    max_null: np.ndarray  # the simulated null draws of D_max
    n: int
    m: int
    k: int

    def as_dict(self, with_arrays: bool = True) -> dict:
        d = {
            "uniformity_statistic": self.uniformity_statistic,
            "uniformity_pvalue": self.uniformity_pvalue,
            "uniformity_pvalue_scipy_pvalues": self.uniformity_pvalue_scipy,
            "excess_small_pvalue": self.excess_small_pvalue,
            "max_statistic": self.max_statistic,
            "max_index": self.max_index,
            "max_null_quantiles": self.max_null_quantiles,
            "max_pvalue_sim": self.max_pvalue_sim,
            "max_pvalue_exact": self.max_pvalue_exact,
            "n": self.n,
            "m": self.m,
            "k": self.k,
            "frac_p_below_0.05": float(np.mean(self.pvalues < 0.05)),
            "median_statistic": float(np.median(self.statistics)),
        }
        if with_arrays:
            d["statistics"] = [float(v) for v in self.statistics]
            d["pvalues"] = [float(v) for v in self.pvalues]
            d["pvalues_scipy"] = [float(v) for v in self.pvalues_scipy]
        return d


def ks_agreement(a, b, *, n_null: int = 2000, seed: int = 0) -> KSAgreement:
    """Compare ``a [N, K]`` with ``b [M, K]`` observation by observation (trailing singleton
    output axes are dropped).

    Per observation the KS statistic and exact p-value of ``scipy.stats.ks_2samp``, plus the
    randomised exact p-value (:func:`ks_randomized_pvalues`, seeded by ``seed``); then
    ``scipy.stats.kstest(pvalues, 'uniform')`` on the randomised p-values (the reported
    uniformity test), its one-sided version for an excess of small p-values (the direction a
    disagreement produces), and the two-sided test on scipy's p-values; then ``D_max`` against ``n_null`` simulated null draws of the
    maximum of ``K`` statistics and against the exact tail ``1 - (1 - P(D >= D_max))^K``.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must cover the same observations, got {a.shape[1]} and {b.shape[1]}")
    n = check_n_samples(a.shape[0], "number of samples in a")
    m = check_n_samples(b.shape[0], "number of samples in b")
    K = a.shape[1]
    if K < 1:
        raise ValueError("need at least one observation")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("samples contain NaN or inf")
    res = [stats.ks_2samp(a[:, k], b[:, k], method="exact") for k in range(K)]
    d = np.array([r.statistic for r in res])
    p_scipy = np.array([r.pvalue for r in res])
    p = ks_randomized_pvalues(d, n, m, seed)
    uni = stats.kstest(p, "uniform")
    uni_scipy = stats.kstest(p_scipy, "uniform")
    one_sided = stats.kstest(p, "uniform", alternative="greater")  # ECDF above the diagonal
    i_max = int(np.argmax(d))
    d_max = float(d[i_max])
    null = ks_max_null(n, m, K, n_null, seed)
    p_one = ks_2samp_tails(n, m, int(np.rint(d_max * n * m)))[1]
    p_exact = float(-np.expm1(K * np.log1p(-min(p_one, 1.0)))) if p_one < 1.0 else 1.0
    return KSAgreement(
        statistics=d,
        pvalues=p,
        pvalues_scipy=p_scipy,
        uniformity_statistic=float(uni.statistic),
        uniformity_pvalue=float(uni.pvalue),
        uniformity_pvalue_scipy=float(uni_scipy.pvalue),
        excess_small_pvalue=float(one_sided.pvalue),
        max_statistic=d_max,
        max_index=i_max,
        max_null_quantiles={q: float(np.quantile(null, int(q) / 100)) for q in ("50", "95", "99")},
        max_pvalue_sim=float((np.sum(null >= d_max - 1e-12) + 1) / (len(null) + 1)),
        max_pvalue_exact=p_exact,
        max_null=null,
        n=n,
        m=m,
        k=K,
    )
