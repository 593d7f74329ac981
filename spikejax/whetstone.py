"""Whetstone: train a conventional network whose activations are sharpened into spikes.

Severa, Vineyard, Dellana, Verzi & Aimone, "Training deep neural networks for binary
communication with the Whetstone method", Nat. Mach. Intell. 1:86 (2019); papers.md section 3.
Written from the equations in papers.md (the authors' code is GPL and is not used here).

Pieces
------
* **Sharpenable activations** (papers.md 3.1), sharpness ``s`` in [0, 1], width
  ``w = 1 - s``, ``lambda = 1e-3``:

  - :func:`brelu`: ``clip((x - 1/2)/(w + lambda) + 1/2, 0, 1)``; at ``s = 1`` exactly ``1[x >= 1/2]``;
  - :func:`steep_sigmoid`: ``sigma(clip(k x, -40, 40))``, ``k = 4 ln(2 + sqrt 3)/(w + lambda)``;
    at ``s = 1`` exactly ``1[x >= 0]``.

  The sharpness is always an *array argument* (one entry per sharpenable layer), never a
  Python constant, so sharpening never recompiles a jitted step.
* :class:`WhetstoneNet`: a ``flax.linen`` module built from layer specs (:class:`Dense`,
  :class:`Conv`, :class:`MaxPool`, :class:`Flatten`); every Dense/Conv is followed by an
  optional :class:`BatchNorm` and the sharpenable activation. Call it as
  ``model.apply(variables, x, sharpness, train=...)``.
* **Sharpening schedules** (papers.md 3.3) as pure state machines: :class:`SimpleSharpener`,
  :class:`ScheduledSharpener`, :class:`AdaptiveSharpener`. Each has ``init() -> NamedTuple``,
  ``on_batch(state)``, ``on_epoch_end(state, loss)``, ``sharpness(state) -> f32[n_layers]``
  and ``done(state)``; all are pure, jit-able and the states pickle (checkpoints).
* **N-hot output code** (papers.md 3.2): reuses :mod:`spikejax.encoding` (``nhot_key``,
  ``nhot_scores`` = the softmax decoder's logits, ``nhot_decode`` = the exact binary decoder).
* **Input conversions**: :func:`convert_inputs` with ``'binarize'``, ``'contour'`` or
  ``'direct'`` (analog values injected as current into the first layer).
* **Conversion to spikes**: :func:`export_spiking` folds batch norm exactly (eps outside the
  square root, as Whetstone's ``merge_batchnorm``), and returns a :class:`SpikingNet` whose
  neurons are :class:`spikejax.neurons.LIF` with ``exp(-dt/tau_mem) = 0`` (no memory),
  delta-synapse input and zero reset, so a neuron fires in a step iff its synaptic input in
  that step is ``>= v_th``; every layer adds one step of delay. It runs under
  :func:`spikejax.simulate` and its output for a frame presented at step ``t`` appears at step
  ``t + depth - 1`` (1 frame = 1 time step; frames can be streamed back to back).
* :func:`fit_whetstone`: a compiled training loop (one ``lax.scan`` per epoch) that advances
  the sharpener per batch and per epoch and records the accuracy at the current sharpness and
  at full sharpness every epoch (Whetstone's "spiking accuracy" logger).
* :func:`make_optimizer`: RMSprop (Keras form, eps outside the square root) and Adadelta via optax.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from . import encoding, fixed_point
from ._checks import is_concrete
from .data import epoch_batches, take_batch
from .neurons import LIF, LIFParams
from .simulate import simulate
from .surrogate import WHETSTONE_LAMBDA, heaviside, whetstone_sigmoid_gain

__all__ = [
    "WHETSTONE_LAMBDA",
    "check_sharpness",
    "brelu",
    "steep_sigmoid",
    "ACTIVATIONS",
    "activation_threshold",
    "Dense",
    "Conv",
    "CONV_IMPLS",
    "conv2d",
    "PatchConv",
    "MaxPool",
    "Flatten",
    "BatchNorm",
    "WhetstoneNet",
    "count_sharpenable",
    "full_sharpness",
    "model_to_layer_sharpness",
    "SimpleState",
    "SimpleSharpener",
    "ScheduledState",
    "ScheduledSharpener",
    "gen_schedule",
    "AdaptiveState",
    "AdaptiveSharpener",
    "make_key",
    "check_key",
    "nhot_loss",
    "convert_inputs",
    "INPUT_MODES",
    "fold_batchnorm",
    "LayerOp",
    "SpikingLayer",
    "SpikingNet",
    "export_spiking",
    "to_fixed_point",
    "FixedPointSpikingNet",
    "sharpened_predict",
    "make_optimizer",
    "fit_whetstone",
    "accuracy",
]

# =============================================================================================
# 1. Activations (papers.md 3.1)
# =============================================================================================


def check_sharpness(sharpness, name: str = "sharpness"):
    """Raise ``ValueError`` unless every entry of a concrete ``sharpness`` lies in [0, 1]."""
    if not is_concrete(sharpness):
        return
    arr = np.asarray(sharpness, dtype=np.float64)
    if arr.size and (np.any(~np.isfinite(arr)) or np.any(arr < 0.0) or np.any(arr > 1.0)):
        raise ValueError(
            f"{name} must lie in [0, 1] (0 = original activation, 1 = spiking step), got "
            f"{np.asarray(sharpness).tolist()!r}"
        )


def _float(name, x):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def brelu(x, sharpness):
    """Whetstone's sharpenable bounded ReLU (``Spiking_BRelu``).

    ``y = clip((x - 1/2)/(1 - s + lambda) + 1/2, 0, 1)`` for ``s < 1`` and exactly
    ``1[x >= 1/2]`` at ``s = 1``. The line always passes through (1/2, 1/2); at ``s = 0`` it is
    (nearly) the bounded ReLU ``clip(x, 0, 1)``. ``sharpness`` is a scalar array (traceable).
    """
    x = _float("x", x)
    check_sharpness(sharpness)
    s = jnp.asarray(sharpness, dtype=x.dtype)
    width = 1.0 - s + WHETSTONE_LAMBDA
    ramp = jnp.clip((x - 0.5) / width + 0.5, 0.0, 1.0)
    step = (x >= 0.5).astype(x.dtype)
    return jnp.where(s >= 1.0, step, ramp)


def steep_sigmoid(x, sharpness):
    """Whetstone's sharpenable sigmoid (``Spiking_Sigmoid``).

    ``y = sigma(clip(k x, -40, 40))`` with ``k = 4 ln(2 + sqrt 3)/(1 - s + lambda)`` for ``s < 1``
    (the sigmoid's knees, the roots of its third derivative ``k x = +-ln(2 + sqrt 3)``, sit at
    ``x = +-(1 - s + lambda)/4``), and exactly ``1[x >= 0]`` at ``s = 1`` (XLA on CPU flushes a
    subnormal ``x`` to 0, which then fires).
    """
    x = _float("x", x)
    check_sharpness(sharpness)
    s = jnp.asarray(sharpness, dtype=x.dtype)
    k = whetstone_sigmoid_gain(s)
    smooth = jax.nn.sigmoid(jnp.clip(k * x, -40.0, 40.0))
    step = (x >= 0.0).astype(x.dtype)
    return jnp.where(s >= 1.0, step, smooth)


#: name -> (activation(x, s), firing threshold of the fully sharpened step)
ACTIVATIONS: dict[str, tuple[Callable, float]] = {"brelu": (brelu, 0.5), "sigmoid": (steep_sigmoid, 0.0)}


def _check_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def activation_threshold(name: str) -> float:
    """Threshold ``theta`` with ``activation(x, 1) = 1[x >= theta]`` (0.5 for brelu, 0 for sigmoid)."""
    return _check_activation(name)[1]


# =============================================================================================
# 2. The network (flax.linen)
# =============================================================================================


@dataclasses.dataclass(frozen=True)
class Dense:
    """Fully connected sharpenable layer: ``x @ W + b`` (-> batch norm) -> activation."""

    features: int


@dataclasses.dataclass(frozen=True)
class Conv:
    """2-D convolution (NHWC input, HWIO kernel) -> (batch norm) -> activation.

    ``padding`` is ``'VALID'`` (the Keras default, as in Whetstone's examples) or ``'SAME'``.
    The convolution is computed by :func:`conv2d` (image patches times the kernel matrix).
    """

    features: int
    kernel_size: tuple = (3, 3)
    strides: tuple = (1, 1)
    padding: str = "VALID"


@dataclasses.dataclass(frozen=True)
class MaxPool:
    """Max pooling of the (binary, once sharp) activations: an OR over each window."""

    window: tuple = (2, 2)
    strides: tuple | None = None  # None: the window (non-overlapping)
    padding: str = "VALID"

    @property
    def stride(self):
        return tuple(self.strides) if self.strides is not None else tuple(self.window)


@dataclasses.dataclass(frozen=True)
class Flatten:
    """Reshape ``[B, ...] -> [B, prod(...)]``."""


_SHARPENABLE = (Dense, Conv)


def count_sharpenable(layers) -> int:
    """Number of sharpenable (Dense/Conv) layers; ``ValueError`` if there is none or a spec is unknown."""
    layers = tuple(layers) if not hasattr(layers, "layers") else tuple(layers.layers)
    n = 0
    for i, spec in enumerate(layers):
        if isinstance(spec, _SHARPENABLE):
            n += 1
        elif not isinstance(spec, (MaxPool, Flatten)):
            raise ValueError(f"layer {i}: unknown layer spec {spec!r}; use Dense, Conv, MaxPool or Flatten")
    if n == 0:
        raise ValueError(
            "the model has no sharpenable layer (Dense or Conv followed by a Whetstone activation); "
            f"got layers {layers!r}"
        )
    return n


def full_sharpness(n_layers: int, dtype=jnp.float32) -> jax.Array:
    """All layers at sharpness 1 (the spiking network)."""
    return jnp.ones((n_layers,), dtype)


def _bcast_last(v, ndim):
    """Reshape a per-channel vector ``[C]`` to ``[1, ..., 1, C]`` (explicit rank, no promotion)."""
    return jnp.reshape(v, (1,) * (ndim - 1) + (-1,))

CONV_IMPLS = ("slices", "patches", "lax")


def _conv_pads(in_hw, kernel_hw, strides, padding):
    if isinstance(padding, str):
        if padding.upper() not in ("VALID", "SAME"):
            raise ValueError(f"padding must be 'VALID', 'SAME' or ((lo, hi), (lo, hi)), got {padding!r}")
        return tuple(tuple(int(v) for v in p) for p in lax.padtype_to_pads(in_hw, kernel_hw, strides, padding.upper()))
    pads = tuple(tuple(int(v) for v in p) for p in padding)
    if len(pads) != 2 or any(len(p) != 2 for p in pads):
        raise ValueError(f"explicit padding must be ((lo, hi), (lo, hi)), got {padding!r}")
    return pads


def conv2d(x, w, strides=(1, 1), padding="VALID", impl: str = "slices"):
    """2-D convolution (cross-correlation, as ``lax.conv``) of ``x [B, H, W, C]`` with ``w [kh, kw, C, O]``.

    ``impl='slices'`` (default) gathers the ``kh kw`` shifted views of the (padded) input with
    strided slices into patches ``[B, Ho, Wo, kh kw C]`` and multiplies them by the kernel
    reshaped to ``[kh kw C, O]``: one matmul, and its gradient is a matmul plus padded adds.
    ``'patches'`` builds the same patches with ``lax.conv_general_dilated_patches`` (channel-major
    ordering, so the kernel is transposed to ``[C, kh, kw, O]``); ``'lax'`` calls
    ``lax.conv_general_dilated``. On XLA's CPU backend the matmul forms train several times faster
    than ``lax.conv`` (whose kernel gradient is slow there); all three agree to rounding.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv impl must be one of {list(CONV_IMPLS)}, got {impl!r}")
    x, w = jnp.asarray(x), jnp.asarray(w)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d needs x [B, H, W, C] and w [kh, kw, C, O], got shapes {x.shape}, {w.shape}")
    kh, kw, c, o = w.shape
    if x.shape[-1] != c:
        raise ValueError(f"input has {x.shape[-1]} channels but the kernel expects {c}")
    strides = tuple(int(v) for v in strides)
    pads = _conv_pads(x.shape[1:3], (kh, kw), strides, padding)
    if impl == "lax":
        return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if impl == "patches":
        p = lax.conv_general_dilated_patches(x, (kh, kw), strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        wm = jnp.reshape(jnp.transpose(w, (2, 0, 1, 3)), (c * kh * kw, o))
    else:
        if any(lo or hi for lo, hi in pads):
            x = jnp.pad(x, ((0, 0),) + pads + ((0, 0),))
        b, h, wd, _ = x.shape
        sh, sw = strides
        ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1
        if ho < 1 or wo < 1:
            raise ValueError(f"kernel {(kh, kw)} is larger than the (padded) input {(h, wd)}")
        cols = [
            lax.slice(x, (0, i, j, 0), (b, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c), (1, sh, sw, 1))
            for i in range(kh)
            for j in range(kw)
        ]
        p = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)  # [B, Ho, Wo, kh kw C], (i, j, c) order
        wm = jnp.reshape(w, (kh * kw * c, o))
    return lax.dot_general(p, wm.astype(p.dtype), (((3,), (0,)), ((), ())))


class PatchConv(nn.Module):
    """Flax convolution layer computed by :func:`conv2d`; parameters ``kernel [kh, kw, C, O]`` and
    ``bias [O]``, laid out (and initialised) as ``flax.linen.Conv``'s."""

    features: int
    kernel_size: tuple = (3, 3)
    strides: tuple = (1, 1)
    padding: Any = "VALID"
    impl: str = "slices"
    kernel_init: Callable = nn.initializers.glorot_uniform()
    bias_init: Callable = nn.initializers.zeros
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        kh, kw = tuple(self.kernel_size)
        k = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), self.param_dtype)
        b = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        dt = jnp.promote_types(x.dtype, self.param_dtype)
        y = conv2d(x.astype(dt), k.astype(dt), self.strides, self.padding, self.impl)
        return y + _bcast_last(b.astype(dt), y.ndim)


