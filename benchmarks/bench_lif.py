"""Speed of feedforward Linear+LIF networks in spikejax against the dense-matmul floor.

Full run (from the repository root, in the project venv, on a quiet machine):

    python benchmarks/bench_lif.py --json benchmarks/results/bench_lif.json

Smoke test (tiny sizes, seconds):

    python benchmarks/bench_lif.py --quick --json /tmp/bench_lif-quick.json

Other flags: ``--configs mlp512,long512`` (default: all four), ``--repeats N`` (minimum timed
repeats per measurement, default 7; fast measurements repeat until ``--min-time`` seconds).

What is timed, per configuration (see ``benchmarks/_common.py`` for the shapes):

* ``spikejax``: ``spikejax.nn.SpikingMLP(LIF(fast_sigmoid(25), reset="subtract"), readout="spikes")``
  on Bernoulli(0.1) input spikes ``[T, B, n_in]``, float32, every layer Linear + LIF, weights
  ``init_mlp(gain=16)`` so every layer spikes.  By default SpikingMLP runs these layers through the
  fused LIF layer (``spikejax.neurons.fused.lif_sequence``); ``--fused off`` times the generic
  ``simulate()`` scan instead.
  ``fwd``: the jitted forward pass (output spike trains).  ``fwd+bwd``: the jitted
  ``value_and_grad`` of a scalar loss (mean squared error of the output spike counts against a
  fixed target) w.r.t. all weights and biases.
* ``floor``: the dense matrix products alone for the same shapes, jitted.  ``fwd``: ``x_l @ W_l``
  for every layer over the ``[T*B, n_in]`` rows.  ``fwd+bwd``: those, plus the weight-gradient
  products ``x_l^T @ g_l`` of every layer, plus the input-gradient products ``g_l @ W_l^T`` of
  every layer but the first (whose input needs no gradient).
* ``ratio`` = spikejax median / floor median.

Times are medians over repeated calls with ``block_until_ready``, the spikejax and floor calls of a
configuration interleaved (so load from elsewhere on a shared machine hits both alike); the first
call (trace + compile + one run) is reported separately as ``compile``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from spikejax.neurons import LIF  # noqa: E402
from spikejax.nn import SpikingMLP, init_mlp  # noqa: E402
from spikejax.surrogate import fast_sigmoid  # noqa: E402


def _pkg_version(name):
    import importlib.metadata as m

    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None


def _sync(tree):
    return jax.block_until_ready(tree)


def make_inputs(cfg, seed=0):
    sizes, B, T = cfg["sizes"], cfg["batch"], cfg["steps"]
    k_in, k_w, k_t, k_f = jax.random.split(jax.random.PRNGKey(seed), 4)
    x = jax.random.bernoulli(k_in, C.P_IN, (T, B, sizes[0])).astype(jnp.float32)
    layers = init_mlp(k_w, sizes, gain=C.W_GAIN)
    target = jax.random.uniform(k_t, (B, sizes[-1]), jnp.float32, 0.0, 2.0)
    # floor operands: 0/1 "spike" inputs for every layer and dense cotangents of every layer output
    kx = jax.random.split(k_f, 2 * (len(sizes) - 1))
    TB = T * B
    xs = [x.reshape(TB, sizes[0])] + [
        jax.random.bernoulli(kx[i], C.P_IN, (TB, n)).astype(jnp.float32) for i, n in enumerate(sizes[1:-1], start=1)
    ]
    gs = [jax.random.normal(kx[len(sizes) - 1 + i], (TB, n), jnp.float32) for i, n in enumerate(sizes[1:])]
    return x, layers, target, xs, gs


def spikejax_fns(unroll=1, fused=None):
    neuron = LIF(spike_fn=fast_sigmoid(C.SURROGATE_SLOPE), reset="subtract")
    net = SpikingMLP(neuron=neuron, readout="spikes", dt=C.DT, unroll=unroll, fused=fused)
    nparams = neuron.params(tau_mem=C.TAU_MEM, v_th=C.V_TH, dtype=jnp.float32)

    def forward(layers, x):
        return net(layers, nparams, x)

    def loss(layers, x, target):
        counts = jnp.sum(forward(layers, x), axis=0)
        return jnp.mean((counts - target) ** 2)

    def rates(layers, x):  # untimed: mean spike rate of every layer
        out, hidden = net(layers, nparams, x, record_hidden=True)
        return [jnp.mean(h) for h in hidden] + [jnp.mean(out)]

    return jax.jit(forward), jax.jit(jax.value_and_grad(loss)), jax.jit(rates)


def floor_fns():
    def fwd(ws, xs):
        return [x @ w for x, w in zip(xs, ws)]

    def fwdbwd(ws, xs, gs):
        outs = [x @ w for x, w in zip(xs, ws)]
        wgrads = [x.T @ g for x, g in zip(xs, gs)]
        igrads = [g @ w.T for g, w in zip(gs[1:], ws[1:])]
        return outs, wgrads, igrads

    return jax.jit(fwd), jax.jit(fwdbwd)


def temp_mb(jitted, args):
    """XLA's temporary-buffer size of the compiled function in MB (None where unavailable).

    XLA:CPU allocates it afresh on every call; above glibc's largest mmap threshold (32 MiB) it
    is mapped and unmapped each call, and its page faults show up as ``cpu_sys``/``minflt``."""
    try:
        return jitted.lower(*args).compile().memory_analysis().temp_size_in_bytes / 1e6
    except Exception:
        return None


def flops(cfg):
    TB = cfg["batch"] * cfg["steps"]
    prods = [2 * TB * a * b for a, b in zip(cfg["sizes"][:-1], cfg["sizes"][1:])]
    return {"fwd": sum(prods), "fwd+bwd": 2 * sum(prods) + sum(prods[1:])}


def bench_config(name, cfg, args):
    x, layers, target, xs, gs = make_inputs(cfg)
    ws = [l.w for l in layers]
    fused = {"auto": None, "off": False}[args.fused]
    sj_fwd, sj_fwdbwd, sj_rates = spikejax_fns(args.unroll, fused)
    res_unroll = args.unroll
    fl_fwd, fl_fwdbwd = floor_fns()

    res = {"config": name, "shape": C.describe(cfg), **cfg, "flops": flops(cfg), "unroll": res_unroll,
           "fused": args.fused, "w_gain": C.W_GAIN}
    # activity (untimed): mean spike rate per layer, so a silent network is visible in the results
    sj_jits, sj_args = {"fwd": sj_fwd, "fwd+bwd": sj_fwdbwd}, {"fwd": (layers, x), "fwd+bwd": (layers, x, target)}
    fl_jits, fl_args = {"fwd": fl_fwd, "fwd+bwd": fl_fwdbwd}, {"fwd": (ws, xs), "fwd+bwd": (ws, xs, gs)}
    res["spike_rate_per_layer"] = [float(r) for r in sj_rates(layers, x)]

    for mode, sj_call, fl_call in (
        ("fwd", lambda: sj_fwd(layers, x), lambda: fl_fwd(ws, xs)),
        ("fwd+bwd", lambda: sj_fwdbwd(layers, x, target), lambda: fl_fwdbwd(ws, xs, gs)),
    ):
        # interleaved (spikejax, floor, spikejax, ...): load bursts on a shared machine hit both alike
        tt = C.time_interleaved({"spikejax": sj_call, "floor": fl_call}, _sync, repeats=args.repeats, min_time=args.min_time)
        sj_t, fl_t = tt["spikejax"], tt["floor"]
        res[mode] = {
            "spikejax": sj_t,
            "floor": fl_t,
            "xla_temp_mb": {"spikejax": temp_mb(sj_jits[mode], sj_args[mode]), "floor": temp_mb(fl_jits[mode], fl_args[mode])},
            "ratio": sj_t["median_s"] / fl_t["median_s"],
            "floor_gflops": res["flops"][mode] / fl_t["median_s"] / 1e9,
        }
        print(
            f"  {name:9s} {mode:8s} spikejax {C.fmt_ms(sj_t['median_s'])} ms (x{sj_t['repeats']}, compile "
            f"{sj_t['first_s']:.2f} s)  floor {C.fmt_ms(fl_t['median_s'])} ms  ratio {res[mode]['ratio']:.2f}",
            flush=True,
        )
    return res


def table(results):
    header = ["config", "shape", "pass", "compile s", "spikejax ms", "floor ms", "ratio", "floor GFLOP/s",
              "sj temp MB", "sj faults/call", "repeats"]
    rows = []
    for r in results:
        for mode in ("fwd", "fwd+bwd"):
            m = r[mode]
            rows.append([
                r["config"], r["shape"], mode, f"{m['spikejax']['first_s']:.2f}", C.fmt_ms(m["spikejax"]["median_s"]),
                C.fmt_ms(m["floor"]["median_s"]), f"{m['ratio']:.2f}", f"{m['floor_gflops']:.1f}",
                "n/a" if m["xla_temp_mb"]["spikejax"] is None else f"{m['xla_temp_mb']['spikejax']:.1f}",
                f"{m['spikejax'].get('minflt_per_call', float('nan')):.0f}",
                f"{m['spikejax']['repeats']}/{m['floor']['repeats']}",
            ])
    return C.markdown_table(header, rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="all", help=f"comma-separated subset of {','.join(C.CONFIGS)} (default all)")
    ap.add_argument("--repeats", type=int, default=7, help="minimum timed repeats per measurement (>= 5 for reporting)")
    ap.add_argument("--min-time", type=float, default=2.0, help="keep repeating until this many seconds were timed")
    ap.add_argument("--fused", choices=["auto", "off"], default="auto",
                    help="auto: SpikingMLP's default (the fused LIF layer, spikejax.neurons.fused); off: generic simulate() scan")
    ap.add_argument("--unroll", type=int, default=1, help="lax.scan unroll factor of the LIF time loop (SpikingMLP(unroll=...))")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, few repeats: a smoke test, not a measurement")
    ap.add_argument("--json", default=None, help="write the results here (atomically)")
    C.add_malloc_flag(ap)
    args = ap.parse_args(argv)
    malloc_tuned = C.tune_malloc(args.malloc == "tuned")
    if args.quick:
        args.repeats = min(args.repeats, 3)
        args.min_time = 0.0
    configs = C.select_configs(args.configs, args.quick)

    info = C.machine_info()
    info["malloc"] = {"requested": args.malloc, "tuned": malloc_tuned}
    info.update(jax_version=jax.__version__, jaxlib_version=_pkg_version("jaxlib"),
                jax_backend=jax.default_backend(), devices=[str(d) for d in jax.devices()])
    with_spikejax = {}
    try:
        from spikejax.experiment import environment_info

        with_spikejax = environment_info()
    except Exception as e:  # pragma: no cover - informational only
        with_spikejax = {"error": repr(e)}
    print(f"# spikejax LIF benchmark{' (QUICK: smoke-test sizes, not a measurement)' if args.quick else ''}")
    print(f"machine: {info['cpu_model']}, {info['cpu_count']} cores (usable {info.get('cpus_usable')}), "
          f"load {info.get('loadavg_1_5_15')}; jax {jax.__version__}, backend {jax.default_backend()}; malloc {args.malloc}", flush=True)

    t_start = time.time()
    results = [bench_config(name, cfg, args) for name, cfg in configs.items()]
    print()
    print(table(results))
    out = {
        "benchmark": "bench_lif",
        "quick": args.quick,
        "args": vars(args),
        "machine": info,
        "environment": with_spikejax,
        "settings": {"p_in": C.P_IN, "tau_mem": C.TAU_MEM, "dt": C.DT, "v_th": C.V_TH,
                     "surrogate": f"fast_sigmoid({C.SURROGATE_SLOPE})", "reset": "subtract", "dtype": "float32"},
        "wall_s": time.time() - t_start,
        "results": results,
    }
    if args.json:
        C.atomic_write_json(args.json, out)
        print(f"\nwrote {args.json}")
    return out


if __name__ == "__main__":
    main()
