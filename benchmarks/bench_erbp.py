"""Training throughput (samples per second) of eRBP against non-spiking back-propagation, 784-500-10.

Full run (repository root, project venv, real MNIST in ``$SPIKEJAX_DATA``):

    python benchmarks/bench_erbp.py --mask-modes shared,per_sample,per_sample_offset --json benchmarks/results/bench_erbp.json

Smoke test (seconds, digits):

    python benchmarks/bench_erbp.py --quick --json /tmp/bench_erbp-quick.json

What is timed.  ``eRBP`` / ``peRBP`` (``--methods``): :func:`spikejax.erbp.make_train_epoch` with
the training configuration ``experiments/erbp_pimnist.py`` uses for that method (its ``CONFIG``:
presentation time, dt, learning rate, membrane kicks for eRBP, stochastic synapses with
``p_syn`` = 0.65 for peRBP, ...) on ``--samples`` MNIST training digits, for each minibatch size in
``--batch`` (samples presented in parallel, weights updated every time step; batch 1 is the pure
online rule), and for peRBP each coin mode in ``--mask-modes`` (``shared``: one coin per synapse
and step for the whole minibatch; ``per_sample``: one per sample, synapse and step;
``per_sample_offset``: per-sample coins from far fewer random bytes; the per-sample modes only at
the smallest minibatch in ``--batch``, as their cost grows with it).  ``BP``: one
shuffled epoch of Adam on the ReLU MLP of the same shape (:func:`spikejax.erbp.mlp_loss`),
minibatch ``--bp-batch``, the whole epoch one ``lax.scan``.  Each program is compiled first
(``compile_s``), then run ``--repeats`` times; medians of wall and process CPU time are
reported, with the 1-minute load average read before every timed call (the machine is shared:
compare runs only at similar load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from spikejax import erbp  # noqa: E402
from spikejax.data import epoch_batches, load_dataset, take_batch  # noqa: E402


def _parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="digits, tiny net (smoke test)")
    ap.add_argument("--json", default=None, help="write the results here (atomically)")
    ap.add_argument("--samples", type=int, default=None, help="eRBP training samples timed per call (default 2000)")
    ap.add_argument("--batch", default=None, help="comma-separated eRBP minibatch sizes (default 100,10)")
    ap.add_argument("--methods", default="erbp,perbp", help="comma-separated spiking methods (erbp, perbp)")
    ap.add_argument("--mask-modes", default="shared",
                    help="comma-separated peRBP coin modes (shared, per_sample, per_sample_offset; see spikejax.erbp)")
    ap.add_argument("--bp-batch", type=int, default=100, help="BP minibatch size")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 2)")
    return ap.parse_args(argv)


def _timed(fn, repeats):
    walls, cpus, loads = [], [], []
    for _ in range(repeats):
        loads.append(os.getloadavg()[0])
        c0, t0 = time.process_time(), time.perf_counter()
        jax.block_until_ready(fn())
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return dict(wall_s=statistics.median(walls), cpu_s=statistics.median(cpus), walls_s=walls, load1_before=loads)


def main(argv=None):
    args = _parse(argv)
    from experiments import erbp_pimnist as X

    cfg = dict(X.CONFIG)
    if args.quick:
        cfg.update(X.QUICK)
        x, y = load_dataset("digits", "train")
        sizes = (int(np.asarray(x).reshape(len(x), -1).shape[1]), 50, 10)
        samples, batches, repeats = args.samples or 200, args.batch or "10,1", args.repeats or 1
    else:
        x, y = load_dataset("mnist", "train", as_float=True)
        sizes = (784, 500, 10)
        samples, batches, repeats = args.samples or 2000, args.batch or "100,10", args.repeats or 2
    x = jnp.asarray(np.asarray(x, np.float32).reshape(len(x), -1))
    y = jnp.asarray(np.asarray(y, np.int32))
    key = jax.random.PRNGKey(0)
    out = {"benchmark": "bench_erbp", "quick": bool(args.quick), "arch": "-".join(map(str, sizes)), "machine": C.machine_info()}
    out["erbp_configs"] = {}
    out["erbp"] = []
    sizes_b = [int(b) for b in batches.split(",")]
    runs = [(m, mm) for m in args.methods.split(",") for mm in (args.mask_modes.split(",") if m == "perbp" else ["shared"])]
    for method, mask_mode in runs:
        ecfg = X.erbp_config(dict(cfg, mask_mode=mask_mode), sizes, method)
        out["erbp_configs"][method if mask_mode == "shared" else f"{method}-{mask_mode}"] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(ecfg).items()}
        for bs in (sizes_b if mask_mode == "shared" else [min(sizes_b)]):
            n = samples - samples % bs
            xs, ys = x[:n], y[:n]
            params = erbp.init_erbp(key, ecfg)
            ep = erbp.make_train_epoch(ecfg, n, bs)
            t0 = time.perf_counter()
            compiled = ep.lower(params, xs, ys, key, 1.0).compile()
            comp = time.perf_counter() - t0
            r = _timed(lambda: compiled(params, xs, ys, key, 1.0), repeats)
            row = dict(method=method, mask_mode=mask_mode if method == "perbp" else "-", batch_size=bs, samples=n, steps_per_sample=ecfg.n_train_steps, compile_s=comp, **r)
            row["samples_per_s"] = n / r["wall_s"]
            row["samples_per_cpu_s"] = n / r["cpu_s"]
            row["epoch_s"] = int(x.shape[0]) / row["samples_per_s"]
            out["erbp"].append(row)
            print(f"{method} ({mask_mode}) batch {bs}: {row['samples_per_s']:.0f} samples/s (wall {r['wall_s']:.2f} s, load {r['load1_before']})", flush=True)

    n_all = int(x.shape[0]) - int(x.shape[0]) % args.bp_batch
    opt = optax.adam(cfg["bp_lr"])
    mp = erbp.init_mlp_params(key, sizes)

    @jax.jit
    def bp_epoch(p, s, k):
        idx = epoch_batches(k, n_all, args.bp_batch)

        def body(c, bi):
            p, s = c
            xb, yb = take_batch((x, y), bi)
            g = jax.grad(erbp.mlp_loss)(p, xb, yb)
            with jax.numpy_dtype_promotion("standard"):
                u, s = opt.update(g, s, p)
                p = optax.apply_updates(p, u)
            return (p, s), None

        return jax.lax.scan(body, (p, s), idx)[0]

    s0 = opt.init(mp)
    t0 = time.perf_counter()
    c = bp_epoch.lower(mp, s0, key).compile()
    comp = time.perf_counter() - t0
    r = _timed(lambda: c(mp, s0, key), repeats)
    out["bp"] = dict(batch_size=args.bp_batch, samples=n_all, compile_s=comp, **r)
    out["bp"]["samples_per_s"] = n_all / r["wall_s"]
    out["bp"]["samples_per_cpu_s"] = n_all / r["cpu_s"]
    print(f"BP batch {args.bp_batch}: {out['bp']['samples_per_s']:.0f} samples/s (wall {r['wall_s']:.2f} s)", flush=True)
    for row in out["erbp"]:
        row["bp_over_erbp"] = out["bp"]["samples_per_s"] / row["samples_per_s"]
    out["loadavg_after"] = list(os.getloadavg())
    out["description"] = (f"{out['arch']}, training on {samples} MNIST digits per timed call (one jitted epoch "
                          f"program), median of {repeats} calls; BP: one epoch of Adam on all {n_all} digits; "
                          f"1-minute load average before the timed calls in the last column")
    head = ["method", "coins", "minibatch", "steps / sample", "samples / s", "samples / CPU s", f"s / epoch ({int(x.shape[0])} digits)",
            "BP / this (wall)", "compile s", "load avg (1 min)"]
    rows = [[X._NAMES[r["method"]], r.get("mask_mode", "-"), r["batch_size"], r["steps_per_sample"], f"{r['samples_per_s']:.0f}",
             f"{r['samples_per_cpu_s']:.0f}", f"{r['epoch_s']:.0f}", f"{r['bp_over_erbp']:.0f}x", f"{r['compile_s']:.1f}",
             f"{min(r['load1_before']):.1f}-{max(r['load1_before']):.1f}"] for r in out["erbp"]]
    b = out["bp"]
    rows.append(["BP (non-spiking)", "-", b["batch_size"], "-", f"{b['samples_per_s']:.0f}", f"{b['samples_per_cpu_s']:.0f}",
                 f"{int(x.shape[0]) / b['samples_per_s']:.1f}", "1x", f"{b['compile_s']:.1f}",
                 f"{min(b['load1_before']):.1f}-{max(b['load1_before']):.1f}"])
    out["markdown"] = C.markdown_table(head, rows)
    if args.json:
        C.atomic_write_json(args.json, out)
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