class BatchNorm(nn.Module):
    """Batch normalisation with ``eps`` *outside* the square root:
    ``y = gamma (x - mu)/(sqrt(var) + eps) + beta``.

    This is the form in which Whetstone folds batch norm into the preceding layer
    (papers.md 3.4), so :func:`fold_batchnorm` reproduces this layer exactly. Statistics are
    over all axes but the last; running averages (collection ``batch_stats``) use ``momentum``.
    """

    momentum: float = 0.99
    epsilon: float = 1e-3
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        c = x.shape[-1]
        gamma = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
        beta = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), self.param_dtype))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), self.param_dtype))
        if train:
            axes = tuple(range(x.ndim - 1))
            mu = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - _bcast_last(mu, x.ndim)), axis=axes)
            if not self.is_initializing():
                m = self.momentum
                ra_mean.value = m * ra_mean.value + (1.0 - m) * lax.stop_gradient(mu).astype(ra_mean.value.dtype)
                ra_var.value = m * ra_var.value + (1.0 - m) * lax.stop_gradient(var).astype(ra_var.value.dtype)
        else:
            mu, var = ra_mean.value, ra_var.value
        mu, var = mu.astype(x.dtype), var.astype(x.dtype)
        scale = gamma.astype(x.dtype) / (jnp.sqrt(var) + self.epsilon)
        return _bcast_last(scale, x.ndim) * (x - _bcast_last(mu, x.ndim)) + _bcast_last(beta.astype(x.dtype), x.ndim)


