"""SynOps and energy accounting for spiking inference.

A *synaptic operation* (SynOp) is one presynaptic spike delivered through one synapse (one
addition at the target: the unit of work of event-driven hardware).  A spike of neuron ``i``
costs its fan-out (``n_post`` for a dense layer; the number of synapses that actually
transmitted with stochastic, blank-out synapses).  Energy per classification is
``SynOps x (energy per SynOp)``; the seed slide (papers.md 2.5) uses 20 pJ/SynOp and reports
about 100k SynOps until the first output spike (2 uJ per classification) for eRBP on MNIST.

Decisions can be taken at the **first output spike** (the class whose unit spikes first;
SynOps counted up to and including that step) or **after n steps** (most output spikes over
the first n steps).  :func:`accuracy_vs_synops` gives both from one recorded run; the
``*_sums`` / :func:`summarize` pair accumulates them over batches inside ``jit``.

Shapes are time-major: spikes ``[T, B, n]``, per-step SynOps ``[T, B]``.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_positive

__all__ = [
    "DEFAULT_PJ_PER_SYNOP",
    "synops_per_step",
    "count_synops",
    "first_spike_steps",
    "synops_until_first_spike",
    "energy_joules",
    "mac_count",
    "decide",
    "DecisionSums",
    "decision_sums",
    "combine_sums",
    "summarize",
    "accuracy_vs_synops",
    "earliest_decision",
]

#: default energy per synaptic operation [pJ] (seed slide, papers.md 2.5)
DEFAULT_PJ_PER_SYNOP = 20.0


def synops_per_step(pre_spikes, fan_out=None, mask=None):
    """SynOps caused by the presynaptic spikes of one step (or of every step).

    Args:
      pre_spikes: ``[..., n_pre]`` spike counts (0/1) of the presynaptic population.
      fan_out: int or ``[n_pre]``: synapses per presynaptic neuron (dense layer: ``n_post``).
      mask: instead of ``fan_out``, the transmission coins ``[n_pre, n_post]`` (shared) or
        ``[B, n_pre, n_post]`` (per sample, with ``pre_spikes [B, n_pre]``): only transmitted
        events count.

    Returns ``[...]``: events per sample.
    """
    s = jnp.asarray(pre_spikes)
    if (fan_out is None) == (mask is None):
        raise ValueError("give exactly one of fan_out (synapses per presynaptic neuron) or mask (transmission coins)")
    if mask is not None:
        m = jnp.asarray(mask, s.dtype)
        if m.ndim == 2:
            if m.shape[0] != s.shape[-1]:
                raise ValueError(f"mask has {m.shape[0]} presynaptic rows, spikes have {s.shape[-1]} neurons")
            return s @ jnp.sum(m, axis=1)
        if m.ndim == 3 and s.ndim == 2 and m.shape[:2] == s.shape:
            return jnp.einsum("bi,bij->b", s, m)
        raise ValueError(f"mask must be [n_pre, n_post] or [B, n_pre, n_post] matching spikes {s.shape}, got {m.shape}")
    f = jnp.asarray(fan_out, s.dtype)
    if f.ndim == 0:
        return jnp.sum(s, axis=-1) * f
    if f.shape != (s.shape[-1],):
        raise ValueError(f"fan_out must be a scalar or [n_pre] = [{s.shape[-1]}], got shape {f.shape}")
    return s @ f


def count_synops(layer_spikes: Sequence, fan_outs: Sequence):
    """Per-step SynOps of a feedforward net: ``sum_l synops_per_step(spikes_l, fan_out_l)``.

    ``layer_spikes[l]`` is the ``[T, B, n_l]`` spike train of the population *sending* through
    connection ``l`` (input, hidden 1, ...), ``fan_outs[l]`` its fan-out.  Returns ``[T, B]``.
    """
    if len(layer_spikes) != len(fan_outs):
        raise ValueError(f"{len(layer_spikes)} spike trains but {len(fan_outs)} fan-outs")
    total = None
    for s, f in zip(layer_spikes, fan_outs):
        c = synops_per_step(s, fan_out=f)
        total = c if total is None else total + c
    return total


def first_spike_steps(out_spikes):
    """Step of the first output spike of each sample (any class), ``[T, B, C] -> int32 [B]``; ``T`` if none."""
    o = jnp.asarray(out_spikes)
    if o.ndim != 3:
        raise ValueError(f"out_spikes must be [T, B, C], got shape {o.shape}")
    T = o.shape[0]
    any_t = jnp.any(o > 0, axis=-1)  # [T, B]
    t = jnp.argmax(any_t, axis=0).astype(jnp.int32)
    return jnp.where(jnp.any(any_t, axis=0), t, jnp.full(t.shape, T, jnp.int32))


def synops_until_first_spike(synops_t, out_spikes):
    """SynOps up to and including the step of the first output spike, ``[B]`` (all of them if none)."""
    c = jnp.cumsum(jnp.asarray(synops_t), axis=0)  # [T, B]
    T = c.shape[0]
    t = jnp.minimum(first_spike_steps(out_spikes), T - 1)
    return jnp.take_along_axis(c, t[None, :], axis=0)[0]


def energy_joules(synops, pj_per_synop: float = DEFAULT_PJ_PER_SYNOP):
    """Energy [J] of ``synops`` synaptic operations at ``pj_per_synop`` picojoules each."""
    check_positive("pj_per_synop", pj_per_synop, allow_zero=True)
    return np.asarray(synops, dtype=np.float64) * float(pj_per_synop) * 1e-12


def mac_count(sizes: Sequence[int]) -> int:
    """Multiply-accumulates of one dense forward pass ``sizes[0] -> ... -> sizes[-1]`` (the ANN baseline)."""
    sizes = [int(s) for s in sizes]
    return int(sum(a * b for a, b in zip(sizes[:-1], sizes[1:])))


# --------------------------------------------------------------------------------------------
# Accuracy vs SynOps, accumulated over batches


class DecisionSums(NamedTuple):
    """Batch-summable counters. ``steps [S]``: decision times (number of steps seen)."""

    n: jax.Array  # samples
    correct_at: jax.Array  # [S] correct decisions after steps[s] steps
    synops_at: jax.Array  # [S] SynOps spent in the first steps[s] steps
    first_correct: jax.Array  # correct first-spike decisions
    first_decided: jax.Array  # samples with any output spike
    first_synops: jax.Array  # SynOps until the first output spike (window total if none)
    first_steps: jax.Array  # steps until the first output spike (T if none)


def decide(counts, tie=None, *, silent: int | None = -1):
    """Class with the most spikes, ties broken by the larger ``tie`` value (then the lowest index).

    ``counts``, ``tie``: ``[..., C]``.  A sample with no spike at all decodes to ``silent``
    (``None``: decide it from ``tie`` alone).
    """
    counts = jnp.asarray(counts)
    maxc = jnp.max(counts, axis=-1, keepdims=True)
    if tie is None:
        tie = jnp.zeros_like(counts)
    tie = jnp.asarray(tie, counts.dtype)
    score = jnp.where(counts == maxc, tie, jnp.full_like(tie, -jnp.inf))
    pred = jnp.argmax(score, axis=-1).astype(jnp.int32)
    if silent is None:
        return pred
    return jnp.where(maxc[..., 0] > 0, pred, jnp.full(pred.shape, silent, jnp.int32))


def decision_sums(out_spikes, synops_t, labels, steps: Sequence[int], tie_break=None, *, count_silent: bool = False) -> DecisionSums:
    """Counters for :func:`summarize` from one batch.

    Args:
      out_spikes: ``[T, B, C]`` output spikes.
      synops_t: ``[T, B]`` SynOps per step.
      labels: ``int [B]``.
      steps: decision times (1..T) for the "after n steps" decisions (static).
      tie_break: optional ``[T, B, C]`` per-step real values; ties in spike count are broken by
        their running sum (e.g. the output synaptic current).
      count_silent: when ``tie_break`` is given, also decide samples with no output spike from
        it (otherwise a silent output is a wrong answer).
    """
    o = jnp.asarray(out_spikes)
    s = jnp.asarray(synops_t)
    y = jnp.asarray(labels).astype(jnp.int32)
    T, B, C = o.shape
    steps = [int(k) for k in steps]
    if any(k < 1 or k > T for k in steps):
        raise ValueError(f"steps must lie in 1..{T}, got {steps}")
    cnt = jnp.cumsum(o, axis=0)
    csyn = jnp.cumsum(s, axis=0)
    ctie = jnp.cumsum(jnp.asarray(tie_break, o.dtype), axis=0) if tie_break is not None else jnp.zeros_like(cnt)
    idx = jnp.asarray([k - 1 for k in steps], jnp.int32)
    cnt_k, tie_k, syn_k = cnt[idx], ctie[idx], csyn[idx]  # [S, B, C], [S, B, C], [S, B]
    silent = None if (count_silent and tie_break is not None) else -1
    pred_k = decide(cnt_k, tie_k, silent=silent)
    correct_at = jnp.sum((pred_k == y[None, :]).astype(jnp.float32), axis=1)
    synops_at = jnp.sum(syn_k.astype(jnp.float32), axis=1)

    t1 = first_spike_steps(o)  # [B]
    tc = jnp.minimum(t1, T - 1)
    o_first = jnp.take_along_axis(o, tc[None, :, None], axis=0)[0]  # [B, C]
    tie_first = jnp.take_along_axis(ctie, tc[None, :, None], axis=0)[0]
    pred1 = decide(o_first, tie_first)
    decided = t1 < T
    syn1 = jnp.take_along_axis(csyn, tc[None, :], axis=0)[0]
    return DecisionSums(
        n=jnp.asarray(B, jnp.float32),
        correct_at=correct_at,
        synops_at=synops_at,
        first_correct=jnp.sum(((pred1 == y) & decided).astype(jnp.float32)),
        first_decided=jnp.sum(decided.astype(jnp.float32)),
        first_synops=jnp.sum(syn1.astype(jnp.float32)),
        first_steps=jnp.sum(t1.astype(jnp.float32)),
    )


def combine_sums(a: DecisionSums, b: DecisionSums) -> DecisionSums:
    return DecisionSums(*(x + y for x, y in zip(a, b)))


def summarize(sums: DecisionSums, steps: Sequence[int], dt: float | None = None, pj_per_synop: float = DEFAULT_PJ_PER_SYNOP) -> dict:
    """Turn :class:`DecisionSums` into plain numbers: accuracy and mean SynOps/energy per decision rule."""
    g = jax.device_get(sums)
    n = float(g.n)
    acc = (np.asarray(g.correct_at) / n).tolist()
    syn = (np.asarray(g.synops_at) / n).tolist()
    first_syn = float(g.first_synops) / n
    out = {
        "pj_per_synop": float(pj_per_synop),
        "after_steps": {
            "steps": [int(k) for k in steps],
            "time_s": [int(k) * dt for k in steps] if dt else None,
            "accuracy": acc,
            "mean_synops": syn,
            "energy_uJ": [float(e) * 1e6 for e in energy_joules(syn, pj_per_synop)],
        },
        "first_spike": {
            "accuracy": float(g.first_correct) / n,
            "fraction_decided": float(g.first_decided) / n,
            "mean_synops": first_syn,
            "mean_steps": float(g.first_steps) / n,
            "energy_uJ": float(energy_joules(first_syn, pj_per_synop)) * 1e6,
        },
        "n": int(round(n)),
    }
    out["error_below_5pct"] = earliest_decision(out, max_error=0.05)
    return out


def earliest_decision(summary: dict, max_error: float = 0.05) -> dict:
    """The cheapest fixed-length decision of a :func:`summarize` result whose error is below ``max_error``.

    Scans ``summary["after_steps"]`` in order of ``steps`` and returns that entry's ``steps``,
    ``time_s``, ``accuracy``, ``mean_synops`` and ``energy_uJ`` for the first one with
    ``1 - accuracy < max_error``, with ``reached=True``.  When no decision step gets there the same
    fields are present with ``reached=False`` and ``None`` values (so a results file's claim path
    always resolves and a table can print "not reached").  This is the
    seed's operating point ("~100k SynOps per classification at < 5% error"); unlike the decision at
    the first output spike it stays meaningful for networks with background noise, whose first
    output spike can come from a noise kick.
    """
    if not 0.0 < max_error < 1.0:
        raise ValueError(f"max_error must be in (0, 1), got {max_error}")
    a = summary["after_steps"]
    for i in sorted(range(len(a["steps"])), key=lambda j: a["steps"][j]):
        if 1.0 - a["accuracy"][i] < max_error:
            return {
                "reached": True,
                "max_error": float(max_error),
                "steps": int(a["steps"][i]),
                "time_s": None if a.get("time_s") is None else a["time_s"][i],
                "accuracy": float(a["accuracy"][i]),
                "mean_synops": float(a["mean_synops"][i]),
                "energy_uJ": float(a["energy_uJ"][i]),
            }
    return dict(reached=False, max_error=float(max_error), steps=None, time_s=None, accuracy=None,
                mean_synops=None, energy_uJ=None)


def accuracy_vs_synops(out_spikes, synops_t, labels, steps: Sequence[int] | None = None, tie_break=None, *, dt=None, pj_per_synop=DEFAULT_PJ_PER_SYNOP) -> dict:
    """Accuracy and SynOps (and energy) for decisions at the first output spike and after ``steps``.

    ``steps`` defaults to every step ``1..T``.  See :func:`decision_sums` for the arguments.
    """
    T = int(jnp.shape(out_spikes)[0])
    steps = list(range(1, T + 1)) if steps is None else [int(k) for k in steps]
    return summarize(decision_sums(out_spikes, synops_t, labels, steps, tie_break), steps, dt, pj_per_synop)
