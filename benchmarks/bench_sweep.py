"""Throughput of a vmapped hyperparameter sweep against running the same configurations one by one.

Full run (repository root, project venv):

    python benchmarks/bench_sweep.py --json benchmarks/results/bench_sweep.json

Smoke test (seconds):

    python benchmarks/bench_sweep.py --quick --json /tmp/bench_sweep-quick.json

What is timed.  ``K`` configurations of :class:`spikejax.sweep.MLPTask`: a rate-coded 64-128-10
LIF network (membrane readout, fast-sigmoid surrogate, Adam with cosine decay) trained for
``--steps`` mini-batches on scikit-learn digits and then evaluated on the 450 test digits.  The
configurations differ in learning rate, surrogate slope, dropout, membrane time constant and
seed (drawn once from a fixed generator).  Both paths do the same work:

* ``sequential``: one ``jax.jit(task)`` program (compiled once; the hyperparameters are traced
  arguments) called for each configuration in turn, waiting for each result;
* ``vmapped``: ``spikejax.sweep.sweep(task, hp, task.data)``: all ``K`` in one compiled program
  (``jit(shard_map(vmap(task)))`` over every device; here usually one CPU device).

Each path is called once (``compile_s``: tracing, compilation and one run), once more untimed,
then ``--repeats`` timed times, alternating between the two paths so both see the same load on a
shared machine; medians are reported.  ``speedup`` = sequential median / vmapped median (the
throughput ratio, configurations per second).  The process CPU time (user + system) of each call
is recorded too: on a busy shared machine it is steadier than wall time, and its ratio says
whether the vmapped program does less work per configuration (it does not parallelise
differently on one CPU device).  The 1-minute load average is recorded before every timed call.
``max Δ test acc``: largest difference between the two paths' test accuracies (float
reassociation in the batched matmuls can flip a spike and make trajectories drift apart).
``--batch`` lists mini-batch sizes to try (default ``32,8``): the smaller the per-configuration
work, the more a vmapped sweep gains by amortising per-operation overhead; ``--hidden`` lists
hidden widths (default ``128,32``).

Where the time goes (``parts`` table, measured in the same run): the matmuls of one configuration
(``[T*B, 64] @ [64, H]``, as the layer-major network does them) against the same matmuls for all
``K`` configurations as one batched ``dot_general`` (what ``vmap`` makes of them), and the cost of
one uniform random number (the rate-coded input draws ``T*B*64`` of them per training step).  If
XLA already runs one configuration's matmuls near the batched rate, and the random numbers and
elementwise neuron updates cost the same per configuration either way, a vmapped sweep cannot be
much faster than the sequential loop on this device.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--json", default=None, help="write the results here (atomically)")
    ap.add_argument("--ks", default=None, help="comma-separated numbers of configurations (default 16,64)")
    ap.add_argument("--batch", default=None, help="comma-separated mini-batch sizes (default 32,8)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per configuration (default 200)")
    ap.add_argument("--hidden", default=None, help="comma-separated hidden widths (default 128,32)")
    ap.add_argument("--T", type=int, default=None, help="time steps per sample (default 10)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 3)")
    ap.add_argument(
        "--host-devices",
        type=int,
        default=0,
        help="split the CPU into N XLA host devices (sets XLA_FLAGS before jax starts); 0 = leave as is",
    )
    return ap.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.host_devices:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.host_devices}").strip()

import _common as C  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from spikejax.data import load_dataset  # noqa: E402
from spikejax.sweep import MLPTask, stack_configs, sweep, unstack_configs  # noqa: E402


def make_hparams(K: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return stack_configs(
        [
            {
                "lr": float(10 ** rng.uniform(-3, -1.5)),
                "slope": float(rng.uniform(5, 50)),
                "dropout": float(rng.uniform(0, 0.3)),
                "tau_mem": float(rng.uniform(5e-3, 30e-3)),
                "seed": i,
            }
            for i in range(K)
        ]
    )


def make_task(batch: int, steps: int, hidden: int, T: int) -> MLPTask:
    xtr, ytr = load_dataset("digits", "train")
    xte, yte = load_dataset("digits", "test")
    return MLPTask(
        (xtr.reshape(len(xtr), -1), ytr), (xte.reshape(len(xte), -1), yte), (64, hidden, 10), T=T, steps=steps, batch_size=batch
    )


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def time_paths(task: MLPTask, hp: dict, repeats: int) -> dict:
    """Median wall and process-CPU seconds of both paths; the timed repeats alternate between the
    two paths so that both see the same (shared-machine) load."""
    configs = unstack_configs(hp)
    single = jax.jit(task)

    def run_sequential():
        return [jax.block_until_ready(single(c, task.data)) for c in configs]

    def run_vmapped():
        return sweep(task, hp, task.data)  # returns numpy: already synchronised

    paths = {"sequential": run_sequential, "vmapped": run_vmapped}
    res = {name: {"times_s": [], "cpu_s": [], "loadavg": []} for name in paths}
    outs = {}
    for name, fn in paths.items():  # first call: trace + compile + run; then one warm-up
        t0 = time.perf_counter()
        fn()
        res[name]["compile_s"] = time.perf_counter() - t0
        outs[name] = fn()
    for _ in range(repeats):
        for name, fn in paths.items():
            res[name]["loadavg"].append(_load())
            c0, t0 = _cpu(), time.perf_counter()
            fn()
            res[name]["times_s"].append(time.perf_counter() - t0)
            res[name]["cpu_s"].append(_cpu() - c0)
    for name in paths:
        r = res[name]
        r["median_s"] = statistics.median(r["times_s"])
        r["min_s"], r["max_s"] = min(r["times_s"]), max(r["times_s"])
        r["median_cpu_s"] = statistics.median(r["cpu_s"])
    seq_acc = np.array([float(o["test_acc"]) for o in outs["sequential"]])
    vm_acc = np.asarray(outs["vmapped"]["test_acc"])
    res["speedup"] = res["sequential"]["median_s"] / res["vmapped"]["median_s"]
    res["cpu_speedup"] = res["sequential"]["median_cpu_s"] / res["vmapped"]["median_cpu_s"]
    res["max_abs_test_acc_diff"] = float(np.max(np.abs(seq_acc - vm_acc)))
    res["mean_test_acc"] = float(np.mean(vm_acc))
    return res


def _per_iter(f, *args, n: int = 200) -> float:
    """Seconds per call of ``f(i, c, *args)`` inside a ``lax.scan`` of ``n`` iterations (one
    program); ``f`` gets the iteration ``i`` and the running carry ``c`` so that XLA cannot hoist
    the work out of the loop."""

    def prog(*a):
        def body(c, i):
            return c + 1e-9 * jnp.sum(f(i, c, *a)), None

        return jax.lax.scan(body, jnp.float32(0.0), jnp.arange(n))[0]

    g = jax.jit(prog)
    return C.time_fn(lambda: g(*args), jax.block_until_ready, repeats=5, min_time=0.0)["min_s"] / n


def time_parts(K: int, B: int, hidden: int, T: int) -> dict:
    """GFLOP/s of one configuration's input-layer matmul vs all K as one batched dot, and ns per
    uniform random number (threefry, the default PRNG)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((K, T * B, 64)), jnp.float32)
    w = jnp.asarray(rng.random((K, 64, hidden)), jnp.float32)
    flop = 2 * T * B * 64 * hidden
    t_one = _per_iter(lambda i, c, a, b: (a + c) @ b, x[0], w[0])
    t_all = _per_iter(lambda i, c, a, b: jnp.einsum("kbi,kih->kbh", a + c, b), x, w)
    n_rand = K * T * B * 64
    t_rng = _per_iter(lambda i, c, k: jax.random.uniform(jax.random.fold_in(k, i), (K, T, B, 64)), jax.random.PRNGKey(0), n=50)
    return {
        "K": K,
        "batch": B,
        "hidden": hidden,
        "matmul_one_config_gflops": flop / t_one / 1e9,
        "matmul_batched_gflops": K * flop / t_all / 1e9,
        "ns_per_uniform": t_rng / n_rand * 1e9,
    }