class WhetstoneNet(nn.Module):
    """A feed-forward network of sharpenable layers.

    ``layers``: tuple of :class:`Dense`, :class:`Conv`, :class:`MaxPool`, :class:`Flatten`.
    Each Dense/Conv ``i`` (counted from 0, bottom up) is ``linear{i}`` (-> ``bn{i}``) -> the
    activation at ``sharpness[i]`` (-> dropout with rate ``dropout`` on hidden layers while
    training; needs ``rngs={'dropout': key}``; ``conv_dropout=False`` keeps it off conv feature
    maps: inverted dropout before a max pool raises the pooled mean in training, so the batch-norm
    statistics of the next layer no longer match inference). The last layer's activations are the N-hot output code
    (decode with :func:`spikejax.encoding.nhot_decode` or train with :func:`nhot_loss`).

    ``__call__(x, sharpness, train=False)``: ``x`` is ``[B, n_in]`` for dense inputs or
    ``[B, H, W, C]`` for convolutions; ``sharpness`` is an array ``[n_sharpenable]`` in [0, 1].
    Returns ``[B, width]``.
    """

    layers: tuple
    activation: str = "brelu"
    batch_norm: bool = False
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    dropout: float = 0.0
    kernel_init: Callable = nn.initializers.glorot_uniform()
    param_dtype: Any = jnp.float32
    conv_impl: str = "slices"
    conv_dropout: bool = True  # False: dropout only after hidden Dense layers (not on conv feature maps)

    @property
    def n_sharpenable(self) -> int:
        return count_sharpenable(self.layers)

    @nn.compact
    def __call__(self, x, sharpness, train: bool = False):
        n = count_sharpenable(self.layers)
        act, _ = _check_activation(self.activation)
        sharpness = jnp.asarray(sharpness)
        if sharpness.shape != (n,):
            raise ValueError(
                f"sharpness must be an array of shape ({n},) (one entry per sharpenable layer), got shape {sharpness.shape}"
            )
        check_sharpness(sharpness)
        x = _float("x", x)
        i = 0
        for j, spec in enumerate(self.layers):
            if isinstance(spec, Dense):
                if x.ndim != 2:
                    raise ValueError(f"layer {j} (Dense) needs [B, features] input, got shape {x.shape}; add Flatten()")
                x = nn.Dense(spec.features, kernel_init=self.kernel_init, param_dtype=self.param_dtype, name=f"linear{i}")(x)
            elif isinstance(spec, Conv):
                if x.ndim != 4:
                    raise ValueError(f"layer {j} (Conv) needs [B, H, W, C] input, got shape {x.shape}")
                x = PatchConv(
                    spec.features,
                    tuple(spec.kernel_size),
                    strides=tuple(spec.strides),
                    padding=spec.padding,
                    impl=self.conv_impl,
                    kernel_init=self.kernel_init,
                    param_dtype=self.param_dtype,
                    name=f"linear{i}",
                )(x)
            elif isinstance(spec, MaxPool):
                x = nn.max_pool(x, tuple(spec.window), strides=spec.stride, padding=spec.padding)
                continue
            else:  # Flatten
                x = jnp.reshape(x, (x.shape[0], -1))
                continue
            if self.batch_norm:
                x = BatchNorm(self.bn_momentum, self.bn_epsilon, self.param_dtype, name=f"bn{i}")(x, train)
            x = act(x, sharpness[i])
            i += 1
            # hidden layers only; identity at inference
            if self.dropout > 0.0 and i < n and (self.conv_dropout or not isinstance(spec, Conv)):
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        if x.ndim != 2:
            raise ValueError(f"the network must end in [B, width] (add Flatten() and a Dense layer), got shape {x.shape}")
        return x


# =============================================================================================
# 3. Sharpening schedules (papers.md 3.3), pure state machines
# =============================================================================================


def model_to_layer_sharpness(v, n_layers: int, bottom_up: bool = True):
    """Whetstone's ``set_model_sharpness``: spread a model sharpness ``v`` in [0, 1] over layers.

    Bottom-up: ``floor(v n)`` layers are fully sharp, the next gets ``v n - floor(v n)``
    (= ``(v mod 1/n) n``), the rest stay 0. Uniform (``bottom_up=False``): every layer gets ``v``.
    """
    check_sharpness(v, "model sharpness")
    v = jnp.asarray(v, jnp.float32)
    if not bottom_up:
        return jnp.broadcast_to(v, (n_layers,))
    vn = v * n_layers
    full = jnp.floor(vn)
    idx = jnp.arange(n_layers, dtype=jnp.float32)
    return jnp.where(idx < full, 1.0, jnp.where(idx == full, vn - full, 0.0)).astype(jnp.float32)


