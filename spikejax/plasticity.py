"""Three-factor plasticity: a general, local, online interface and two instances (eRBP, R-STDP).

A three-factor rule changes synapse ``i -> j`` (weights ``w [n_pre, n_post]``, row = presynaptic
neuron) by

    e_ij(t)  = filter_{tau_elig}[ sum_k A_k * pre_k,i(t) * post_k,j(t) ]   (eligibility, optional)
    dw_ij(t) = lr * sum_batch M(t) * e_ij(t)                               (third factor M)

* the **pre factors** ``pre_k`` are the presynaptic spikes (``"spike"``) or an exponential
  presynaptic trace (``"trace"``, time constant ``tau_pre``; ``dx/dt = -x/tau_pre + spikes``);
* the **post factors** ``post_k`` are the postsynaptic spikes, a postsynaptic trace
  (``tau_post``) or any other postsynaptic quantity handed in as ``post_value`` (e.g. the eRBP
  boxcar of the synaptic current);
* the **modulator** ``M`` is either one value per postsynaptic neuron (``modulation="post"``,
  shape ``[B, n_post]``: eRBP's dendritic error) or one per sample (``"global"``, shape ``[B]``:
  a reward or reward-prediction error);
* without eligibility (``tau_elig=None``) the product is applied at once; with it, the Hebbian
  term is low-pass filtered per synapse (``de/dt = -e/tau_elig + hebb``) and the modulator acts
  on ``e`` (the distal-reward problem, Izhikevich 2007; Florian 2007).

Every array carries a leading batch axis ``B`` (samples presented in parallel); the update is
summed over the batch, so ``B = 1`` is the pure online rule.  Without eligibility the update is a
matrix product ``pre^T @ (post * M)`` per term.  Stochastic (blank-out) synapses pass ``mask``,
the very coins that gated transmission (``[n_pre, n_post]`` shared by the batch, or
``[B, n_pre, n_post]``), so a synapse whose event was blanked out does not learn from it.

Instances: :func:`erbp_rule` (papers.md 2.1: pre spike x boxcar(I_syn) x dendritic error) and
:func:`rstdp_rule` (pair-based STDP into an eligibility trace, gated by a global reward).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from ._checks import check_choice, check_positive

__all__ = [
    "HebbTerm",
    "TraceState",
    "ThreeFactorRule",
    "boxcar_gate",
    "check_gate",
    "erbp_rule",
    "rstdp_rule",
    "apply_update",
]

Array = jax.Array

_PRE = ("spike", "trace")
_POST = ("spike", "trace", "value")


class HebbTerm(NamedTuple):
    """One ``amplitude * pre x post`` product of a rule (pre: 'spike'|'trace'; post: 'spike'|'trace'|'value')."""

    pre: str
    post: str
    amplitude: float = 1.0


class TraceState(NamedTuple):
    """Rule state: presynaptic trace ``[B, n_pre]``, postsynaptic trace ``[B, n_post]``, eligibility
    ``[B, n_pre, n_post]`` (an empty ``[0]`` array where the rule does not use it)."""

    pre: Array
    post: Array
    elig: Array


def check_gate(gate) -> tuple[float, float]:
    """Validate a boxcar gate ``(lower, upper)``; ``ValueError`` unless ``lower < upper``."""
    try:
        lo, hi = (float(g) for g in gate)
    except (TypeError, ValueError):
        raise ValueError(f"gate must be a pair (lower, upper) of numbers, got {gate!r}") from None
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"gate bounds must be numbers, got {gate!r}")
    if not lo < hi:
        raise ValueError(f"gate lower bound ({lo}) must be below the upper bound ({hi})")
    return lo, hi


def boxcar_gate(x, lower, upper):
    """``1[lower < x < upper]`` in the dtype of ``x``: eRBP's boxcar derivative (papers.md 2.1)."""
    x = jnp.asarray(x)
    return ((x > lower) & (x < upper)).astype(x.dtype)


def _as_batch(name, a, n=None):
    a = jnp.asarray(a)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must be [n] or [batch, n], got shape {a.shape}")
    if n is not None and a.shape[1] != n:
        raise ValueError(f"{name} has {a.shape[1]} neurons, expected {n}")
    return a


