"""Hyperparameter and architecture sweeps as one compiled program, sharded over every device.

A *sweep* trains ``K`` configurations of one training function at once: the function takes a
dict of scalar hyperparameters and returns a pytree of metrics, and :func:`sweep` runs it as
``jit(shard_map(vmap(fn)))`` over a dict of length-``K`` arrays.  The ``K`` axis is split over a
1-D device mesh, so the same call runs unchanged on one CPU, on several GPUs, or on several hosts
after ``jax.distributed.initialize()`` (``jax.devices()`` then lists every host's devices; every
process calls ``sweep`` with the same ``hparams``, runs its own share, and gets all metrics back
through an all-gather).  Configurations never communicate.

What it buys: one compilation for all ``K`` configurations, and on an accelerator a device that
a single small network leaves mostly idle is filled with ``K`` of them.  It does not reduce the
arithmetic: on one CPU device, where XLA already runs one small network close to its peak rate,
expect about the sequential throughput.  On a multi-core CPU, split it into one XLA device per
core before JAX starts (``jax.config.update("jax_num_cpu_devices", n_cores)``, or
``XLA_FLAGS=--xla_force_host_platform_device_count=n_cores``): the sweep then runs one shard per
core in parallel (``benchmarks/bench_sweep.py --host-devices N`` measures both; BENCHMARKS.md).

Building blocks
---------------
* Grids: :func:`grid` (cartesian product), :func:`zip_grid` (axes of equal length, paired),
  :func:`stack_configs` (list of dicts -> dict of arrays), :func:`unstack_configs` and
  :func:`check_hparams`.  Empty, ragged or non-numeric grids raise ``ValueError`` naming the
  problem.  String-valued choices (optimizer name, neuron model) change the program: run one
  sweep per choice.
* :func:`sweep`: run the vmapped, sharded program; ``K`` is padded to a multiple of the device
  count (the padding repeats the last configuration and is dropped again); ``chunk`` bounds the
  number of configurations per program call (memory).
* Tables: :func:`sweep_table` (config -> metrics rows) and :func:`write_sweep` (atomic JSON).
* :func:`data_parallel`: ordinary (non-swept) training with the *batch* axis sharded over all
  devices; the model code does not change.
* Architecture sweeps by masking: :func:`width_masks` and :func:`masked_mlp` run a maximal
  network in which hidden unit ``j`` of a layer of active width ``h`` is silent for ``j >= h``:
  its input current is zeroed (the membrane stays at rest, it never spikes) and its output is
  zeroed, so it receives exactly zero gradient.  Different widths then share one vmapped
  computation.  :func:`init_masked_mlp` rescales the initial weights so that the active
  sub-network has exactly the He-uniform initial distribution of a network of that width.
* :class:`MLPTask`: a ready-made sweepable task: train a rate-coded ``n_in - hidden... - n_out``
  LIF network (membrane readout) with Adam + cosine decay, then report test accuracy, loss,
  firing rates and synaptic operations (SynOps) per classification.  Hyperparameters it accepts:
  ``lr``, ``slope`` (fast-sigmoid surrogate), ``dropout``, ``tau_mem``, ``v_th``, ``seed``
  (initial weights, dropout masks), ``data_seed`` (mini-batch order and input spike trains;
  defaults to ``seed``; fix it to give every configuration the same data stream), the hidden
  widths ``width`` (one hidden layer) or ``width0``, ``width1``, ..., the connection densities
  ``density`` / ``density_out`` (magnitude pruning after dense training, then fine-tuning with
  the masks fixed: ``finetune_steps``, ``prune_rounds``, ``finetune_lr``) and a hidden
  firing-rate penalty ``spike_reg`` / ``finetune_spike_reg``.
* Connection density by masking: :func:`magnitude_mask` / :func:`prune_mlp` keep exactly the
  fraction ``d`` of a layer's active synapses with the largest ``|w|`` (``d`` and the widths may
  be traced, so every (width, density) of a sweep shares one program); :func:`masked_mlp` takes
  the ``[n_in, n_out]`` connection masks and uses ``w * mask`` (pruned synapses carry nothing and
  get zero gradient).  :meth:`MLPTask.pretrain` / :meth:`MLPTask.finetune` split the dense
  training from the pruning + fine-tuning, so a widths x densities sweep trains each width's
  dense network once.

SynOps (synaptic operations per classification) = sum over presynaptic units of (number of
spikes emitted) x (number of existing synapses of that unit: active and not pruned), counting
the rate-coded input spikes into the first hidden layer and the hidden spikes into the next layer
(the readout is the last layer's fan-in).  For a dense network this is spikes x active fan-out.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .data import epoch_batches, take_batch
from .encoding import rate
from .experiment import atomic_write_json
from .neurons import LIF, LIFParams
from .nn import Dense, init_mlp
from .simulate import simulate
from .surrogate import fast_sigmoid

__all__ = [
    "grid",
    "zip_grid",
    "stack_configs",
    "unstack_configs",
    "check_hparams",
    "sweep_mesh",
    "sweep",
    "sweep_table",
    "write_sweep",
    "data_parallel",
    "width_masks",
    "init_masked_mlp",
    "masked_mlp",
    "n_kept",
    "magnitude_mask",
    "active_connections",
    "prune_mlp",
    "MLPTask",
]

SWEEP_AXIS = "k"


# ---------------------------------------------------------------------------------------------
# Grids


def _axis_values(name: str, values) -> np.ndarray:
    if isinstance(values, (str, bytes)):
        raise ValueError(f"grid axis {name!r}: expected a sequence of numbers, got the string {values!r}")
    try:
        seq = list(values)
    except TypeError:
        raise ValueError(f"grid axis {name!r}: expected a sequence of values, got {values!r}") from None
    if len(seq) == 0:
        raise ValueError(f"grid axis {name!r} is empty: every axis needs at least one value")
    for v in seq:
        if np.ndim(v) != 0:
            raise ValueError(
                f"grid axis {name!r} is ragged or nested: every value must be a scalar, got {v!r}"
            )
    try:
        arr = np.asarray(seq)
    except ValueError as e:  # pragma: no cover - ragged input caught above
        raise ValueError(f"grid axis {name!r} is ragged: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"grid axis {name!r} must hold numbers or booleans (a vmapped sweep varies array values), "
            f"got {seq!r}; for choices that change the program (e.g. an optimizer name) run one sweep per choice"
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"grid axis {name!r} holds non-finite values: {seq!r}")
    return _canonical_dtype(arr)


def _canonical_dtype(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.max() > np.iinfo(np.int32).max or arr.min() < np.iinfo(np.int32).min):
            raise ValueError(f"integer hyperparameters must fit in int32, got range [{arr.min()}, {arr.max()}]")
        return arr.astype(np.int32)
    return arr.astype(bool)


def grid(axes: Mapping[str, Sequence] | None = None, **more) -> dict[str, np.ndarray]:
    """Cartesian product of named axes: ``grid(lr=[1e-3, 1e-2], seed=[0, 1, 2])`` -> 6 configs.

    Returns a dict of 1-D arrays of equal length ``K = prod(len(axis))`` (float32 / int32 / bool);
    the last axis varies fastest (``itertools.product`` order).  Raises ``ValueError`` for no axes,
    an empty axis, nested / ragged values, or non-numeric values (naming the axis).
    """
    spec = dict(axes or {})
    for k, v in more.items():
        if k in spec:
            raise ValueError(f"grid axis {k!r} given twice")
        spec[k] = v
    if not spec:
        raise ValueError("grid: no axes given; pass at least one name=[values...]")
    vals = {k: _axis_values(k, v) for k, v in spec.items()}
    idx = np.array(list(itertools.product(*(range(len(v)) for v in vals.values()))), dtype=np.int64)
    return {k: v[idx[:, i]] for i, (k, v) in enumerate(vals.items())}


def zip_grid(axes: Mapping[str, Sequence] | None = None, **more) -> dict[str, np.ndarray]:
    """Axes paired element by element (all of the same length): ``zip_grid(lr=[a, b], slope=[c, d])``."""
    spec = dict(axes or {})
    spec.update(more)
    if not spec:
        raise ValueError("zip_grid: no axes given")
    vals = {k: _axis_values(k, v) for k, v in spec.items()}
    lengths = {k: len(v) for k, v in vals.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"zip_grid: ragged axes, lengths differ: {lengths}")
    return vals


def stack_configs(configs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """A list of ``{name: scalar}`` dicts (all with the same keys) -> dict of length-K arrays."""
    configs = list(configs)
    if not configs:
        raise ValueError("stack_configs: the list of configurations is empty")
    keys = list(configs[0])
    if not keys:
        raise ValueError("stack_configs: configuration 0 has no hyperparameters")
    for i, c in enumerate(configs):
        if set(c) != set(keys):
            missing = sorted(set(keys) - set(c))
            extra = sorted(set(c) - set(keys))
            raise ValueError(
                f"stack_configs: configuration {i} has different keys from configuration 0 "
                f"(missing {missing}, extra {extra})"
            )
    return {k: _axis_values(k, [c[k] for c in configs]) for k in keys}


def check_hparams(hparams) -> int:
    """Validate a pytree of hyperparameter arrays sharing a leading axis ``K``; return ``K``."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(hparams)
    if not leaves:
        raise ValueError("hyperparameters are empty: pass e.g. grid(lr=[...])")
    lengths = {}
    for path, leaf in leaves:
        name = jax.tree_util.keystr(path)
        if np.ndim(leaf) == 0:
            raise ValueError(f"hyperparameter {name} is a scalar; every leaf needs a leading configuration axis K")
        lengths[name] = int(np.shape(leaf)[0])
    if len(set(lengths.values())) != 1:
        raise ValueError(f"ragged hyperparameters: leading lengths differ: {lengths}")
    K = next(iter(lengths.values()))
    if K == 0:
        raise ValueError("hyperparameters hold zero configurations (K = 0)")
    return K


