"""Whetstone training as one pure, jittable function of traced hyperparameters (for sweeps and BO).

:class:`WhetstoneTask` trains a dense Whetstone network (papers.md 3) for a fixed budget of
epochs and returns its *spiking* accuracy: the network evaluated with every layer fully
sharpened (``s = 1``: the activations are exact Heaviside steps, the outputs binary, decoded by
the N-hot code).  Every hyperparameter that does not change array shapes is a traced value, so
``K`` configurations train together as one vmapped program with
``spikejax.sweep.sweep(task, hparams, *task_data)`` and a batch of Optuna trials is one call.

Hyperparameters (``hp`` dict of scalars; missing ones take :attr:`WhetstoneTask.defaults`)
-------------------------------------------------------------------------------------------------
``log10_lr``        RMSprop (Keras form, eps outside the square root) learning rate, log10;
                    multiplied by ``lr_decay`` once per epoch (static, default 0.9).
``sharpen_start``   fraction of the step budget trained before sharpening starts, in [0, 1).
                    From there the *model* sharpness rises linearly per batch to 1 at the end of
                    training (rate ``1/(1 - sharpen_start)`` per unit of training), spread
                    bottom-up over the layers as Whetstone's ``set_model_sharpness``
                    (:func:`spikejax.whetstone.model_to_layer_sharpness`).
``dropout``         dropout rate on the hidden layers while training.
``key_units``       N-hot code: output units per class (1 = one-hot), ``1..max_key_units``.  The
                    output layer always has ``n_classes * max_key_units`` units; class ``c`` owns
                    units ``[c M, c M + key_units)`` (disjoint code); the other units are masked
                    to 0, which adds the same constant to every class score, so the network is
                    exactly one with an output layer of ``n_classes * key_units`` units.
``seed``            initial weights and dropout masks.
``data_seed``       mini-batch order (default: ``seed``); fix it so all configurations see the
                    same data stream.

Static (fields): layer widths, activation (``'sigmoid'``: Whetstone's steep sigmoid, the repo's
default, or ``'brelu'``), epochs, batch size, ``lr_decay``, evaluation batch.

Data: ``task(hp, xtr, ytr, xval, yval, xte, yte)`` with images flattened to ``[N, n_in]`` (already
converted, e.g. by :func:`spikejax.whetstone.convert_inputs`) and int labels.

Metrics: ``val_acc`` / ``test_acc`` (spiking, fully sharpened), ``val_acc_soft`` (validation
accuracy at sharpness 0 with the final weights, for reference), ``train_loss`` (mean N-hot loss
of the last tenth of the steps) and ``final_model_sharpness`` (of the last training batch).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .data import epoch_batches, take_batch
from .whetstone import brelu, model_to_layer_sharpness, steep_sigmoid

__all__ = ["WhetstoneTask", "HP_KEYS", "masked_nhot_key", "output_mask"]

HP_KEYS = ("log10_lr", "sharpen_start", "dropout", "key_units", "seed", "data_seed")

_DEFAULTS = {"log10_lr": -3.0, "sharpen_start": 0.3, "dropout": 0.2, "key_units": 10, "seed": 0, "data_seed": None}


def output_mask(key_units, n_classes: int, max_key_units: int, dtype=jnp.float32):
    """``[n_classes * max_key_units]`` 0/1 mask of the output units in use (``key_units`` may be traced)."""
    j = jnp.arange(n_classes * max_key_units, dtype=jnp.int32) % max_key_units
    return (j < jnp.asarray(key_units).astype(jnp.int32)).astype(dtype)


def masked_nhot_key(key_units, n_classes: int, max_key_units: int, dtype=jnp.float32):
    """Disjoint N-hot key ``[n_classes, n_classes * max_key_units]``: class ``c`` owns units
    ``c M .. c M + key_units - 1`` (``M = max_key_units``)."""
    j = jnp.arange(n_classes * max_key_units, dtype=jnp.int32)
    c = jnp.arange(n_classes, dtype=jnp.int32)[:, None]
    own = (j[None, :] // max_key_units) == c
    return (own & ((j[None, :] % max_key_units) < jnp.asarray(key_units).astype(jnp.int32))).astype(dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class WhetstoneTask:
    """Train one Whetstone configuration; ``task(hp, *data) -> metrics`` (see the module doc).

    Identity-hashed (``eq=False``) so :func:`spikejax.sweep.sweep` caches one program per task.
    ``defaults``: ``(name, value)`` pairs overriding the built-in defaults
    (``log10_lr=-3, sharpen_start=0.3, dropout=0.2, key_units=10, seed=0``).
    """

    n_in: int = 784
    hidden: tuple = (256, 64)
    n_classes: int = 10
    max_key_units: int = 10
    activation: str = "sigmoid"
    epochs: int = 4
    batch_size: int = 100
    lr_decay: float = 0.9
    eval_batch: int = 1000
    defaults: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for name in ("n_in", "n_classes", "max_key_units", "epochs", "batch_size", "eval_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ValueError(f"hidden needs at least one positive width, got {self.hidden}")
        if self.activation not in ("sigmoid", "brelu"):
            raise ValueError(f"activation must be 'sigmoid' or 'brelu', got {self.activation!r}")
        if not 0.0 < float(self.lr_decay) <= 1.0:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        over = dict(self.defaults)
        unknown = sorted(set(over) - set(HP_KEYS))
        if unknown:
            raise ValueError(f"WhetstoneTask: unknown defaults {unknown}; allowed: {list(HP_KEYS)}")
        object.__setattr__(self, "_defaults", {**_DEFAULTS, **over})

    # -- shapes ---------------------------------------------------------------------------------------
    @property
    def sizes(self) -> tuple:
        return (self.n_in, *self.hidden, self.n_classes * self.max_key_units)

    @property
    def n_layers(self) -> int:
        """Sharpenable layers (every Dense, the output layer included, as in Whetstone)."""
        return len(self.sizes) - 1

    def resolve(self, hp: Mapping[str, Any]) -> dict:
        unknown = sorted(set(hp) - set(HP_KEYS))
        if unknown:
            raise ValueError(f"WhetstoneTask: unknown hyperparameters {unknown}; allowed: {list(HP_KEYS)}")
        full = dict(self._defaults)
        full.update(hp)
        if full["data_seed"] is None:
            full["data_seed"] = full["seed"]
        for name, lo, hi in (("sharpen_start", 0.0, 1.0), ("dropout", 0.0, 1.0)):
            v = full[name]
            if not isinstance(v, jax.core.Tracer) and not lo <= float(np.asarray(v)) < hi:
                raise ValueError(f"{name} must lie in [{lo}, {hi}), got {v}")
        ku = full["key_units"]
        if not isinstance(ku, jax.core.Tracer) and not 1 <= int(np.asarray(ku)) <= self.max_key_units:
            raise ValueError(f"key_units must lie in 1..{self.max_key_units}, got {ku}")
        return full

    # -- model ----------------------------------------------------------------------------------------
    def _act(self, x, s):
        return (steep_sigmoid if self.activation == "sigmoid" else brelu)(x, s)

    def init_params(self, key) -> list:
        """Glorot-uniform weights (Keras' default), zero biases: ``[(w, b), ...]``."""
        init = jax.nn.initializers.glorot_uniform()
        keys = jax.random.split(key, self.n_layers)
        return [(init(k, (a, b), jnp.float32), jnp.zeros((b,), jnp.float32)) for k, a, b in zip(keys, self.sizes[:-1], self.sizes[1:])]

    def forward(self, params, x, sharpness, key_units, *, dropout=0.0, key=None, return_hidden: bool = False):
        """Outputs ``[B, n_classes * max_key_units]`` in [0, 1] (masked units 0) at per-layer
        ``sharpness [n_layers]``; dropout on hidden layers when ``key`` is given."""
        h = x
        hidden = []
        dkeys = jax.random.split(key, len(params)) if key is not None else None
        for i, (w, b) in enumerate(params):
            h = self._act(h @ w + b[None, :], sharpness[i])
            if i < len(params) - 1:
                hidden.append(h)
                if dkeys is not None:
                    rate = jnp.asarray(dropout, h.dtype)
                    keep = jax.random.bernoulli(dkeys[i], 1.0 - rate, h.shape).astype(h.dtype)
                    h = h * keep / (1.0 - rate)
        out = h * output_mask(key_units, self.n_classes, self.max_key_units, h.dtype)[None, :]
        return (out, hidden) if return_hidden else out

    def scores(self, y, key_units):
        """Whetstone's N-hot class scores ``(2y - 1)(2K - 1)^T``."""
        K = masked_nhot_key(key_units, self.n_classes, self.max_key_units, y.dtype)
        return (2.0 * y - 1.0) @ (2.0 * K - 1.0).T

    def sharpness_at(self, step, total_steps, sharpen_start):
        """Per-layer sharpness for the batch ``step`` (0-based) of ``total_steps``."""
        p = jnp.asarray(step).astype(jnp.float32) / jnp.float32(total_steps)
        start = jnp.asarray(sharpen_start, jnp.float32)
        m = jnp.clip((p - start) / (1.0 - start), 0.0, 1.0)
        return model_to_layer_sharpness(m, self.n_layers, bottom_up=True)

    # -- training and evaluation --------------------------------------------------------------------
    def __call__(self, hp, xtr, ytr, xval, yval, xte, yte) -> dict:
        hp = self.resolve(hp)
        k_init = jax.random.fold_in(jax.random.PRNGKey(jnp.asarray(hp["seed"]).astype(jnp.uint32)), 0)
        k_drop = jax.random.fold_in(jax.random.PRNGKey(jnp.asarray(hp["seed"]).astype(jnp.uint32)), 1)
        k_data = jax.random.fold_in(jax.random.PRNGKey(jnp.asarray(hp["data_seed"]).astype(jnp.uint32)), 2)
        params = self.init_params(k_init)
        params, losses, m_last = self.fit(params, hp, xtr, ytr, k_data, k_drop)
        ones = jnp.ones((self.n_layers,), jnp.float32)
        zeros = jnp.zeros((self.n_layers,), jnp.float32)
        tail = max(1, losses.shape[0] // 10)
        return {
            "val_acc": self.accuracy(params, xval, yval, ones, hp["key_units"]),
            "test_acc": self.accuracy(params, xte, yte, ones, hp["key_units"]),
            "val_acc_soft": self.accuracy(params, xval, yval, zeros, hp["key_units"]),
            "train_loss": jnp.mean(losses[-tail:]),
            "final_model_sharpness": m_last,
        }

    def fit(self, params, hp, xtr, ytr, k_data, k_drop):
        """``epochs`` epochs of RMSprop on shuffled mini-batches while sharpening; returns
        ``(params, per-step losses, model sharpness of the last batch)``."""
        hp = self.resolve(hp)
        n = int(xtr.shape[0])
        nb = n // self.batch_size
        if nb < 1:
            raise ValueError(f"batch_size {self.batch_size} > {n} training samples")
        total = nb * self.epochs
        idx = jnp.concatenate([epoch_batches(k, n, self.batch_size) for k in jax.random.split(k_data, self.epochs)])
        lr = 10.0 ** jnp.asarray(hp["log10_lr"], jnp.float32)
        decay = float(self.lr_decay)

        def sched(count):
            epoch = (count // nb).astype(jnp.float32)
            return lr * decay**epoch

        opt = optax.rmsprop(sched, decay=0.9, eps=1e-7, eps_in_sqrt=False)
        with jax.numpy_dtype_promotion("standard"):
            opt_state = opt.init(params)
        ku = hp["key_units"]
        start = hp["sharpen_start"]
        dropout = hp["dropout"]

        def loss_fn(p, xb, yb, s, k):
            y = self.forward(p, xb, s, ku, dropout=dropout, key=k)
            return optax.softmax_cross_entropy_with_integer_labels(self.scores(y, ku), yb).mean()

        def body(carry, xs):
            p, o = carry
            t, bi = xs
            xb, yb = take_batch((xtr, ytr), bi)
            s = self.sharpness_at(t, total, start)
            loss, g = jax.value_and_grad(loss_fn)(p, xb, yb, s, jax.random.fold_in(k_drop, t))
            with jax.numpy_dtype_promotion("standard"):  # optax mixes int counts and floats
                upd, o = opt.update(g, o, p)
                p = optax.apply_updates(p, upd)
            return (p, o), loss

        steps = jnp.arange(total, dtype=jnp.int32)
        (params, _), losses = jax.lax.scan(body, (params, opt_state), (steps, idx))
        m_last = self.sharpness_at(total - 1, total, start).mean()
        return params, losses, m_last

    def accuracy(self, params, x, y, sharpness, key_units):
        """Accuracy at per-layer ``sharpness`` (N-hot decode, ties to the lowest class)."""
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
            xi, yi, mi = xs
            pred = jnp.argmax(self.scores(self.forward(params, xi, sharpness, key_units), key_units), -1)
            return c + jnp.sum((pred.astype(yi.dtype) == yi) & mi), None

        correct, _ = jax.lax.scan(body, jnp.int32(0), (xb, yb, valid))
        return correct.astype(jnp.float32) / n
