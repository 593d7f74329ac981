"""Feedforward spiking networks built from the neuron models and the ``simulate`` driver.

A feedforward network has no recurrence, so layer ``l`` at every time step depends only on layer
``l-1``: spikejax runs it *layer-major*.  Each layer is one large matrix product over all
``T x batch`` rows (the expensive part, done once) followed by a ``lax.scan`` of the cheap
elementwise neuron update.  This is exact (identical to stepping the whole network time step by
time step) and keeps the run time close to the cost of the dense products alone.

Shapes: inputs ``[T, ..., n_in]`` (time-major; any leading batch dims), weights ``[n_in, n_out]``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from .neurons import LIF, LIFParams
from .neurons.fused import fused_supported, lif_sequence
from .simulate import simulate

__all__ = ["Dense", "init_mlp", "SpikingMLP", "spike_count_logits"]


class Dense(NamedTuple):
    w: jax.Array  # [n_in, n_out]
    b: jax.Array  # [n_out]


def init_mlp(key, sizes: Sequence[int], *, gain: float = 1.0, dtype=jnp.float32) -> list[Dense]:
    """He-uniform-style initialisation of a stack of dense layers ``sizes[0] -> ... -> sizes[-1]``."""
    if len(sizes) < 2 or any(int(s) <= 0 for s in sizes):
        raise ValueError(f"sizes must list at least two positive layer widths, got {sizes}")
    layers = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        lim = gain * jnp.sqrt(6.0 / n_in)
        w = jax.random.uniform(k, (n_in, n_out), dtype, -lim, lim)
        layers.append(Dense(w, jnp.zeros((n_out,), dtype)))
    return layers


def _check_layers(layers, x):
    if not layers:
        raise ValueError("the network has no layers")
    n = jnp.shape(x)[-1]
    for i, layer in enumerate(layers):
        if jnp.shape(layer.w)[0] != n:
            raise ValueError(f"layer {i}: weight expects {jnp.shape(layer.w)[0]} inputs, got {n}")
        n = jnp.shape(layer.w)[1]


@dataclasses.dataclass(frozen=True)
class SpikingMLP:
    """Stack of ``Dense -> neuron`` layers run layer-major.

    ``readout``: ``"spikes"`` (last layer spikes too; decode spike counts) or ``"membrane"``
    (last layer is a non-spiking leaky integrator whose membrane trace is returned).
    ``record_hidden``: also return every hidden layer's spike train (for rasters).
    ``fused``: ``None`` (default) runs plain :class:`LIF` layers through
    :func:`spikejax.neurons.fused.lif_sequence` (same forward pass, leaner hand-written backward
    pass; its forward scan is leanest when ``t_ref`` is a constant zero) unless ``remat`` or
    ``unroll`` is asked for, and every other neuron through :func:`simulate`; ``False`` always uses
    :func:`simulate`; ``True`` demands the fused layer.
    """

    neuron: LIF = dataclasses.field(default_factory=LIF)
    readout: str = "membrane"
    dt: float = 1e-3
    remat: bool = False
    unroll: int = 1
    fused: bool | None = None

    def __post_init__(self):
        if self.fused not in (None, True, False):
            raise ValueError(f"fused must be None (automatic), True or False, got {self.fused!r}")
        if isinstance(self.unroll, bool) or not isinstance(self.unroll, int) or self.unroll < 1:
            raise ValueError(f"unroll must be a positive int, got {self.unroll!r}")
        if self.readout not in ("spikes", "membrane"):
            raise ValueError(f"readout must be 'spikes' or 'membrane', got {self.readout!r}")

    def _use_fused(self, nparams) -> bool:
        if self.fused is False:
            return False
        ok = fused_supported(self.neuron, nparams)
        if self.fused is True and not ok:
            raise ValueError(
                f"SpikingMLP(fused=True) needs a plain LIF neuron with LIFParams, got {type(self.neuron).__name__} "
                f"with {type(nparams).__name__}; use fused=None or False"
            )
        # automatic: the fused layer unless the caller asked for rematerialisation or unrolling,
        # which only the generic scan implements
        return ok and (self.fused is True or (not self.remat and self.unroll == 1))

    def __call__(
        self,
        layers: Sequence[Dense],
        nparams: LIFParams,
        inputs,
        *,
        record_hidden: bool = False,
        dropout_rate: float = 0.0,
        dropout_key=None,
    ):
        """Run the network on time-major ``inputs [T, ..., n_in]``.

        ``dropout_rate``/``dropout_key``: drop hidden neurons with one mask per sample held for the
        whole presentation (a dropped neuron is silent throughout), surviving spikes scaled by
        ``1/(1 - rate)``.
        """
        _check_layers(layers, inputs)
        if dropout_rate and dropout_key is None:
            raise ValueError("dropout_rate > 0 needs a dropout_key")
        dkeys = jax.random.split(dropout_key, len(layers)) if dropout_rate else None
        x = inputs
        hidden = []
        n_layers = len(layers)
        for i, layer in enumerate(layers):
            # one 2-D product over all time steps and samples: its weight gradient is then a plain
            # x^T @ g GEMM (a [T, B, n] contraction over two axes made XLA:CPU copy a transpose first)
            cur = jnp.reshape(jnp.reshape(x, (-1, x.shape[-1])) @ layer.w, x.shape[:-1] + (layer.w.shape[-1],))
            last = i == n_layers - 1
            fused = not (last and self.readout == "membrane") and self._use_fused(nparams)
            if not fused:
                cur = cur + jnp.reshape(layer.b, (1,) * (cur.ndim - 1) + (-1,))
            if last and self.readout == "membrane":
                a = jnp.exp(-self.dt / nparams.tau_mem).astype(cur.dtype)

                def integ(v, c):
                    v = a * v + (1 - a) * c
                    return v, v

                _, out = jax.lax.scan(integ, jnp.zeros(cur.shape[1:], cur.dtype), cur, unroll=self.unroll)
                break
            if fused:  # the bias is added inside the fused layer's time loop
                z = lif_sequence(self.neuron, nparams, cur, dt=self.dt, bias=layer.b)
            else:
                state0 = self.neuron.init(nparams, cur.shape[1:], cur.dtype)
                _, z = simulate(self.neuron.step, nparams, state0, cur, dt=self.dt, remat=self.remat, unroll=self.unroll)
            x = z
            if dropout_rate and not last:
                keep = jax.random.bernoulli(dkeys[i], 1.0 - dropout_rate, z.shape[1:]).astype(z.dtype)
                x = z * (keep / jnp.asarray(1.0 - dropout_rate, z.dtype))[None]
            if last:
                out = z
            else:
                hidden.append(z)
        if record_hidden:
            return out, hidden
        return out


def spike_count_logits(out):
    """Sum a ``[T, ..., n]`` output train over time (counts for spikes, integral for membranes)."""
    return jnp.sum(out, axis=0)