def unstack_configs(hparams) -> list:
    """Inverse of :func:`stack_configs`: the ``K`` configurations (scalar leaves as Python numbers)."""
    K = check_hparams(hparams)

    def pick(a, i):
        v = np.asarray(a)[i]
        return v.item() if v.ndim == 0 else v

    return [jax.tree_util.tree_map(lambda a, i=i: pick(a, i), hparams) for i in range(K)]


# ---------------------------------------------------------------------------------------------
# Running a sweep


def sweep_mesh(devices: Sequence | None = None, axis_name: str = SWEEP_AXIS) -> Mesh:
    """1-D mesh over ``devices`` (default: every device of every process, ``jax.devices()``)."""
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("sweep_mesh: no devices")
    return Mesh(np.asarray(devs, dtype=object), (axis_name,))


@functools.lru_cache(maxsize=64)
def _compiled(fn: Callable, mesh: Mesh, axis_name: str, n_shared: int):
    body = jax.vmap(fn, in_axes=(0,) + (None,) * n_shared)
    if mesh.size == 1 and jax.process_count() == 1:
        return jax.jit(body)
    specs = (P(axis_name),) + (P(),) * n_shared
    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=P(axis_name), check_vma=False))


def _global_array(x: np.ndarray, sharding: NamedSharding):
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _gather(tree):
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def sweep(
    fn: Callable[..., Any],
    hparams,
    *shared,
    mesh: Mesh | None = None,
    devices: Sequence | None = None,
    chunk: int | None = None,
) -> Any:
    """Run ``fn`` on every configuration of ``hparams`` as one vmapped, device-sharded program.

    Args:
      fn: ``fn(hp, *shared) -> metrics`` where ``hp`` has the structure of ``hparams`` with
        scalar leaves (traced); ``metrics`` is any pytree of arrays.  ``fn`` must be hashable (a
        function, or an identity-hashed object like :class:`MLPTask`): the compiled program is
        cached per ``fn``.
      hparams: pytree of arrays with a shared leading length ``K`` (e.g. from :func:`grid`).
      shared: arguments common to every configuration (data sets), passed unbatched and
        replicated on every device.  Pass large arrays this way rather than closing over them,
        so they are program inputs and not constants baked into the compiled program.
      mesh / devices: where to run (default: a 1-D mesh over ``jax.devices()``).
      chunk: at most this many configurations per program call (rounded up to a multiple of the
        device count); the default runs all ``K`` at once.

    Returns:
      ``metrics`` as numpy arrays with a leading axis ``K`` (configuration order preserved).
    """
    K = check_hparams(hparams)
    hparams = jax.tree_util.tree_map(lambda a: _canonical_dtype(np.asarray(a)), hparams)
    if mesh is None:
        mesh = sweep_mesh(devices)
    elif devices is not None:
        raise ValueError("pass either mesh or devices, not both")
    if len(mesh.axis_names) != 1:
        raise ValueError(f"sweep needs a 1-D mesh, got axes {mesh.axis_names}")
    axis = mesh.axis_names[0]
    n_dev = mesh.size
    per_call = K if chunk is None else int(chunk)
    if per_call <= 0:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    per_call = -(-min(per_call, K) // n_dev) * n_dev
    n_calls = -(-K // per_call)
    total = n_calls * per_call
    # pad by repeating the last configuration (valid hyperparameters), dropped afterwards
    padded = jax.tree_util.tree_map(lambda a: np.concatenate([a, np.repeat(a[-1:], total - K, axis=0)]) if total > K else a, hparams)
    run = _compiled(fn, mesh, axis, len(shared))
    sharding = NamedSharding(mesh, P(axis))
    if n_dev > 1 or jax.process_count() > 1:
        rep = NamedSharding(mesh, P())
        shared = tuple(
            jax.tree_util.tree_map(lambda a: a if isinstance(a, jax.Array) and a.sharding == rep else _global_array(np.asarray(a), rep), x)
            for x in shared
        )
    outs = []
    for c in range(n_calls):
        part = jax.tree_util.tree_map(lambda a: np.ascontiguousarray(a[c * per_call : (c + 1) * per_call]), padded)
        if n_dev > 1 or jax.process_count() > 1:
            part = jax.tree_util.tree_map(lambda a: _global_array(a, sharding), part)
        outs.append(_gather(run(part, *shared)))
    out = jax.tree_util.tree_map(lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=0)[:K], *outs)
    return out


# ---------------------------------------------------------------------------------------------
# Results tables


def _py(x):
    x = np.asarray(x)
    return x.item() if x.ndim == 0 else x.tolist()


def sweep_table(hparams, metrics) -> list[dict]:
    """Rows ``{"config": {name: value}, "metrics": {name: value}}``, one per configuration."""
    K = check_hparams(hparams)
    Km = check_hparams(metrics)
    if Km != K:
        raise ValueError(f"metrics hold {Km} configurations but hparams hold {K}")

    def flat(tree):
        leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
        return [(jax.tree_util.keystr(p).strip("[]'\""), np.asarray(v)) for p, v in leaves]

    hp, mt = flat(hparams), flat(metrics)
    return [{"config": {k: _py(v[i]) for k, v in hp}, "metrics": {k: _py(v[i]) for k, v in mt}} for i in range(K)]


def write_sweep(path, hparams, metrics, **meta):
    """Write ``{"meta": meta, "n_configs": K, "rows": sweep_table(...)}`` atomically as JSON."""
    rows = sweep_table(hparams, metrics)
    return atomic_write_json(path, {"meta": meta, "n_configs": len(rows), "rows": rows})


# ---------------------------------------------------------------------------------------------
# Data-parallel ordinary training


def data_parallel(
    step: Callable,
    batch_argnums: int | Sequence[int] = 1,
    *,
    mesh: Mesh | None = None,
    devices: Sequence | None = None,
    axis_name: str = "data",
    donate_argnums: int | Sequence[int] = (),
):
    """Jit ``step`` with the leading (batch) axis of the ``batch_argnums`` arguments sharded over
    every device and all other arguments and all outputs replicated.

    The model code is unchanged: XLA partitions the computation and inserts the gradient
    all-reduce (a batch mean becomes a sum of per-device partial sums).  The batch size must be a
    multiple of the number of devices.  Multi-host: pass batch arguments as global ``jax.Array``s
    (e.g. ``jax.make_array_from_process_local_data(sharding, local_batch)``); they are used as is.
    """
    if mesh is None:
        mesh = sweep_mesh(devices, axis_name)
    elif devices is not None:
        raise ValueError("pass either mesh or devices, not both")
    axis = mesh.axis_names[0]
    bnums = (batch_argnums,) if isinstance(batch_argnums, int) else tuple(batch_argnums)
    rep = NamedSharding(mesh, P())
    shard = NamedSharding(mesh, P(axis))
    cache: dict[int, Callable] = {}

    def wrapped(*args):
        n = len(args)
        for b in bnums:
            if not -n <= b < n:
                raise ValueError(f"batch_argnums {b} out of range for {n} arguments")
        bset = {b % n for b in bnums}
        for b in bset:
            for leaf in jax.tree_util.tree_leaves(args[b]):
                size = np.shape(leaf)[0] if np.ndim(leaf) else None
                if size is None or size % mesh.size:
                    raise ValueError(
                        f"argument {b}: batch axis of size {size} must be a multiple of the {mesh.size} devices"
                    )
        if n not in cache:
            in_sh = tuple(shard if i in bset else rep for i in range(n))
            cache[n] = jax.jit(step, in_shardings=in_sh, out_shardings=rep, donate_argnums=donate_argnums)

        def place(a, sh):
            if isinstance(a, jax.Array) and not a.is_fully_addressable:
                return a
            return jax.device_put(a, sh)

        placed = tuple(jax.tree_util.tree_map(lambda a, sh=(shard if i in bset else rep): place(a, sh), x) for i, x in enumerate(args))
        return cache[n](*placed)

    wrapped.mesh = mesh  # type: ignore[attr-defined]
    return wrapped


# ---------------------------------------------------------------------------------------------
# Architecture sweeps by masking hidden units


def width_masks(widths, max_width: int, dtype=jnp.float32):
    """``[..., max_width]`` 0/1 masks whose first ``widths`` units are active (widths may be traced)."""
    if not isinstance(max_width, (int, np.integer)) or max_width <= 0:
        raise ValueError(f"max_width must be a positive int, got {max_width!r}")
    w = jnp.asarray(widths)
    if not isinstance(widths, jax.core.Tracer):
        arr = np.asarray(widths)
        if np.any(arr < 1) or np.any(arr > max_width):
            raise ValueError(f"widths must lie in 1..{max_width}, got {arr.tolist()}")
    units = jnp.arange(max_width, dtype=jnp.int32).reshape((1,) * w.ndim + (max_width,))
    return (units < w.astype(jnp.int32)[..., None]).astype(dtype)


def init_masked_mlp(key, max_sizes: Sequence[int], widths=None, *, gain: float = 1.0, dtype=jnp.float32) -> list[Dense]:
    """:func:`spikejax.nn.init_mlp` of the maximal network, with each layer's weights rescaled by
    ``sqrt(max_fan_in / active_fan_in)``: the active sub-network is then exactly He-uniform for
    its own widths.  ``widths``: active hidden widths (one per hidden layer, may be traced)."""
    layers = init_mlp(key, max_sizes, gain=gain, dtype=dtype)
    if widths is None:
        return layers
    widths = list(widths)
    if len(widths) != len(max_sizes) - 2:
        raise ValueError(f"need one width per hidden layer ({len(max_sizes) - 2}), got {len(widths)}")
    out = [layers[0]]
    for layer, n_max, h in zip(layers[1:], max_sizes[1:-1], widths):
        scale = jnp.sqrt(jnp.asarray(n_max, dtype) / jnp.asarray(h).astype(dtype))
        out.append(Dense(layer.w * scale, layer.b))
    return out


def masked_mlp(
    layers: Sequence[Dense],
    masks: Sequence | None,
    nparams: LIFParams,
    inputs,
    *,
    neuron: LIF | None = None,
    dt: float = 1e-3,
    readout: str = "membrane",
    dropout_rate=0.0,
    dropout_key=None,
    conn: Sequence | None = None,
):
    """Layer-major feedforward LIF network (as :class:`spikejax.nn.SpikingMLP`) with hidden-unit
    masks, optional synapse (connection) masks and a dropout rate that may be traced.

    ``masks[l]``: ``[n_l]`` 0/1 mask of hidden layer ``l`` (``None``: all active).  A masked unit
    gets zero input current (it stays at rest and never spikes, since ``v_th > v_leak``) and its
    output is multiplied by zero, so it contributes nothing and gets zero gradient.
    ``conn[l]``: ``[n_in, n_out]`` 0/1 mask of layer ``l``'s weights (``None`` or a ``None``
    entry: dense); the layer uses ``w * conn[l]``, so a pruned synapse carries nothing and its
    weight gets zero gradient.
    Returns ``(out [T, ..., n_out], hidden_spikes)`` (a list of ``[T, ..., n_l]`` trains).
    """
    if readout not in ("membrane", "spikes"):
        raise ValueError(f"readout must be 'membrane' or 'spikes', got {readout!r}")
    neuron = neuron or LIF()
    n_hidden = len(layers) - 1
    if masks is not None and len(masks) != n_hidden:
        raise ValueError(f"need {n_hidden} hidden masks, got {len(masks)}")
    if conn is not None and len(conn) != len(layers):
        raise ValueError(f"need {len(layers)} connection masks (one per layer), got {len(conn)}")
    dkeys = jax.random.split(dropout_key, max(n_hidden, 1)) if dropout_key is not None else None
    x = inputs
    hidden = []
    for i, layer in enumerate(layers):
        w = layer.w if conn is None or conn[i] is None else layer.w * conn[i].astype(layer.w.dtype)
        cur = x @ w
        cur = cur + jnp.reshape(layer.b, (1,) * (cur.ndim - 1) + (-1,))
        last = i == n_hidden
        m = None if (last or masks is None) else jnp.reshape(masks[i], (1,) * (cur.ndim - 1) + (-1,)).astype(cur.dtype)
        if m is not None:
            cur = cur * m
        if last and readout == "membrane":
            a = jnp.exp(-dt / nparams.tau_mem).astype(cur.dtype)

            def integ(v, c):
                v = a * v + (1 - a) * c
                return v, v

            _, out = jax.lax.scan(integ, jnp.zeros(cur.shape[1:], cur.dtype), cur)
            return out, hidden
        state0 = neuron.init(nparams, cur.shape[1:], cur.dtype)
        _, z = simulate(neuron.step, nparams, state0, cur, dt=dt)
        if m is not None:
            z = z * m
        if last:
            return z, hidden
        hidden.append(z)
        x = z
        if dkeys is not None:
            rate_ = jnp.asarray(dropout_rate, z.dtype)
            keep = jax.random.bernoulli(dkeys[i], 1.0 - rate_, z.shape[1:]).astype(z.dtype)
            x = z * (keep / (1.0 - rate_))[None]
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Connection density by magnitude pruning (masks inside the maximal network)


def n_kept(density, n_active):
    """Number of synapses kept at ``density`` out of ``n_active``: ``floor(density * n + 1/2)``,
    clipped to ``[1, n]`` (at least one synapse survives in a non-empty layer).  May be traced."""
    n = jnp.asarray(n_active).astype(jnp.float32)
    k = jnp.floor(jnp.asarray(density, jnp.float32) * n + 0.5)
    return jnp.clip(k, jnp.minimum(n, 1.0), n).astype(jnp.int32)


def magnitude_mask(w, density, active=None, n_total=None):
    """0/1 mask (``w``'s shape and dtype) keeping the ``n_kept(density, n)`` largest-``|w|``
    weights among the ``active`` ones (default: all); inactive weights are never kept.  ``n`` is
    ``n_total`` when given (the density is then a fraction of that reference count, e.g. of the
    unpruned layer in iterative pruning; at most the active count is kept), else the number of
    active weights.

    Exactly that many are kept: ties in ``|w|`` go to the lower flat (row-major) index.  ``density``
    and ``active`` may be traced (one compiled program for every density and width of a sweep).
    """
    w = jnp.asarray(w)
    act = jnp.ones(w.shape, bool) if active is None else jnp.broadcast_to(jnp.asarray(active).astype(bool), w.shape)
    n_act = jnp.sum(act)
    k = n_kept(density, n_act) if n_total is None else jnp.minimum(n_kept(density, n_total), n_act)
    score = jnp.where(act, jnp.abs(w), -1.0).ravel()  # |w| >= 0 > -1: inactive weights sort last
    order = jnp.argsort(-score, stable=True)  # descending |w|, ties by index
    keep = jnp.zeros(score.shape, w.dtype).at[order].set((jnp.arange(score.size) < k).astype(w.dtype))
    return jnp.reshape(keep, w.shape)


def active_connections(unit_masks: Sequence, sizes: Sequence[int], dtype=jnp.float32) -> list:
    """``[n_in, n_out]`` 0/1 masks of every layer's active block: synapse ``(i, j)`` exists when
    its presynaptic unit ``i`` and postsynaptic unit ``j`` are both active (inputs and outputs
    are always active).  ``unit_masks``: one ``[n_l]`` mask per hidden layer."""
    if len(unit_masks) != len(sizes) - 2:
        raise ValueError(f"need one unit mask per hidden layer ({len(sizes) - 2}), got {len(unit_masks)}")
    full = [jnp.ones((sizes[0],), dtype)] + [jnp.asarray(m, dtype) for m in unit_masks] + [jnp.ones((sizes[-1],), dtype)]
    return [a[:, None] * b[None, :] for a, b in zip(full[:-1], full[1:])]


def prune_mlp(layers: Sequence[Dense], densities: Sequence, active: Sequence | None = None, n_total: Sequence | None = None) -> list:
    """Per-layer magnitude pruning: for each layer ``l`` the :func:`magnitude_mask` keeping the
    fraction ``densities[l]`` of its active synapses (``active[l]``, e.g. from
    :func:`active_connections`; default: all), or of ``n_total[l]`` when given."""
    if len(densities) != len(layers):
        raise ValueError(f"need one density per layer ({len(layers)}), got {len(densities)}")
    active = [None] * len(layers) if active is None else list(active)
    n_total = [None] * len(layers) if n_total is None else list(n_total)
    return [magnitude_mask(l.w, d, a, n) for l, d, a, n in zip(layers, densities, active, n_total)]


# ---------------------------------------------------------------------------------------------
# A ready-made sweepable task


_TASK_KEYS = (
    "lr",
    "slope",
    "dropout",
    "tau_mem",
    "v_th",
    "seed",
    "data_seed",
    "density",
    "density_out",
    "finetune_lr",
    "spike_reg",
    "finetune_spike_reg",
)
#: values of the :class:`MLPTask` hyperparameters that are neither swept nor set in ``defaults``
#: (``density_out=None``: the readout keeps the same fraction as ``density``; ``finetune_lr=None``: ``lr``;
#: ``finetune_spike_reg=None``: ``spike_reg``)
TASK_DEFAULTS = {
    "lr": 5e-3,
    "slope": 25.0,
    "dropout": 0.0,
    "tau_mem": 10e-3,
    "v_th": 1.0,
    "seed": 0,
    "data_seed": None,
    "density": 1.0,
    "density_out": None,
    "finetune_lr": None,
    "spike_reg": 0.0,
    "finetune_spike_reg": None,
}


@dataclasses.dataclass(frozen=True, eq=False)
class MLPTask:
    """Train and evaluate a rate-coded LIF MLP for one hyperparameter configuration.

    ``task(hp, data)`` with ``hp`` a dict of scalars (traced under :func:`sweep`) returns a dict
    of metrics; run a sweep with ``sweep(task, hparams, task.data)`` so the data sets are program
    inputs shared by all configurations.  ``train``/``test``: ``(x [N, n_in] in [0, 1], y [N])``.
    ``sizes``: the maximal layer widths ``(n_in, h_1, ..., n_out)``.  ``steps``: number of
    training steps (mini-batches of ``batch_size``), drawn from per-epoch shuffles keyed by
    ``seed``.  ``defaults``: ``(name, value)`` pairs overriding :data:`TASK_DEFAULTS` for the
    hyperparameters that are not swept.  Identity-hashed
    (``eq=False``) so that :func:`sweep` caches the compiled program per task object.

    Connection density (magnitude pruning): after the ``steps`` dense training steps every layer
    is pruned to keep the fraction ``density`` (readout: ``density_out``) of its active synapses
    with the largest ``|w|`` (:func:`prune_mlp`); the masks are then fixed and the network is
    fine-tuned for ``finetune_steps`` further steps (fresh Adam, cosine decay from
    ``finetune_lr``) and evaluated with them.  ``density = 1`` keeps every synapse (then the
    fine-tuning is just more training), so all densities get the same number of steps.  The two
    stages are also callable separately, :meth:`pretrain` and :meth:`finetune`, so a sweep over
    ``widths x densities`` can share one dense training per width.
    """

    train: tuple
    test: tuple
    sizes: tuple
    T: int = 10
    steps: int = 200
    batch_size: int = 32
    eval_batch: int = 500
    dt: float = 1e-3
    cosine: bool = True
    defaults: tuple = ()
    finetune_steps: int = 0
    prune_rounds: int = 1

    def __post_init__(self):
        sizes = tuple(int(n) for n in self.sizes)
        if len(sizes) < 3 or any(n <= 0 for n in sizes):
            raise ValueError(f"sizes needs n_in, at least one hidden width and n_out (all positive), got {self.sizes}")
        object.__setattr__(self, "sizes", sizes)
        for name in ("T", "steps", "batch_size", "eval_batch"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        ft = self.finetune_steps
        if not isinstance(ft, (int, np.integer)) or isinstance(ft, bool) or ft < 0:
            raise ValueError(f"finetune_steps must be an int >= 0, got {ft!r}")
        R = self.prune_rounds
        if not isinstance(R, (int, np.integer)) or isinstance(R, bool) or R < 1 or (ft and R > ft):
            raise ValueError(f"prune_rounds must be an int in 1..max(1, finetune_steps), got {R!r}")
        xtr, ytr = (np.asarray(a) for a in self.train)
        xte, yte = (np.asarray(a) for a in self.test)
        for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
            if x.ndim != 2 or x.shape[1] != sizes[0] or y.shape != (x.shape[0],):
                raise ValueError(f"{split}: expected x [N, {sizes[0]}] and y [N], got {x.shape} and {y.shape}")
        if self.batch_size > xtr.shape[0]:
            raise ValueError(f"batch_size {self.batch_size} > {xtr.shape[0]} training samples")
        data = tuple(a.astype(t, copy=False) for a, t in zip((xtr, ytr, xte, yte), (np.float32, np.int32) * 2))
        object.__setattr__(self, "data", data)
        overrides = dict(self.defaults)
        unknown = sorted(set(overrides) - set(_TASK_KEYS))
        if unknown:
            raise ValueError(f"MLPTask: unknown defaults {unknown}; allowed: {sorted(_TASK_KEYS)}")
        object.__setattr__(self, "_defaults", {**TASK_DEFAULTS, **overrides})

    @property
    def n_hidden_layers(self) -> int:
        return len(self.sizes) - 2

    def width_keys(self) -> tuple:
        return ("width",) if self.n_hidden_layers == 1 else tuple(f"width{i}" for i in range(self.n_hidden_layers))

    def resolve(self, hp: Mapping[str, Any]) -> dict:
        """The full hyperparameter dict (defaults filled in); unknown names raise ``ValueError``."""
        allowed = set(_TASK_KEYS) | set(self.width_keys())
        unknown = sorted(set(hp) - allowed)
        if unknown:
            raise ValueError(f"MLPTask: unknown hyperparameters {unknown}; allowed: {sorted(allowed)}")
        full = dict(self._defaults)
        for k, n in zip(self.width_keys(), self.sizes[1:-1]):
            full[k] = n
        full.update(hp)
        return full

    # -- model -----------------------------------------------------------------------------------
    def _net(self, hp):
        neuron = LIF(spike_fn=fast_sigmoid(jnp.asarray(hp["slope"], jnp.float32)), reset="subtract")
        nparams = LIF.params(tau_mem=jnp.asarray(hp["tau_mem"], jnp.float32), v_th=jnp.asarray(hp["v_th"], jnp.float32))
        widths = [jnp.asarray(hp[k]).astype(jnp.int32) for k in self.width_keys()]
        masks = [width_masks(w, n) for w, n in zip(widths, self.sizes[1:-1])]
        return neuron, nparams, widths, masks

    def _key(self, hp, stream: int):
        """Stream 0 (initial weights, dropout masks) from ``seed``; streams 1, 2, 3 (mini-batch
        order and input spike trains of training, test and fine-tuning) from ``data_seed``
        (``seed`` when it is None)."""
        seed = hp["seed"] if stream == 0 or hp["data_seed"] is None else hp["data_seed"]
        return jax.random.fold_in(jax.random.PRNGKey(jnp.asarray(seed).astype(jnp.uint32)), stream)

    def init_params(self, hp) -> list[Dense]:
        hp = self.resolve(hp)
        _, _, widths, _ = self._net(hp)
        return init_masked_mlp(self._key(hp, 0), self.sizes, widths)

    def densities(self, hp) -> list:
        """Per-layer kept fractions: ``density`` for every layer feeding hidden units,
        ``density_out`` (default: ``density``) for the readout."""
        hp = self.resolve(hp)
        d_out = hp["density"] if hp["density_out"] is None else hp["density_out"]
        return [hp["density"]] * self.n_hidden_layers + [d_out]

    def active_connections(self, hp) -> list:
        """``[n_in, n_out]`` 0/1 masks of the synapses of the active (width-masked) network."""
        _, _, _, masks = self._net(self.resolve(hp))
        return active_connections(masks, self.sizes)

    def prune(self, params, hp) -> list:
        """Magnitude-pruning connection masks of ``params`` (one ``[n_in, n_out]`` per layer)."""
        hp = self.resolve(hp)
        return prune_mlp(params, self.densities(hp), self.active_connections(hp))

    def forward(self, params, hp, x, key, train: bool = False, conn=None):
        """``(logits [B, n_out], (input spikes, hidden spike trains))`` for a batch ``x [B, n_in]``;
        ``conn``: optional per-layer connection masks (pruned synapses)."""
        neuron, nparams, _, masks = self._net(hp)
        k_in, k_drop = jax.random.split(key)
        if train:  # dropout masks belong to the configuration's own seed
            k_drop = jax.random.fold_in(k_drop, jnp.asarray(hp["seed"]).astype(jnp.uint32))
        spikes = rate(k_in, x, self.T)
        out, hidden = masked_mlp(
            params,
            masks,
            nparams,
            spikes,
            neuron=neuron,
            dt=self.dt,
            dropout_rate=hp["dropout"] if train else 0.0,
            dropout_key=k_drop if train else None,
            conn=conn,
        )
        return out.mean(0), (spikes, hidden)

    # -- training ----------------------------------------------------------------------------------
    def __call__(self, hp, data=None) -> dict:
        """Dense training, pruning to ``density`` and fine-tuning (when ``finetune_steps > 0``),
        evaluation: :meth:`pretrain` then :meth:`finetune`."""
        data = self.data if data is None else data
        pre = self.pretrain(hp, data)
        metrics = self.finetune({**hp, "params": pre["params"]}, data)
        metrics["pretrain_loss"] = pre["train_loss"]
        metrics.setdefault("train_loss", pre["train_loss"])
        return metrics

    def pretrain(self, hp, data=None) -> dict:
        """Stage 1: ``steps`` dense training steps from the initial weights.
        Returns ``{"params": trained layers, "train_loss": mean loss of the last 10% of steps}``."""
        data = self.data if data is None else data
        hp = self.resolve(hp)
        params, losses = self.fit(self.init_params(hp), hp, self._key(hp, 1), data)
        return {"params": params, "train_loss": jnp.mean(losses[-max(1, self.steps // 10) :])}

    def finetune(self, hp, data=None) -> dict:
        """Stage 2: ``hp["params"]`` (from :meth:`pretrain`, batched like the other
        hyperparameters under :func:`sweep`) pruned to ``density`` and fine-tuned with the masks
        fixed, then evaluated (:meth:`evaluate`).

        With ``prune_rounds = R > 1`` the pruning is iterative: round ``r = 1..R`` prunes the
        surviving synapses to the fraction ``density ** (r / R)`` of the active ones and
        fine-tunes for ``finetune_steps // R`` steps (the last round takes the remainder; each
        round restarts Adam and the cosine schedule from ``finetune_lr``).  ``train_loss`` is then
        the mean loss of the last 10% of the last round's steps."""
        if "params" not in hp:
            raise ValueError("finetune needs the pretrained weights as hp['params'] (see MLPTask.pretrain)")
        data = self.data if data is None else data
        params = hp["params"]
        hp = self.resolve({k: v for k, v in hp.items() if k != "params"})
        dens = self.densities(hp)
        R = self.prune_rounds if self.finetune_steps else 1
        per = [self.finetune_steps // R] * (R - 1) + [self.finetune_steps - (R - 1) * (self.finetune_steps // R)]
        lr = hp["lr"] if hp["finetune_lr"] is None else hp["finetune_lr"]
        reg = hp["spike_reg"] if hp["finetune_spike_reg"] is None else hp["finetune_spike_reg"]
        conn = self.active_connections(hp)
        n_total = [jnp.sum(c) for c in conn]  # synapses of the unpruned active network, per layer
        losses = None
        for r in range(1, R + 1):
            frac = r / R
            d_r = [jnp.asarray(d, jnp.float32) ** frac for d in dens] if R > 1 else dens
            conn = prune_mlp(params, d_r, conn, n_total)  # nested: only surviving synapses can be kept
            params = [Dense(l.w * c, l.b) for l, c in zip(params, conn)]  # pruned weights are zero
            if per[r - 1]:
                key = self._key(hp, 3) if R == 1 else jax.random.fold_in(self._key(hp, 3), r)
                params, losses = self.fit(params, hp, key, data, conn=conn, steps=per[r - 1], lr=lr, spike_reg=reg)
        metrics = self.evaluate(params, hp, self._key(hp, 2), data, conn=conn)
        if losses is not None:
            metrics["train_loss"] = jnp.mean(losses[-max(1, per[-1] // 10) :])
        return metrics

    def loss(self, params, hp, xb, yb, key, conn=None, spike_reg=None):
        """Cross-entropy plus ``spike_reg`` (default ``hp["spike_reg"]``) x the mean firing rate of
        the active hidden units (spikes per unit per step, averaged over the hidden layers)."""
        hp = self.resolve(hp)
        logits, (_, hidden) = self.forward(params, hp, xb, key, train=True, conn=conn)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        lam = hp["spike_reg"] if spike_reg is None else spike_reg
        if isinstance(lam, (int, float)) and lam == 0:
            return ce
        _, _, widths, _ = self._net(hp)
        rates = [jnp.sum(z) / (z.shape[0] * z.shape[1] * w.astype(z.dtype)) for z, w in zip(hidden, widths)]
        return ce + jnp.asarray(lam, jnp.float32) * sum(rates) / len(rates)

    def fit(self, params, hp, key, data=None, *, conn=None, steps: int | None = None, lr=None, spike_reg=None):
        """``steps`` (default ``self.steps``) Adam steps (cosine-decayed ``lr``, default
        ``hp["lr"]``) with optional fixed connection masks and firing-rate penalty ``spike_reg``
        (default ``hp["spike_reg"]``); returns ``(params, per-step losses)`` (the losses include
        the penalty)."""
        xtr, ytr = (self.data if data is None else data)[:2]
        hp = self.resolve(hp)
        total = self.steps if steps is None else int(steps)
        n = int(xtr.shape[0])
        nb = n // self.batch_size
        n_epochs = -(-total // nb)
        k_perm, k_step = jax.random.split(key)
        idx = jnp.concatenate([epoch_batches(k, n, self.batch_size) for k in jax.random.split(k_perm, n_epochs)])[:total]
        lr = jnp.asarray(hp["lr"] if lr is None else lr, jnp.float32)
        cosine = self.cosine

        def sched(count):
            if not cosine:
                return lr
            frac = jnp.minimum(count.astype(jnp.float32) / total, 1.0)
            return lr * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))

        opt = optax.chain(optax.scale_by_adam(), optax.scale_by_schedule(lambda c: -sched(c)))
        with jax.numpy_dtype_promotion("standard"):
            opt_state = opt.init(params)

        def body(carry, xs):
            p, s = carry
            bi, k = xs
            xb, yb = take_batch((xtr, ytr), bi)
            loss, g = jax.value_and_grad(self.loss)(p, hp, xb, yb, k, conn, spike_reg)
            with jax.numpy_dtype_promotion("standard"):  # optax mixes int counts and floats
                upd, s = opt.update(g, s, p)
                p = optax.apply_updates(p, upd)
            return (p, s), loss

        (params, _), losses = jax.lax.scan(body, (params, opt_state), (idx, jax.random.split(k_step, total)))
        return params, losses

    def evaluate(self, params, hp, key, data=None, conn=None) -> dict:
        """Test accuracy and loss, SynOps per classification and firing rates (padding masked).

        SynOps = sum over every presynaptic unit (input pixels and hidden units) of its spikes x
        its number of existing synapses (active and not pruned: ``conn``, default the active
        width-masked network), averaged over the test set."""
        x, y = (self.data if data is None else data)[2:]
        hp = self.resolve(hp)
        _, _, widths, _ = self._net(hp)
        if conn is None:
            conn = self.active_connections(hp)
        n = int(x.shape[0])
        bs = min(self.eval_batch, n)
        nb = -(-n // bs)
        pad = nb * bs - n
        if pad:
            x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
            y = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)])
        valid = (jnp.arange(nb * bs) < n).reshape(nb, bs)
        xb = jnp.reshape(x, (nb, bs) + x.shape[1:])
        yb = jnp.reshape(y, (nb, bs))

        def body(c, xs):
            xi, yi, mi, ki = xs
            logits, (spikes, hidden) = self.forward(params, hp, xi, ki, conn=conn)
            mf = mi.astype(jnp.float32)
            correct = jnp.sum((jnp.argmax(logits, -1) == yi) & mi)
            loss = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, yi) * mf)
            # spikes per presynaptic unit, summed over time and the valid samples
            counts = tuple(jnp.sum(s * mf[None, :, None], axis=(0, 1)) for s in [spikes] + hidden)
            return (c[0] + correct, c[1] + loss, tuple(a + b for a, b in zip(c[2], counts))), None

        c0 = (jnp.int32(0), jnp.float32(0.0), tuple(jnp.zeros((m,), jnp.float32) for m in self.sizes[:-1]))
        (correct, loss, counts), _ = jax.lax.scan(body, c0, (xb, yb, valid, jax.random.split(key, nb)))
        fan_out = [jnp.sum(c.astype(jnp.float32), axis=1) for c in conn]  # existing synapses per presynaptic unit
        synops_layers = [jnp.sum(cnt * f) / n for cnt, f in zip(counts, fan_out)]
        per_sample = [jnp.sum(cnt) / n for cnt in counts]  # spikes per classification: input, hidden_0, ...
        n_active = sum(w.astype(jnp.float32) for w in widths)
        hidden_spikes = sum(per_sample[1:])
        n_syn = sum(jnp.sum(c.astype(jnp.float32)) for c in conn)
        n_possible = sum(jnp.sum(a) for a in self.active_connections(hp))
        return {
            "test_acc": correct.astype(jnp.float32) / n,
            "test_loss": loss / n,
            "synops": sum(synops_layers),
            "synops_input": synops_layers[0],
            "synops_hidden": sum(synops_layers[1:]),
            "input_spikes": per_sample[0],
            "hidden_spikes": hidden_spikes,
            "hidden_rate": hidden_spikes / (n_active * self.T),
            "n_neurons": n_active + self.sizes[-1],
            "n_synapses": n_syn,
            "density_actual": n_syn / n_possible,
        }
