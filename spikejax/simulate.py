"""The one time-stepping driver of spikejax.

Conventions (used by every neuron model and network in the library):

* a step function has the signature ``step(params, state, x, *, dt, key=None) -> (new_state, out)``
  with ``new_state`` first, so that it drops straight into ``lax.scan``;
* inputs are time-major, ``[T, ...]``; batches are added with ``jax.vmap`` and never assumed;
* time is in seconds (``dt`` too), voltages in volts or in dimensionless threshold units;
* randomness comes from an explicit ``key``; ``simulate`` splits it into one key per step.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["simulate", "Record"]

StepFn = Callable[..., tuple[Any, Any]]


class Record:
    """Named recording choices for :func:`simulate` (``record=`` also accepts a callable)."""

    OUT = "out"  # the step's output (spikes for neuron models)
    STATE = "state"  # the whole state at every step
    ALL = "all"  # (state, out) at every step
    NONE = None  # nothing: only the final state is returned


def _time_length(inputs) -> int:
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves:
        raise ValueError("simulate: inputs is empty; pass a time-major array [T, ...]")
    lengths = set()
    for leaf in leaves:
        if jnp.ndim(leaf) == 0:
            raise ValueError(
                f"simulate: inputs must be time-major with a leading time axis [T, ...]; got a scalar leaf"
            )
        lengths.add(int(jnp.shape(leaf)[0]))
    if len(lengths) != 1:
        raise ValueError(f"simulate: all input leaves must share the time axis length, got lengths {sorted(lengths)}")
    return lengths.pop()


def _recorder(record) -> Callable[[Any, Any], Any]:
    if callable(record):
        return record
    if record is None:
        return lambda state, out: None
    if record == Record.OUT:
        return lambda state, out: out
    if record == Record.STATE:
        return lambda state, out: state
    if record == Record.ALL:
        return lambda state, out: (state, out)
    if isinstance(record, (tuple, list)):
        fields = tuple(record)

        def rec(state, out):
            missing = [f for f in fields if not hasattr(state, f)]
            if missing:
                valid = getattr(state, "_fields", None)
                raise ValueError(f"simulate: record fields {missing} not in state; valid fields: {valid}")
            return out, {f: getattr(state, f) for f in fields}

        return rec
    raise ValueError(
        f"simulate: record must be 'out', 'state', 'all', None, a tuple of state field names or a "
        f"callable (state, out) -> pytree; got {record!r}"
    )


def simulate(
    step: StepFn,
    params,
    state0,
    inputs,
    *,
    dt: float = 1e-3,
    key: jax.Array | None = None,
    record: str | Sequence[str] | Callable | None = "out",
    remat: bool = False,
    unroll: int = 1,
):
    """Run ``step`` over the time-major ``inputs`` with ``lax.scan``.

    Args:
      step: ``step(params, state, x, *, dt, key=None) -> (new_state, out)``.
      params: parameter pytree passed unchanged to every step.
      state0: initial state pytree.
      inputs: pytree whose leaves all have a leading time axis ``T``.
      dt: time step in seconds.
      key: PRNG key, split into ``T`` per-step keys (``None`` for deterministic models).
      record: what is stored per step: ``"out"`` (default), ``"state"``, ``"all"``, ``None``
        (nothing, for long runs), a tuple of state field names (returns ``(out, {field: trace})``),
        or a callable ``(state, out) -> pytree``.
      remat: rematerialise each step in the backward pass (``jax.checkpoint``), trading compute
        for memory on long sequences.
      unroll: ``lax.scan`` unroll factor.

    Returns:
      ``(final_state, recorded)`` where ``recorded`` has a leading time axis (``None`` when
      ``record=None``).

    The driver is differentiable end to end and composes with ``jax.vmap`` for batches.
    """
    T = _time_length(inputs)
    rec = _recorder(record)
    if key is not None:
        keys = jax.random.split(key, T)
    else:
        keys = None

    def body(state, xs):
        x, k = xs
        if k is None:
            new_state, out = step(params, state, x, dt=dt)
        else:
            new_state, out = step(params, state, x, dt=dt, key=k)
        return new_state, rec(new_state, out)

    if remat:
        body = jax.checkpoint(body)
    return lax.scan(body, state0, (inputs, keys), unroll=unroll)