def _check_nlayers(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_layers must be a positive int (the number of sharpenable layers), got {n!r}")
    return int(n)


class SimpleState(NamedTuple):
    epoch: jax.Array  # int32, epochs finished
    k: jax.Array  # int32, sharpening steps taken


@dataclasses.dataclass(frozen=True)
class SimpleSharpener:
    """``SimpleSharpener(start_epoch, steps, bottom_up)``: a fixed step at each epoch end.

    ``total = steps * n_layers`` (bottom-up) or ``steps`` (uniform); at the end of every epoch
    ``e >= start_epoch`` (0-based) the model sharpness grows by ``1/total`` (kept as an integer
    step count, so it reaches 1.0 exactly on the last step) and is spread over the layers by
    :func:`model_to_layer_sharpness`. Done when all layers are at 1. No per-batch change.
    """

    n_layers: int
    start_epoch: int = 0
    steps: int = 4
    bottom_up: bool = True

    def __post_init__(self):
        _check_nlayers(self.n_layers)
        if self.steps < 1 or self.start_epoch < 0:
            raise ValueError(f"steps must be >= 1 and start_epoch >= 0, got steps={self.steps}, start_epoch={self.start_epoch}")

    @property
    def total(self) -> int:
        return self.steps * self.n_layers if self.bottom_up else self.steps

    def init(self) -> SimpleState:
        return SimpleState(jnp.int32(0), jnp.int32(0))

    def on_batch(self, state: SimpleState) -> SimpleState:
        return state

    def on_epoch_end(self, state: SimpleState, loss=None) -> SimpleState:
        go = state.epoch >= self.start_epoch
        k = jnp.where(go, jnp.minimum(state.k + 1, self.total), state.k).astype(jnp.int32)
        return SimpleState(state.epoch + 1, k)

    def model_sharpness(self, state: SimpleState) -> jax.Array:
        return state.k.astype(jnp.float32) / self.total

    def sharpness(self, state: SimpleState) -> jax.Array:
        if not self.bottom_up:
            return jnp.broadcast_to(self.model_sharpness(state), (self.n_layers,))
        # integer form of model_to_layer_sharpness(k/total): layer i holds clip(k - i steps, 0, steps)/steps
        i = jnp.arange(self.n_layers, dtype=jnp.int32)
        return jnp.clip(state.k - i * self.steps, 0, self.steps).astype(jnp.float32) / self.steps

    def done(self, state: SimpleState) -> jax.Array:
        return state.k >= self.total


def gen_schedule(num_layers: int, start: int, duration: int, intermission: int = 0) -> tuple:
    """Layer ``i`` sharpens during epochs ``[start + i (duration + intermission), ... + duration)``."""
    _check_nlayers(num_layers)
    if start < 1 or duration < 1 or intermission < 0:
        raise ValueError(f"need start >= 1, duration >= 1, intermission >= 0; got {start}, {duration}, {intermission}")
    out = []
    for i in range(num_layers):
        s = start + i * (duration + intermission)
        out.append((s, s + duration))
    return tuple(out)


class ScheduledState(NamedTuple):
    epoch: jax.Array  # int32, current epoch (0-based)
    batch: jax.Array  # int32, batches seen in the current epoch
    n_batches: jax.Array  # int32, batches per epoch (counted in epoch 0 unless given)
    sharpness: jax.Array  # f32 [n_layers]


@dataclasses.dataclass(frozen=True)
class ScheduledSharpener:
    """``ScheduledSharpener(schedule=((start, stop), ...))``, one ``(start, stop)`` per layer.

    Epoch 0 never sharpens (it counts the batches per epoch, ``nb``; pass ``n_batches`` to fix it
    in advance). During epochs ``[start, stop)`` layer ``i`` gains ``1/((stop - start) nb - 1)``
    after every batch (capped at 1), and it is set to 1 at the end of epoch ``stop - 1``.
    """

    schedule: tuple
    n_batches: int = 0

    def __post_init__(self):
        sched = tuple(tuple(int(v) for v in p) for p in self.schedule)
        if not sched:
            raise ValueError("schedule must list one (start, stop) pair per sharpenable layer; got none")
        for i, p in enumerate(sched):
            if len(p) != 2 or not (0 <= p[0] < p[1]):
                raise ValueError(f"schedule[{i}] must be (start, stop) with 0 <= start < stop, got {p}")
        object.__setattr__(self, "schedule", sched)

    @property
    def n_layers(self) -> int:
        return len(self.schedule)

    def _arrays(self):
        a = np.asarray(self.schedule, dtype=np.int32)
        return jnp.asarray(a[:, 0]), jnp.asarray(a[:, 1])

    def init(self) -> ScheduledState:
        return ScheduledState(
            jnp.int32(0), jnp.int32(0), jnp.int32(self.n_batches), jnp.zeros((self.n_layers,), jnp.float32)
        )

    def on_batch(self, state: ScheduledState) -> ScheduledState:
        start, stop = self._arrays()
        denom = jnp.maximum((stop - start) * state.n_batches - 1, 1).astype(jnp.float32)
        active = (state.epoch > 0) & (state.epoch >= start) & (state.epoch < stop)
        s = jnp.where(active, jnp.minimum(state.sharpness + 1.0 / denom, 1.0), state.sharpness)
        return ScheduledState(state.epoch, state.batch + 1, state.n_batches, s)

    def on_epoch_end(self, state: ScheduledState, loss=None) -> ScheduledState:
        _, stop = self._arrays()
        nb = jnp.where((state.epoch == 0) & (state.n_batches == 0), state.batch, state.n_batches).astype(jnp.int32)
        s = jnp.where(state.epoch + 1 >= stop, 1.0, state.sharpness).astype(jnp.float32)
        return ScheduledState(state.epoch + 1, jnp.int32(0), nb, s)

    def sharpness(self, state: ScheduledState) -> jax.Array:
        return state.sharpness

    def done(self, state: ScheduledState) -> jax.Array:
        return jnp.all(state.sharpness >= 1.0)


class AdaptiveState(NamedTuple):
    epoch: jax.Array  # int32, epochs finished
    ref_loss: jax.Array  # f32, reference loss (nan before the first epoch)
    counter: jax.Array  # int32, epochs without improvement
    sharpening: jax.Array  # bool
    wait: jax.Array  # bool: a layer completed in this epoch; the next waits for the next epoch
    sharpness: jax.Array  # f32 [n_layers]


@dataclasses.dataclass(frozen=True)
class AdaptiveSharpener:
    """``AdaptiveSharpener``: sharpen while the loss holds, pause when it degrades.

    At each epoch end with loss ``L`` and reference ``R``: ``d = (L - R)/R``; *improved* if
    ``d <= -sig_decrease``, *degraded* if ``d >= sig_increase``. Before epoch
    ``min_init_epochs - 1`` (0-based): ``R = L``. After that: improved -> ``R = L``,
    ``counter = 0``, else ``counter += 1``; sharpening and degraded -> stop sharpening,
    ``R = L``, ``counter = 0``; not sharpening and ``counter > patience`` -> start sharpening,
    ``R = L``, ``counter = 0``. The ``wait`` flag is cleared.

    Per batch while sharpening (and not waiting) the lowest unfinished layer gains
    ``(cz_rate if s >= critical else rate) / batches_per_epoch`` (times
    ``first_layer_relative_rate`` for layer 0), capped at 1 and snapped to 1 once
    ``1 - s < 0.001``; a layer that completes sets ``wait`` until the epoch ends.
    """

    n_layers: int
    batches_per_epoch: int
    min_init_epochs: int = 10
    rate: float = 0.25
    cz_rate: float = 0.126
    critical: float = 0.75
    first_layer_relative_rate: float = 1.0
    patience: int = 1
    sig_increase: float = 0.15
    sig_decrease: float = 0.15
    snap: float = 1e-3

    def __post_init__(self):
        _check_nlayers(self.n_layers)
        if self.batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1, got {self.batches_per_epoch}")
        if not (self.rate > 0 and self.cz_rate > 0 and self.first_layer_relative_rate > 0):
            raise ValueError("rate, cz_rate and first_layer_relative_rate must be positive")
        check_sharpness(self.critical, "critical")

    def init(self) -> AdaptiveState:
        return AdaptiveState(
            jnp.int32(0),
            jnp.float32(jnp.nan),
            jnp.int32(0),
            jnp.bool_(False),
            jnp.bool_(False),
            jnp.zeros((self.n_layers,), jnp.float32),
        )

    def on_batch(self, state: AdaptiveState) -> AdaptiveState:
        s = state.sharpness
        unfinished = s < 1.0
        i = jnp.argmax(unfinished)  # lowest unfinished layer
        si = s[i]
        r = jnp.where(si >= self.critical, self.cz_rate, self.rate) / self.batches_per_epoch
        r = r * jnp.where(i == 0, self.first_layer_relative_rate, 1.0)
        new = jnp.minimum(si + r.astype(jnp.float32), 1.0)
        new = jnp.where(1.0 - new < self.snap, 1.0, new).astype(jnp.float32)
        act = state.sharpening & ~state.wait & jnp.any(unfinished)
        s = jnp.where(act, s.at[i].set(new), s)
        wait = state.wait | (act & (new >= 1.0))
        return state._replace(sharpness=s, wait=wait)

    def on_epoch_end(self, state: AdaptiveState, loss) -> AdaptiveState:
        loss = jnp.asarray(loss, jnp.float32)
        ref = state.ref_loss
        d = (loss - ref) / ref
        improved = d <= -self.sig_decrease
        degraded = d >= self.sig_increase
        init_phase = (state.epoch < self.min_init_epochs - 1) | jnp.isnan(ref)
        # after the initial epochs
        ref2 = jnp.where(improved, loss, ref)
        cnt2 = jnp.where(improved, 0, state.counter + 1)
        stop = state.sharpening & degraded
        start = ~state.sharpening & (cnt2 > self.patience)
        sharp2 = jnp.where(stop, False, jnp.where(start, True, state.sharpening))
        ref2 = jnp.where(stop | start, loss, ref2)
        cnt2 = jnp.where(stop | start, 0, cnt2)
        return AdaptiveState(
            state.epoch + 1,
            jnp.where(init_phase, loss, ref2).astype(jnp.float32),
            jnp.where(init_phase, state.counter, cnt2).astype(jnp.int32),
            jnp.where(init_phase, state.sharpening, sharp2),
            jnp.bool_(False),
            state.sharpness,
        )

    def sharpness(self, state: AdaptiveState) -> jax.Array:
        return state.sharpness

    def done(self, state: AdaptiveState) -> jax.Array:
        return jnp.all(state.sharpness >= 1.0)


# =============================================================================================
# 4. N-hot output code and inputs
# =============================================================================================


def check_key(key_matrix, num_classes: int | None = None, width: int | None = None) -> jax.Array:
    """Validate an N-hot key ``K [num_classes, width]`` in {0, 1} with ``width >= num_classes``."""
    K = jnp.asarray(key_matrix)
    if K.ndim != 2:
        raise ValueError(f"key_matrix must be [num_classes, width], got shape {K.shape}")
    c, w = K.shape
    if w < c:
        raise ValueError(f"key width ({w}) must be >= the number of classes ({c})")
    if num_classes is not None and c != num_classes:
        raise ValueError(f"key_matrix has {c} classes, expected {num_classes}")
    if width is not None and w != width:
        raise ValueError(f"key width ({w}) must equal the network's output width ({width})")
    if is_concrete(K):
        Kn = np.asarray(K)
        if not np.all((Kn == 0) | (Kn == 1)):
            raise ValueError("key_matrix must hold only 0 and 1")
        if np.any(Kn.sum(axis=1) == 0):
            raise ValueError("every class needs at least one active unit in key_matrix")
    return K.astype(jnp.float32) if not jnp.issubdtype(K.dtype, jnp.floating) else K


def make_key(key, num_classes: int, width: int, overlapping: bool = False) -> jax.Array:
    """N-hot key ``[num_classes, width]`` (``width // num_classes`` units per class); see
    :func:`spikejax.encoding.nhot_key`. ``width < num_classes`` raises ``ValueError``."""
    if isinstance(width, (int, np.integer)) and isinstance(num_classes, (int, np.integer)) and width < num_classes:
        raise ValueError(f"key width ({width}) must be >= the number of classes ({num_classes})")
    return encoding.nhot_key(key, num_classes, width, overlapping)


def nhot_loss(y, labels, key_matrix, temperature: float = 1.0) -> jax.Array:
    """Whetstone's training loss: cross-entropy of ``softmax((2y - 1)(2K - 1)^T / T)`` (mean over the batch).

    ``temperature = 1`` is Whetstone's ``Softmax_Decode``. With a disjoint key, one output unit
    moving from 0 to 1 changes a class's logit margin by ``4/T``: at ``T = 1`` a margin of one or
    two units already saturates the softmax, so the trained net separates its classes by a unit
    or two and many binary outputs tie; a larger ``T`` asks for wider margins (more units). The
    temperature only scales the training logits; the binary decode (argmax) is unchanged.
    """
    if not (isinstance(temperature, (int, float, np.floating)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    logits = encoding.nhot_scores(y, key_matrix)
    if temperature != 1.0:
        logits = logits / jnp.asarray(temperature, logits.dtype)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


INPUT_MODES = ("binarize", "contour", "direct")


def convert_inputs(x, mode: str, *, threshold: float = 0.5, contour_threshold: float = 1.0):
    """Convert images in [0, 1] to the network's input frames.

    ``'binarize'``: ``1[x >= threshold]``; ``'contour'``: Sobel edge image
    ``1[|grad x| >= contour_threshold]`` over the last two axes (``[..., H, W]``);
    ``'direct'``: the analog values themselves (direct current injection into layer 1).
    """
    if mode == "binarize":
        return encoding.binarize(x, threshold)
    if mode == "contour":
        if jnp.ndim(x) < 2:
            raise ValueError(f"contour input needs images [..., H, W], got shape {jnp.shape(x)}")
        return encoding.contour(x, contour_threshold)
    if mode == "direct":
        return _float("x", x)
    raise ValueError(f"input mode must be one of {list(INPUT_MODES)}, got {mode!r}")


# =============================================================================================
# 5. Conversion to a spiking network
# =============================================================================================


def fold_batchnorm(w, b, gamma, beta, mean, var, eps):
    """Fold ``gamma (z - mu)/(sqrt(var) + eps) + beta`` with ``z = x W + b`` into ``(W', b')``.

    ``W' = W gamma/(sqrt(var) + eps)`` (scaling the output-channel axis, the last one, of a
    dense ``[in, out]`` or conv ``[kh, kw, in, out]`` kernel) and
    ``b' = gamma (b - mu)/(sqrt(var) + eps) + beta`` (papers.md 3.4).
    """
    w = jnp.asarray(w)
    scale = jnp.asarray(gamma) / (jnp.sqrt(jnp.asarray(var)) + eps)
    w2 = w * jnp.reshape(scale, (1,) * (w.ndim - 1) + (-1,))
    b2 = scale * (jnp.asarray(b) - jnp.asarray(mean)) + jnp.asarray(beta)
    return w2, b2


@dataclasses.dataclass(frozen=True)
class LayerOp:
    """Static description of one spiking layer's synapses: ``kind`` in {'dense', 'conv', 'pool'}."""

    kind: str
    flatten_input: bool = False
    strides: tuple = (1, 1)
    padding: str = "VALID"
    window: tuple = (2, 2)
    conv_impl: str = "slices"  # how a 'conv' layer computes its synaptic input (see conv2d)


class SpikingLayer(NamedTuple):
    w: Any  # dense [in, out] / conv [kh, kw, in, out]; None for pooling
    b: Any  # [out]; None for pooling
    lif: Any  # LIFParams (SpikingNet) or fixed_point.FixedPointLIFParams (FixedPointSpikingNet)


#: The neuron of every exported layer: delta synapses, zero reset, exact Heaviside spike.
NEURON = LIF(spike_fn=heaviside, reset="zero", input_mode="delta")


def _lif_params(v_th: float, dt: float, dtype) -> LIFParams:
    # tau_mem = dt/1000: exp(-dt/tau_mem) = exp(-1000) == 0 exactly, so v = v_leak + x each step.
    return LIF.params(tau_mem=dt * 1e-3, v_th=v_th, v_reset=v_th - 1.0, v_leak=0.0, t_ref=0.0, dtype=dtype)


def _synapse(op: LayerOp, layer: SpikingLayer, pre):
    if op.flatten_input:
        pre = jnp.reshape(pre, (pre.shape[0], -1))
    if op.kind == "dense":
        y = lax.dot_general(pre, layer.w, (((pre.ndim - 1,), (0,)), ((), ())))
        return y + _bcast_last(layer.b, y.ndim)
    if op.kind == "conv":
        y = conv2d(pre, layer.w, op.strides, op.padding, op.conv_impl)
        return y + _bcast_last(layer.b, y.ndim)
    if op.kind == "pool":  # spike count in each window; fires (count >= 1) = OR = max pool of binary
        return lax.reduce_window(
            pre, jnp.zeros((), pre.dtype), lax.add, (1,) + tuple(op.window) + (1,), (1,) + tuple(op.strides) + (1,), op.padding
        )
    raise ValueError(f"unknown layer kind {op.kind!r}")


@dataclasses.dataclass(frozen=True)
class SpikingNet:
    """Exported Whetstone network: binary threshold neurons (LIF without memory), one step per layer.

    ``layers`` (a pytree of arrays) and ``ops`` (static) describe the ``depth`` layers; a frame
    presented at step ``t`` is decoded from the output spikes at step ``t + depth - 1``.
    """

    ops: tuple
    layers: tuple
    key_matrix: Any
    input_shape: tuple
    dt: float = 1.0

    #: the neuron of every layer (its ``step(params, state, x, dt=)`` runs one population)
    neuron: ClassVar[Any] = NEURON

    @property
    def depth(self) -> int:
        return len(self.ops)

    def _init_neuron(self, lif, shape, dtype):
        return self.neuron.init(lif, shape, dtype)

    def _as_input(self, x, name: str):
        """Frames or samples as the first layer's input (float, in the weights' dtype)."""
        return _float(name, x).astype(self.layers[0].w.dtype)

    def step(self, layers, state, x, *, dt, key=None):
        """``simulate``-compatible step: ``state`` is a tuple of ``(neuron state, last spikes)`` per layer."""
        new = []
        for l, (op, lp) in enumerate(zip(self.ops, layers)):
            pre = x if l == 0 else state[l - 1][1]  # spikes of the layer below, emitted one step ago
            cur = _synapse(op, lp, pre)
            ls, z = self.neuron.step(lp.lif, state[l][0], cur, dt=dt)
            new.append((ls, z))
        new = tuple(new)
        return new, tuple(z for _, z in new)

    def init_state(self, batch: int, dtype=jnp.float32):
        shape = (batch,) + tuple(self.input_shape)
        x = jax.ShapeDtypeStruct(shape, dtype)
        state = []
        for op, lp in zip(self.ops, self.layers):
            x = jax.eval_shape(lambda p, a, op=op: _synapse(op, p, a), lp, x)
            state.append((self._init_neuron(lp.lif, x.shape, x.dtype), jnp.zeros(x.shape, x.dtype)))
        return tuple(state)

    def run(self, frames, *, record: str = "output"):
        """Simulate ``frames [T, B, *input_shape]``; return the spikes ``[T, B, width]`` of the output
        layer (``record='output'``) or a tuple with every layer's spikes (``record='all'``)."""
        frames = self._as_input(frames, "frames")
        if frames.ndim != len(self.input_shape) + 2 or tuple(frames.shape[2:]) != tuple(self.input_shape):
            raise ValueError(f"frames must be [T, B, *{tuple(self.input_shape)}], got shape {frames.shape}")
        if record not in ("output", "all"):
            raise ValueError(f"record must be 'output' or 'all', got {record!r}")
        return _run_spiking(self, self.layers, frames, record == "all")

    def predict(self, x, batch_size: int = 2000) -> np.ndarray:
        """Classify ``x [N, *input_shape]``: hold each frame for ``depth`` steps, decode step ``depth - 1``."""
        x = self._as_input(x, "x")
        out = []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            frames = encoding.direct(xb, self.depth)
            spikes = self.run(frames)[self.depth - 1]
            out.append(np.asarray(encoding.nhot_decode(spikes.astype(jnp.result_type(float)), self.key_matrix)))
        return np.concatenate(out)


def _run_spiking(net: SpikingNet, layers, frames, record_all: bool):
    cache_key = (type(net), net.ops, tuple(net.input_shape), net.dt, record_all)
    fn = _RUNNERS.get(cache_key)
    if fn is None:
        proto_net = dataclasses.replace(net, layers=(), key_matrix=None)

        def run(layers, frames):
            proto = dataclasses.replace(proto_net, layers=layers)
            state0 = proto.init_state(frames.shape[1], frames.dtype)
            rec = (lambda s, out: out) if record_all else (lambda s, out: out[-1])
            _, spikes = simulate(proto.step, layers, state0, frames, dt=proto.dt, record=rec)
            return spikes

        fn = jax.jit(run)
        _RUNNERS[cache_key] = fn
    return fn(layers, frames)


_RUNNERS: dict = {}


def export_spiking(model: WhetstoneNet, variables, key_matrix, *, input_shape, sharpness=None, dt: float = 1.0) -> SpikingNet:
    """Convert a fully sharpened :class:`WhetstoneNet` into a :class:`SpikingNet`.

    Dense/Conv layers become synapses with batch norm folded in (:func:`fold_batchnorm`,
    using the running statistics) and neurons with threshold ``v_th`` = the activation's step
    threshold (0.5 for brelu, 0 for sigmoid). A :class:`MaxPool` becomes a layer of OR neurons
    (sum of the window's spikes, ``v_th = 1``). ``input_shape`` is one sample's shape.
    Passing ``sharpness`` checks that every layer is at 1 (the export is exact only then).
    """
    if not isinstance(model, WhetstoneNet):
        raise ValueError(f"model must be a WhetstoneNet, got {type(model).__name__}")
    n = count_sharpenable(model.layers)
    if sharpness is not None:
        s = np.asarray(sharpness, dtype=np.float64)
        check_sharpness(s)
        if s.shape != (n,) or np.any(s < 1.0):
            raise ValueError(f"export needs a fully sharpened network (all {n} layers at 1), got sharpness {s.tolist()}")
    theta = activation_threshold(model.activation)
    params = variables["params"]
    stats = variables.get("batch_stats", {})
    ops, layers = [], []
    flatten = False
    i = 0
    for j, spec in enumerate(model.layers):
        if isinstance(spec, Flatten):
            flatten = True
            continue
        if isinstance(spec, MaxPool):
            if i == 0:
                raise ValueError(f"layer {j}: a MaxPool before the first sharpenable layer has no spiking equivalent")
            if spec.padding != "VALID":
                raise ValueError(f"layer {j}: only VALID max pooling is exported (padding would change the window count)")
            ops.append(LayerOp("pool", flatten, tuple(spec.stride), "VALID", tuple(spec.window)))
            dtype = layers[-1].lif.v_th.dtype
            layers.append(SpikingLayer(None, None, _lif_params(1.0, dt, dtype)))
            flatten = False
            continue
        p = params[f"linear{i}"]
        w, b = jnp.asarray(p["kernel"]), jnp.asarray(p["bias"])
        if model.batch_norm:
            bn, st = params[f"bn{i}"], stats[f"bn{i}"]
            w, b = fold_batchnorm(w, b, bn["scale"], bn["bias"], st["mean"], st["var"], model.bn_epsilon)
        if isinstance(spec, Dense):
            ops.append(LayerOp("dense", flatten))
        else:
            ops.append(LayerOp("conv", flatten, tuple(spec.strides), spec.padding, conv_impl=model.conv_impl))
        layers.append(SpikingLayer(w, b, _lif_params(theta, dt, w.dtype)))
        flatten = False
        i += 1
    K = check_key(key_matrix)
    net = SpikingNet(tuple(ops), tuple(layers), K, tuple(int(v) for v in input_shape), float(dt))
    out = jax.eval_shape(lambda l: net.init_state(1, layers[0].w.dtype)[-1][1], net.layers)
    width = int(np.prod(out.shape[1:]))
    check_key(K, width=width)
    if flatten or len(out.shape) != 2:
        raise ValueError(f"the network must end in [B, width]; its output layer has shape {out.shape}")
    return net


#: The fixed-point neuron of every layer: NSAT-style integer LIF, input acting in the same tick.
FIXED_NEURON = fixed_point.FixedPointLIF(synaptic_delay=0)


@dataclasses.dataclass(frozen=True)
class FixedPointSpikingNet(SpikingNet):
    """A :class:`SpikingNet` in NSAT-style integer arithmetic (:mod:`spikejax.fixed_point`).

    Every weight, bias and threshold is an int32 in units of ``2**-frac_bits``; each layer is a
    :class:`spikejax.fixed_point.FixedPointLIF` population with full leak (``leak_shift = 0``: the
    membrane is this tick's integer input, as the float export's memoryless neurons), zero reset
    and no refractoriness; its input is the exact int32 sum of spikes times integer weights plus
    the integer bias (spike counts for pooling).  Input frames must be binary.  Built by
    :func:`to_fixed_point`; ``run`` / ``predict`` as :class:`SpikingNet`'s, with int32 spikes.
    """

    frac_bits: int = 0

    neuron: ClassVar[Any] = FIXED_NEURON

    def _init_neuron(self, lif, shape, dtype):
        return self.neuron.init(lif, shape)

    def _as_input(self, x, name: str):
        x = jnp.asarray(x)
        if is_concrete(x) and not np.all(np.isin(np.asarray(x), (0, 1))):
            raise ValueError(f"the fixed-point network takes binary (0/1) {name}; direct current input has no integer form here")
        return x.astype(jnp.int32)


def to_fixed_point(net: SpikingNet, frac_bits: int = 8, *, bits: int = 32) -> FixedPointSpikingNet:
    """Quantise an exported :class:`SpikingNet` to integers with ``frac_bits`` fractional bits.

    ``w_int = round(w 2**frac_bits)``, ``b_int = round(b 2**frac_bits)``, ``v_th,int =
    round(v_th 2**frac_bits)`` (pool layers keep their count threshold 1; convolutions are computed
    as integer patches times the integer kernel, ``conv_impl='slices'``); a neuron fires when
    ``sum(s w_int) + b_int >= v_th,int``, so it can disagree with the float network only where the
    float membrane lies within the rounding error of the threshold.  ``bits`` is the width of the
    membrane and accumulator (saturating); a weight, bias or threshold that does not fit raises.
    """
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, (int, np.integer)) or not 0 <= frac_bits <= 24:
        raise ValueError(f"frac_bits must be an int in [0, 24], got {frac_bits!r}")
    if not isinstance(net, SpikingNet):
        raise ValueError(f"net must be a SpikingNet (from export_spiking), got {type(net).__name__}")
    scale = 2.0 ** int(frac_bits)
    lo, hi = fixed_point.int_range(bits)
    layers = []
    for l, (op, lp) in enumerate(zip(net.ops, net.layers)):
        if op.kind == "pool":  # a spike count >= 1 fires, as in the float export
            layers.append(SpikingLayer(None, None, fixed_point.FixedPointLIF.params(bits=bits, acm_bits=bits, leak_shift=0, v_th=1, v_reset=0)))
            continue
        ints = {}
        for name, v in (("weights", lp.w), ("biases", lp.b), ("threshold", lp.lif.v_th)):
            v = np.round(np.asarray(v, np.float64) * scale)
            if np.any(np.abs(v) > hi):
                raise ValueError(f"layer {l}: {name} do not fit in {bits} bits at frac_bits={frac_bits} (max |x| * 2**frac_bits = {np.abs(v).max():.3g})")
            ints[name] = v.astype(np.int32)
        th = int(ints["threshold"].max())
        lif = fixed_point.FixedPointLIF.params(bits=bits, acm_bits=bits, leak_shift=0, v_th=th, v_reset=th - int(scale))
        layers.append(SpikingLayer(jnp.asarray(ints["weights"]), jnp.asarray(ints["biases"]), lif))
    ops = tuple(dataclasses.replace(op, conv_impl="slices") for op in net.ops)  # integer patches @ integer kernel
    return FixedPointSpikingNet(ops, tuple(layers), net.key_matrix, net.input_shape, frac_bits=int(frac_bits))


def sharpened_predict(model: WhetstoneNet, variables, x, key_matrix, sharpness=None, batch_size: int = 2000) -> np.ndarray:
    """Class predictions of the Whetstone network (fully sharp unless ``sharpness`` is given)."""
    n = count_sharpenable(model.layers)
    s = full_sharpness(n) if sharpness is None else jnp.asarray(sharpness, jnp.float32)
    f = jax.jit(lambda v, xb, s: encoding.nhot_decode(model.apply(v, xb, s, train=False), key_matrix))
    x = _float("x", x)
    return np.concatenate([np.asarray(f(variables, x[i : i + batch_size], s)) for i in range(0, x.shape[0], batch_size)])


# =============================================================================================
# 6. Training
# =============================================================================================


def make_optimizer(name: str, learning_rate: float, **kw) -> optax.GradientTransformation:
    """``'rmsprop'`` (Keras form: ``g/(sqrt(nu) + eps)``, decay 0.9, eps 1e-7), ``'adadelta'``
    (rho 0.95, eps 1e-8; Whetstone's examples use lr 4.0), ``'adam'`` or ``'sgd'``."""
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0) and not callable(learning_rate):
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    if name == "rmsprop":
        return optax.rmsprop(learning_rate, decay=kw.pop("decay", 0.9), eps=kw.pop("eps", 1e-7), eps_in_sqrt=False, **kw)
    if name == "adadelta":
        return optax.adadelta(learning_rate, rho=kw.pop("rho", 0.95), eps=kw.pop("eps", 1e-8), **kw)
    if name == "adam":
        return optax.adam(learning_rate, **kw)
    if name == "sgd":
        return optax.sgd(learning_rate, **kw)
    raise ValueError(f"optimizer must be one of ['adadelta', 'adam', 'rmsprop', 'sgd'], got {name!r}")


def _split_vars(variables):
    return variables["params"], variables.get("batch_stats", {})


def _join_vars(params, stats):
    return {"params": params, "batch_stats": stats} if stats else {"params": params}


def accuracy(model: WhetstoneNet, variables, x, y, key_matrix, sharpness, batch_size: int = 1000) -> float:
    """Test accuracy (N-hot decode) at the given per-layer ``sharpness``."""
    return float(np.mean(sharpened_predict(model, variables, x, key_matrix, sharpness, batch_size) == np.asarray(y)))


def _make_eval(model, K, batch_size, fused: bool = True):
    """Count of correct N-hot decodes over padded batches ``xb [nb, bs, ...]`` (mask ``mb``): one
    jitted scan over the batches, or (``fused=False``) one jitted call per batch."""

    def correct(params, stats, xi, yi, mi, s):
        pred = encoding.nhot_decode(model.apply(_join_vars(params, stats), xi, s, train=False), K)
        return jnp.sum((pred == yi) & mi)

    @jax.jit
    def ev(params, stats, xb, yb, mb, s):
        def body(c, xs):
            return c + correct(params, stats, *xs, s), None

        c, _ = lax.scan(body, jnp.int32(0), (xb, yb, mb))
        return c

    if fused:
        return ev
    one = jax.jit(correct)

    def ev_stepwise(params, stats, xb, yb, mb, s):
        return sum(int(one(params, stats, xb[i], yb[i], mb[i], s)) for i in range(int(xb.shape[0])))

    return ev_stepwise


def _pad_batches(x, y, bs):
    n = int(x.shape[0])
    nb = -(-n // bs)
    pad = nb * bs - n
    xp = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
    yp = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)]) if pad else y
    m = (jnp.arange(nb * bs) < n).reshape(nb, bs)
    return xp.reshape((nb, bs) + x.shape[1:]), yp.reshape(nb, bs), m