@dataclasses.dataclass(frozen=True)
class ThreeFactorRule:
    """A local three-factor rule (module docstring).  Use :meth:`init` then :meth:`step` each time step.

    Args:
      terms: the Hebbian products (:class:`HebbTerm`).
      lr: learning rate (multiplies every update).
      tau_pre, tau_post: trace time constants [s] (needed when a term uses a trace).
      tau_elig: eligibility time constant [s]; ``None`` applies the product at once.
      modulation: ``"post"`` (modulator ``[B, n_post]``) or ``"global"`` (``[B]``).
    """

    terms: tuple = (HebbTerm("spike", "value"),)
    lr: float = 1e-3
    tau_pre: float | None = None
    tau_post: float | None = None
    tau_elig: float | None = None
    modulation: str = "post"

    def __post_init__(self):
        object.__setattr__(self, "terms", tuple(HebbTerm(*t) for t in self.terms))
        if not self.terms:
            raise ValueError("terms must hold at least one HebbTerm")
        for t in self.terms:
            check_choice("HebbTerm.pre", t.pre, set(_PRE))
            check_choice("HebbTerm.post", t.post, set(_POST))
        check_choice("modulation", self.modulation, {"post", "global"})
        if any(t.pre == "trace" for t in self.terms):
            if self.tau_pre is None:
                raise ValueError("tau_pre is required when a term uses the presynaptic trace")
        if any(t.post == "trace" for t in self.terms):
            if self.tau_post is None:
                raise ValueError("tau_post is required when a term uses the postsynaptic trace")
        for name in ("tau_pre", "tau_post", "tau_elig"):
            v = getattr(self, name)
            if v is not None:
                check_positive(name, v)

    @property
    def uses_pre_trace(self) -> bool:
        return any(t.pre == "trace" for t in self.terms)

    @property
    def uses_post_trace(self) -> bool:
        return any(t.post == "trace" for t in self.terms)

    def init(self, n_pre: int, n_post: int, batch: int = 1, dtype=jnp.float32) -> TraceState:
        z = jnp.zeros((0,), dtype)
        return TraceState(
            jnp.zeros((batch, n_pre), dtype) if self.uses_pre_trace else z,
            jnp.zeros((batch, n_post), dtype) if self.uses_post_trace else z,
            jnp.zeros((batch, n_pre, n_post), dtype) if self.tau_elig is not None else z,
        )

    def step(self, state: TraceState, pre_spikes, post_spikes=None, modulator=None, *, dt, post_value=None, mask=None):
        """Advance the traces by ``dt`` and return ``(new_state, dw)``; ``dw [n_pre, n_post]`` is summed
        over the batch.  ``modulator=None`` means ``M = 1``.  ``mask``: transmission coins (see module doc)."""
        pre_s = _as_batch("pre_spikes", pre_spikes)
        dtype = pre_s.dtype
        B, n_pre = pre_s.shape
        need_post_spikes = any(t.post in ("spike", "trace") for t in self.terms)
        post_s = _as_batch("post_spikes", post_spikes) if post_spikes is not None else None
        if need_post_spikes and post_s is None:
            raise ValueError("post_spikes are required by a term using the postsynaptic spike or trace")
        pv = _as_batch("post_value", post_value) if post_value is not None else None
        if any(t.post == "value" for t in self.terms) and pv is None:
            raise ValueError("post_value is required by a term with post='value'")
        n_post = (post_s if post_s is not None else pv).shape[1]

        # traces: presynaptic trace includes this step's spikes (LTP pairs with simultaneous
        # spikes); the postsynaptic trace used for LTD excludes them (no double count).
        x_pre, x_post = state.pre, state.post
        if self.uses_pre_trace:
            x_pre = x_pre * jnp.exp(-dt / self.tau_pre).astype(dtype) + pre_s
        post_decayed = None
        if self.uses_post_trace:
            post_decayed = x_post * jnp.exp(-dt / self.tau_post).astype(dtype)
            x_post = post_decayed + post_s

        def pre_factor(t):
            return pre_s if t.pre == "spike" else x_pre

        def post_factor(t):
            return {"spike": post_s, "trace": post_decayed, "value": pv}[t.post]

        if modulator is None:
            M = None
        elif self.modulation == "post":
            M = _as_batch("modulator", modulator, n_post)
        else:
            M = jnp.asarray(modulator, dtype)
            if M.ndim == 0:
                M = jnp.broadcast_to(M, (B,))
            if M.shape != (B,):
                raise ValueError(f"a global modulator must be a scalar or [batch] = [{B}], got shape {M.shape}")

        lr = jnp.asarray(self.lr, dtype)
        if mask is not None:
            mask = jnp.asarray(mask, dtype)
            if mask.shape not in ((n_pre, n_post), (B, n_pre, n_post)):
                raise ValueError(f"mask must be [n_pre, n_post] or [batch, n_pre, n_post], got shape {mask.shape}")

        if self.tau_elig is None:
            dw = jnp.zeros((n_pre, n_post), dtype)
            for t in self.terms:
                post = post_factor(t)
                if M is not None:
                    post = post * (M if self.modulation == "post" else M[:, None])
                a = jnp.asarray(t.amplitude, dtype)
                if mask is None or mask.ndim == 2:
                    term = pre_factor(t).T @ post  # [n_pre, B] @ [B, n_post]: sum over the batch
                    dw = dw + a * (term if mask is None else term * mask)
                else:
                    dw = dw + a * jnp.einsum("bi,bj,bij->ij", pre_factor(t), post, mask)
            return TraceState(x_pre, x_post, state.elig), lr * dw

        hebb = jnp.zeros((B, n_pre, n_post), dtype)
        for t in self.terms:
            hebb = hebb + jnp.asarray(t.amplitude, dtype) * (pre_factor(t)[:, :, None] * post_factor(t)[:, None, :])
        if mask is not None:
            hebb = hebb * (mask[None] if mask.ndim == 2 else mask)
        elig = state.elig * jnp.exp(-dt / self.tau_elig).astype(dtype) + hebb
        if M is None:
            dw = jnp.sum(elig, axis=0)
        elif self.modulation == "post":
            dw = jnp.einsum("bij,bj->ij", elig, M)
        else:
            dw = jnp.einsum("bij,b->ij", elig, M)
        return TraceState(x_pre, x_post, elig), lr * dw

    def modulate(self, state: TraceState, modulator):
        """``lr * sum_b M_b e_b``: the update released by a delayed modulator (e.g. an end-of-trial
        reward) acting on the current eligibility, ``[n_pre, n_post]``."""
        if self.tau_elig is None:
            raise ValueError("modulate needs an eligibility trace (tau_elig is None)")
        e = state.elig
        M = jnp.asarray(modulator, e.dtype)
        if self.modulation == "global":
            M = jnp.broadcast_to(M, (e.shape[0],)) if M.ndim == 0 else M
            if M.shape != (e.shape[0],):
                raise ValueError(f"a global modulator must be a scalar or [batch] = [{e.shape[0]}], got shape {M.shape}")
            return jnp.asarray(self.lr, e.dtype) * jnp.einsum("bij,b->ij", e, M)
        M = _as_batch("modulator", M, e.shape[2])
        return jnp.asarray(self.lr, e.dtype) * jnp.einsum("bij,bj->ij", e, M)


