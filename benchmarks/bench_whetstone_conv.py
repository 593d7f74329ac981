"""Whetstone CNN training speed: convolution implementation x scanned epoch vs one call per step.

Full run (repository root, project venv):

    python benchmarks/bench_whetstone_conv.py --json benchmarks/results/bench_whetstone_conv.json

Smoke test (seconds):

    python benchmarks/bench_whetstone_conv.py --quick --json /tmp/bench_whetstone_conv-quick.json

What is timed.  ``spikejax.whetstone.fit_whetstone`` on the ``cnn_unrestricted`` row of the
Whetstone MNIST table, built exactly as ``experiments/whetstone_mnist.py`` builds it (Conv
32x10x10 x2 - Dense 100 x2 - Dense 100, batch norm, dropout 0.2 after the dense layers,
RMSprop with the per-epoch decay, batch 128) for ``--epochs`` epochs of ``--batches``
minibatches of binarised random 28x28 images, sharpening not started (the work per step does
not depend on sharpness or on the pixel values).  For both activations (the experiment's
steep sigmoid and the bounded ReLU), every convolution implementation of
``spikejax.whetstone.conv2d`` (``slices``, ``patches``, ``lax``) and both epoch modes of
``fit_whetstone`` (``fuse_epoch=True``: one jitted ``lax.scan`` over the epoch's minibatches;
``False``: one jitted call per minibatch), the epochs after the first (which compiles) are
timed and the median is reported as milliseconds per training step.  ``--malloc tuned`` (the
default) applies ``spikejax.runtime.tune_cpu_allocator`` first, as ``python -m experiments`` does:
without it glibc maps fresh pages for every large XLA buffer and the ``lax`` per-call step took
about twice as long here (260-290 ms against 140 ms with the tuning; ``--malloc default``
measures that).  The evaluation that
``fit_whetstone`` runs after every epoch (256 images) is outside the timed span.  The
1-minute load average before and after the run is recorded (this is a shared machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as C  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import spikejax.whetstone as W  # noqa: E402
from experiments import whetstone_mnist as E  # noqa: E402


def _parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a scaled-down net (conv channels / 8) and 4 steps per epoch")
    ap.add_argument("--json", default=None, help="write the results here (atomically)")
    ap.add_argument("--batches", type=int, default=None, help="minibatches per epoch (default 16)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per measurement, the first one compiles (default 3)")
    ap.add_argument("--impls", default=",".join(W.CONV_IMPLS), help="comma-separated conv implementations")
    ap.add_argument("--activations", default="sigmoid,brelu", help="comma-separated activations")
    C.add_malloc_flag(ap)
    return ap.parse_args(argv)


def measure(impl: str, fused: bool, x, y, *, activation: str, scale: float, batch: int, epochs: int) -> dict:
    cfg = E.resolve_config(dict(E.CONFIG, net="cnn_unrestricted", conv_impl=impl, activation=activation, conv_scale=scale))
    model = W.WhetstoneNet(E.layers_for(cfg), activation=cfg["activation"], batch_norm=E.use_batch_norm(cfg),
                           dropout=cfg["dropout"], conv_impl=impl, conv_dropout=cfg["conv_dropout"])
    K = W.make_key(jax.random.PRNGKey(1), 10, cfg["key_width"], cfg["key_overlapping"])
    v = model.init(jax.random.PRNGKey(0), jnp.asarray(x[:2]), jnp.zeros(model.n_sharpenable))
    sh = W.SimpleSharpener(model.n_sharpenable, start_epoch=10 * epochs, steps=1)
    steps = len(x) // batch
    lr = optax.exponential_decay(cfg["lr"], steps, cfg["lr_decay"], staircase=True)
    t0 = time.perf_counter()
    _, _, hist = W.fit_whetstone(
        model, v, K, sh, W.make_optimizer(cfg["optimizer"], lr), (x, y), (x[:256], y[:256]),
        max_epochs=epochs, batch_size=batch, key=jax.random.PRNGKey(2), eval_batch=256, fuse_epoch=fused,
    )
    wall = time.perf_counter() - t0
    ts = hist["epoch_time_s"]
    med = statistics.median(ts[1:])
    return dict(activation=activation, impl=impl, fuse_epoch=fused, steps_per_epoch=steps, first_epoch_s=ts[0], epoch_s=ts[1:],
                ms_per_step=1e3 * med / steps, total_wall_s=wall)


def main(argv=None) -> dict:
    args = _parse(argv)
    malloc_tuned = C.tune_malloc(args.malloc == "tuned")  # as the experiment runner does (spikejax.runtime)
    scale = 0.125 if args.quick else 1.0
    nb = args.batches or (4 if args.quick else 8)
    epochs = args.epochs or (2 if args.quick else 3)
    batch = 128
    rng = np.random.default_rng(0)
    x = (rng.random((nb * batch, 28, 28, 1)) < 0.2).astype(np.float32)
    y = rng.integers(0, 10, nb * batch).astype(np.int32)
    out = {"benchmark": "bench_whetstone_conv", "quick": bool(args.quick), "machine": C.machine_info(),
           "loadavg_before": list(os.getloadavg()), "batch_size": batch, "batches_per_epoch": nb, "epochs": epochs,
           "conv_channel_scale": scale, "malloc": {"requested": args.malloc, "tuned": malloc_tuned}, "rows": []}
    for act in args.activations.split(","):
        for impl in args.impls.split(","):
            for fused in (True, False):
                r = measure(impl.strip(), fused, x, y, activation=act.strip(), scale=scale, batch=batch, epochs=epochs)
                out["rows"].append(r)
                print(f"{r['activation']:8s} {r['impl']:8s} fuse_epoch={str(fused):5s} {r['ms_per_step']:8.1f} ms/step  "
                      f"(first epoch {r['first_epoch_s']:.1f} s)", flush=True)
    out["loadavg_after"] = list(os.getloadavg())
    n60k = 60000 // batch
    rows = []
    for r in out["rows"]:
        ref = next((q for q in out["rows"] if q["activation"] == r["activation"] and q["impl"] == "slices" and q["fuse_epoch"]), r)
        rows.append([r["activation"], r["impl"], "scan per epoch" if r["fuse_epoch"] else "one call per step",
                     f"{r['ms_per_step']:.0f}", f"{r['ms_per_step'] * n60k / 1e3:.0f}", f"{ref['ms_per_step'] / r['ms_per_step']:.2f}x"])
    best = {a: min((r for r in out["rows"] if r["activation"] == a), key=lambda r: r["ms_per_step"]) for a in {r["activation"] for r in out["rows"]}}
    out["description"] = (
        f"cnn_unrestricted training step (batch {batch}, conv channels x{scale}), median of epochs 2-{epochs} of "
        f"{nb} steps, glibc malloc {args.malloc}; load average before {out['loadavg_before'][0]:.2f}, after {out['loadavg_after'][0]:.2f}; fastest: "
        + "; ".join(f"{a}: {b['impl']}, {'scanned' if b['fuse_epoch'] else 'one call per step'}" for a, b in sorted(best.items()))
    )
    out["markdown"] = C.markdown_table(
        ["activation", "conv impl", "epoch mode", "ms / step", f"s / MNIST epoch ({n60k} steps)", "speed vs slices, scanned"], rows)
    if args.json:
        C.atomic_write_json(args.json, out)
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