def fit_whetstone(
    model: WhetstoneNet,
    variables,
    key_matrix,
    sharpener,
    optimizer: optax.GradientTransformation,
    train: tuple,
    test: tuple,
    *,
    max_epochs: int,
    batch_size: int,
    key,
    ctx=None,
    on_epoch: Callable | None = None,
    eval_batch: int = 1000,
    log: Callable | None = None,
    val: tuple | None = None,
    temperature: float = 1.0,
    fuse_epoch: bool = True,
):
    """Train ``model`` while ``sharpener`` sharpens it; stop when every layer is at 1 (or ``max_epochs``).

    Each epoch is one jitted ``lax.scan`` over shuffled minibatches: forward at the current
    per-layer sharpness, N-hot softmax loss, optimizer step, ``sharpener.on_batch``. At the
    epoch end the test accuracy is measured at the sharpness just trained with and at full
    sharpness, then ``sharpener.on_epoch_end(state, mean_loss)`` runs. With ``ctx`` the loop
    checkpoints every epoch and resumes. With ``val = (x, y)`` (a validation split held out of
    the training data) the same two accuracies are also recorded on it (``val_acc``,
    ``val_acc_sharp``), so settings can be chosen without looking at the test set.
    ``temperature`` divides the N-hot softmax logits of the training loss (:func:`nhot_loss`).

    ``fuse_epoch=False`` runs the same minibatch steps (same shuffles, same dropout keys) as one
    jitted call each, and evaluates one jitted batch at a time, instead of one ``lax.scan`` per
    epoch. That is for convolutional nets with ``conv_impl='lax'``: XLA's CPU backend runs
    ``lax.conv`` inside a loop body over ten times slower than as a top-level call (the
    ``cnn_unrestricted`` training step with the steep sigmoid, batch 128: 0.14 s per call vs
    1.9 s per scanned step; the matmul forms take 0.8 s scanned; ``benchmarks/bench_whetstone_conv.py``,
    BENCHMARKS.md). Returns ``(variables, sharpener_state, history)``.
    """
    n = count_sharpenable(model.layers)
    if getattr(sharpener, "n_layers", n) != n:
        raise ValueError(f"the sharpener handles {sharpener.n_layers} layers but the model has {n} sharpenable layers")
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    xtr, ytr = (jnp.asarray(a) for a in train)
    xte, yte = (jnp.asarray(a) for a in test)
    ytr, yte = ytr.astype(jnp.int32), yte.astype(jnp.int32)
    K = check_key(key_matrix)
    out_width = jax.eval_shape(lambda v, x: model.apply(v, x, full_sharpness(n)), variables, xtr[:1]).shape[-1]
    check_key(K, width=out_width)
    ntr = int(xtr.shape[0])
    if not 1 <= batch_size <= ntr:
        raise ValueError(f"batch_size must be in 1..{ntr}, got {batch_size}")
    params, stats = _split_vars(variables)
    opt_state = optimizer.init(params)
    sh = sharpener.init()
    names = ("epoch", "train_loss", "sharpness", "test_acc", "test_acc_sharp", "epoch_time_s")
    hist = {k: [] for k in names + (("val_acc", "val_acc_sharp") if val is not None else ())}
    start = 0
    if ctx is not None:
        ck = ctx.load_checkpoint()
        if ck is not None:
            start, (params, stats, opt_state, sh, hist) = ck
            params, stats, opt_state, sh = jax.tree_util.tree_map(jnp.asarray, (params, stats, opt_state, sh))

    def loss_fn(p, st, xb, yb, s, k):
        rngs = {"dropout": k}
        if st:
            y, upd = model.apply({"params": p, "batch_stats": st}, xb, s, train=True, mutable=["batch_stats"], rngs=rngs)
            st = upd["batch_stats"]
        else:
            y = model.apply({"params": p}, xb, s, train=True, rngs=rngs)
        return nhot_loss(y, yb, K, temperature), st

    def body(carry, xs):
        p, st, o, shs = carry
        bi, kk = xs
        xb, yb = take_batch((xtr, ytr), bi)
        (loss, st), g = jax.value_and_grad(loss_fn, has_aux=True)(p, st, xb, yb, sharpener.sharpness(shs), kk)
        upd, o = optimizer.update(g, o, p)
        return (optax.apply_updates(p, upd), st, o, sharpener.on_batch(shs)), loss

    @jax.jit
    def epoch_plan(k):
        kp, kd = jax.random.split(k)
        idx = epoch_batches(kp, ntr, batch_size)
        return idx, jax.random.split(kd, idx.shape[0])

    @jax.jit
    def epoch_fused(params, stats, opt_state, sh, k):
        (params, stats, opt_state, sh), losses = lax.scan(body, (params, stats, opt_state, sh), epoch_plan(k))
        return params, stats, opt_state, sh, jnp.mean(losses)

    step = jax.jit(body)

    def epoch_stepwise(params, stats, opt_state, sh, k):
        idx, kks = epoch_plan(k)
        carry, losses = (params, stats, opt_state, sh), []
        for i in range(int(idx.shape[0])):
            carry, loss = step(carry, (idx[i], kks[i]))
            losses.append(loss)
        return (*carry, jnp.mean(jnp.stack(losses)))

    epoch = epoch_fused if fuse_epoch else epoch_stepwise

    epoch_end = jax.jit(sharpener.on_epoch_end)
    ev = _make_eval(model, K, eval_batch, fused=fuse_epoch)
    xb, yb, mb = _pad_batches(xte, yte, min(eval_batch, int(xte.shape[0])))
    nte = int(xte.shape[0])
    if val is not None:
        xva, yva = (jnp.asarray(a) for a in val)
        vb, vyb, vmb = _pad_batches(xva, yva.astype(jnp.int32), min(eval_batch, int(xva.shape[0])))
        nva = int(xva.shape[0])
    ones = full_sharpness(n)
    keys = jax.random.split(key, max_epochs)
    for e in range(start, max_epochs):
        if bool(sharpener.done(sh)):
            break
        t0 = time.time()
        params, stats, opt_state, sh, loss = epoch(params, stats, opt_state, sh, keys[e])
        loss = float(loss)
        dt = time.time() - t0
        s_now = sharpener.sharpness(sh)
        acc = int(ev(params, stats, xb, yb, mb, s_now)) / nte
        acc_sharp = int(ev(params, stats, xb, yb, mb, ones)) / nte
        msg = {}
        if val is not None:
            msg["val_acc"] = int(ev(params, stats, vb, vyb, vmb, s_now)) / nva
            msg["val_acc_sharp"] = int(ev(params, stats, vb, vyb, vmb, ones)) / nva
            for k, v in msg.items():
                hist[k].append(v)
        sh = epoch_end(sh, jnp.float32(loss))
        hist["epoch"].append(e + 1)
        hist["train_loss"].append(loss)
        hist["sharpness"].append(np.asarray(s_now).tolist())
        hist["test_acc"].append(acc)
        hist["test_acc_sharp"].append(acc_sharp)
        hist["epoch_time_s"].append(dt)
        msg = dict(loss=loss, acc=acc, acc_sharp=acc_sharp, **msg, sharpness=np.round(np.asarray(s_now), 3).tolist(), epoch_s=round(dt, 1))
        if on_epoch is not None:
            on_epoch(e, _join_vars(params, stats), sh, hist)
        if ctx is not None:
            ctx.progress(e + 1, max_epochs, **msg)
            ctx.save_checkpoint(e + 1, (params, stats, opt_state, sh, hist))
        elif log is not None:
            log(f"epoch {e + 1}: {msg}")
    return _join_vars(params, stats), sh, hist