def apply_update(w, dw, w_min=None, w_max=None):
    """``w + dw``, optionally clipped to ``[w_min, w_max]`` (hard bounds keep weights' sign)."""
    w = w + dw
    if w_min is not None or w_max is not None:
        w = jnp.clip(w, w_min, w_max)
    return w


def erbp_rule(lr: float = 6e-4) -> ThreeFactorRule:
    """eRBP (papers.md 2.1) as a three-factor rule: on each presynaptic spike,
    ``dw_ij = lr * U_j * 1[g_low < I_syn,j < g_high]``.

    Pre factor: the spike; post factor: ``post_value`` = :func:`boxcar_gate` of the postsynaptic
    synaptic current; modulator: the dendritic (error) compartment ``U`` per postsynaptic neuron.
    No traces and no eligibility: the update is one matrix product per step.
    """
    return ThreeFactorRule(terms=(HebbTerm("spike", "value", 1.0),), lr=lr, modulation="post")


def rstdp_rule(
    lr: float = 1e-2,
    a_plus: float = 1.0,
    a_minus: float = 1.0,
    tau_plus: float = 20e-3,
    tau_minus: float = 20e-3,
    tau_elig: float = 0.2,
) -> ThreeFactorRule:
    """Reward-modulated pair-based STDP (Florian 2007; Izhikevich 2007).

    ``hebb_ij = a_plus x_pre,i s_post,j - a_minus s_pre,i x_post,j`` (traces ``tau_plus``,
    ``tau_minus``) feeds an eligibility trace ``tau_elig``; a global reward ``r`` (per sample)
    turns it into ``dw = lr * r * e``, either every step (:meth:`ThreeFactorRule.step`) or at the end
    of a trial (:meth:`ThreeFactorRule.modulate`).
    """
    for name, v in (("a_plus", a_plus), ("a_minus", a_minus)):
        check_positive(name, v, allow_zero=True)
    return ThreeFactorRule(
        terms=(HebbTerm("trace", "spike", a_plus), HebbTerm("spike", "trace", -a_minus)),
        lr=lr,
        tau_pre=tau_plus,
        tau_post=tau_minus,
        tau_elig=tau_elig,
        modulation="global",
    )


def cosine(a: Sequence | Array, b: Sequence | Array) -> Array:
    """Cosine similarity of two pytrees of arrays, flattened and concatenated."""
    fa = jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(a)])
    fb = jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(b)])
    return jnp.vdot(fa, fb) / (jnp.linalg.norm(fa) * jnp.linalg.norm(fb) + jnp.asarray(1e-30, fa.dtype))


__all__.append("cosine")
