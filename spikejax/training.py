"""A compiled, resumable training loop for classifiers (any model, any optax optimiser).

One epoch is one jitted ``lax.scan`` over on-device minibatches (no Python work per sample);
evaluation is one jitted scan over the test set.  Between epochs the loop reports progress and
writes a checkpoint through an :class:`spikejax.experiment.Context`, so an interrupted run
resumes at the last finished epoch.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .data import epoch_batches, take_batch

__all__ = ["fit_classifier", "evaluate_accuracy"]


def evaluate_accuracy(predict: Callable, params, x, y, key, batch_size: int = 500):
    """Accuracy of ``argmax predict(params, xb, key)`` over ``(x, y)``, batched with ``lax.scan``.

    The last partial batch is handled by padding and masking, so every sample counts once.
    """
    n = int(x.shape[0])
    nb = -(-n // batch_size)
    pad = nb * batch_size - n
    xp = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
    yp = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)]) if pad else y
    mask = (jnp.arange(nb * batch_size) < n).reshape(nb, batch_size)
    xb = xp.reshape((nb, batch_size) + x.shape[1:])
    yb = yp.reshape(nb, batch_size)

    @jax.jit
    def run(params, xb, yb, mask, key):
        def body(c, xs):
            xi, yi, mi, ki = xs
            pred = jnp.argmax(predict(params, xi, ki), axis=-1)
            return c + jnp.sum((pred == yi) & mi), None

        c, _ = jax.lax.scan(body, jnp.int32(0), (xb, yb, mask, jax.random.split(key, nb)))
        return c

    return float(run(params, xb, yb, mask, key)) / n


def fit_classifier(
    loss_fn: Callable,
    predict: Callable,
    params,
    optimizer: optax.GradientTransformation,
    train: tuple,
    test: tuple,
    *,
    epochs: int,
    batch_size: int,
    key,
    ctx=None,
    eval_every: int = 1,
    on_epoch: Callable | None = None,
):
    """Train with ``loss_fn(params, xb, yb, key) -> scalar`` and evaluate ``predict``.

    ``train`` and ``test`` are ``(x, y)`` arrays (moved to the device once).  Returns
    ``(params, history)`` where ``history`` has per-epoch ``train_loss``, ``test_acc`` and
    ``epoch_time_s``.  With a ``ctx`` the loop checkpoints after every epoch and resumes.
    """
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    xtr, ytr = (jnp.asarray(a) for a in train)
    xte, yte = (jnp.asarray(a) for a in test)
    n = int(xtr.shape[0])
    if batch_size <= 0 or batch_size > n:
        raise ValueError(f"batch_size must be in 1..{n}, got {batch_size}")
    opt_state = optimizer.init(params)
    history = {"epoch": [], "train_loss": [], "test_acc": [], "epoch_time_s": []}
    start = 0
    if ctx is not None:
        ck = ctx.load_checkpoint()
        if ck is not None:
            start, (params, opt_state, history) = ck
            params = jax.tree_util.tree_map(jnp.asarray, params)
            opt_state = jax.tree_util.tree_map(jnp.asarray, opt_state)

    @jax.jit
    def epoch(params, opt_state, k):
        kp, kb = jax.random.split(k)
        idx = epoch_batches(kp, n, batch_size)

        def body(carry, xs):
            p, s = carry
            bi, kk = xs
            xb, yb = take_batch((xtr, ytr), bi)
            loss, g = jax.value_and_grad(loss_fn)(p, xb, yb, kk)
            with jax.numpy_dtype_promotion("standard"):  # optax schedules mix int counts and floats
                upd, s = optimizer.update(g, s, p)
                p = optax.apply_updates(p, upd)
            return (p, s), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (idx, jax.random.split(kb, idx.shape[0])))
        return params, opt_state, jnp.mean(losses)

    keys = jax.random.split(key, epochs + 1)
    for e in range(start, epochs):
        t0 = time.time()
        params, opt_state, loss = epoch(params, opt_state, keys[e])
        loss = float(loss)
        dt = time.time() - t0
        acc = float("nan")
        if (e + 1) % eval_every == 0 or e == epochs - 1:
            acc = evaluate_accuracy(predict, params, xte, yte, keys[-1])
        history["epoch"].append(e + 1)
        history["train_loss"].append(loss)
        history["test_acc"].append(acc)
        history["epoch_time_s"].append(dt)
        if on_epoch is not None:
            on_epoch(e, params, history)
        if ctx is not None:
            ctx.progress(e + 1, epochs, loss=loss, test_acc=acc, epoch_s=round(dt, 1))
            ctx.save_checkpoint(e + 1, (params, opt_state, history))
    return params, history


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)