def main(args) -> int:
    quick = args.quick
    ks = [int(k) for k in (args.ks or ("4,8" if quick else "16,64")).split(",")]
    batches = [int(b) for b in (args.batch or ("8" if quick else "32,8")).split(",")]
    steps = args.steps or (20 if quick else 200)
    hiddens = [int(h) for h in (args.hidden or ("32" if quick else "128,32")).split(",")]
    T = args.T or (5 if quick else 10)
    repeats = args.repeats or (1 if quick else 3)
    info = C.machine_info()
    info["jax"] = jax.__version__
    info["backend"] = jax.default_backend()
    info["devices"] = [str(d) for d in jax.devices()]
    print(f"# bench_sweep: 64-{{{','.join(map(str, hiddens))}}}-10 LIF on digits, T={T}, {steps} training steps/config, repeats={repeats}", flush=True)
    print(f"# {info['cpu_model']} ({info.get('cpus_usable', info['cpu_count'])} usable CPUs), "
          f"{info['backend']} x{len(info['devices'])}, load avg {info.get('loadavg_1_5_15')}", flush=True)
    rows, results = [], []
    for hidden, B in [(h, b) for h in hiddens for b in batches]:
        task = make_task(B, steps, hidden, T)
        for K in ks:
            r = time_paths(task, make_hparams(K), repeats)
            r.update({"K": K, "batch": B, "steps": steps, "T": T, "sizes": [64, hidden, 10]})
            results.append(r)
            seq, vm = r["sequential"], r["vmapped"]
            row = [
                f"64-{hidden}-10",
                K,
                B,
                f"{seq['median_s']:.2f}",
                f"{vm['median_s']:.2f}",
                f"{K / seq['median_s']:.1f}",
                f"{K / vm['median_s']:.1f}",
                f"**{r['speedup']:.2f}x**",
                f"{seq['median_cpu_s']:.2f} / {vm['median_cpu_s']:.2f} ({r['cpu_speedup']:.2f}x)",
                f"{seq['compile_s']:.1f} / {vm['compile_s']:.1f}",
                f"{r['max_abs_test_acc_diff']:.1e}",
                f"{min(l[0] for l in vm['loadavg'] if l):.1f}-{max(l[0] for l in vm['loadavg'] if l):.1f}" if any(vm["loadavg"]) else "n/a",
            ]
            rows.append(row)
            print(
                f"64-{hidden}-10 K={K} B={B}: sequential {seq['median_s']:.2f}s vmapped {vm['median_s']:.2f}s speedup {r['speedup']:.2f}x "
                f"(CPU time {r['cpu_speedup']:.2f}x)",
                flush=True,
            )
    header = [
        "network",
        "K configs",
        "batch",
        "sequential wall (s)",
        "vmapped wall (s)",
        "seq. configs/s",
        "vmapped configs/s",
        "speedup (wall)",
        "process CPU s: seq / vmap (ratio)",
        "first call s: seq / vmap",
        "max Δ test acc",
        "load avg (1 min)",
    ]
    parts = [time_parts(max(ks), b, h, T) for h in hiddens for b in batches]
    parts_table = C.markdown_table(
        ["network", "batch", "one config's matmul GFLOP/s", f"K={max(ks)} as one batched dot GFLOP/s", "ns per random uniform"],
        [[f"64-{p['hidden']}-10", p["batch"], f"{p['matmul_one_config_gflops']:.0f}", f"{p['matmul_batched_gflops']:.0f}",
          f"{p['ns_per_uniform']:.1f}"] for p in parts],
    )
    table = C.markdown_table(header, rows) + "\n\nWhere the time goes (input-layer matmul `[T*B, 64] @ [64, H]`, and the rate code's random numbers):\n\n" + parts_table
    print()
    print(table)
    print()
    print(f"machine: {info['cpu_model']}, {info.get('cpus_usable')} usable CPUs, load avg at end {_load()}")
    if args.json:
        C.atomic_write_json(
            args.json,
            {
                "benchmark": "bench_sweep",
                "quick": quick,
                "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
                "description": "K configurations trained one after another (one jitted program) vs as one vmapped sweep",
                "machine": info,
                "loadavg_end": _load(),
                "results": results,
                "parts": parts,
                "markdown": table,
            },
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
