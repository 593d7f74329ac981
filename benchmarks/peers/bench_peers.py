"""Peer SNN libraries (snnTorch, Norse, Spyx) on the same Linear+LIF configurations as
benchmarks/bench_lif.py.  Runs in the SEPARATE peers virtualenv; the peers are never spikejax
dependencies.

Full run (from the repository root, on a quiet machine):

    bash benchmarks/peers/setup_peers.sh                       # once: builds benchmarks/peers/.venv
    benchmarks/peers/.venv/bin/python benchmarks/peers/bench_peers.py \
        --json benchmarks/results/bench_peers.json --compare benchmarks/results/bench_lif.json

Smoke test (tiny sizes, seconds):

    benchmarks/peers/.venv/bin/python benchmarks/peers/bench_peers.py --quick --json /tmp/bench_peers-quick.json \
        --compare /tmp/bench_lif-quick.json      # optional: needs a --quick bench_lif.py run first

Flags: ``--libs snntorch,norse,norse-box,spyx`` (default all), ``--configs mlp512,long512,...``
(default all four), ``--repeats N`` (minimum timed repeats, default 7), ``--min-time S``
(fast measurements repeat until S seconds were timed), ``--threads N`` (torch threads; default
all cores), ``--compare bench_lif.json`` (add spikejax's times from a bench_lif.py run of the
same machine and the peer/spikejax ratio).

Each library's idiomatic feedforward network, float32, CPU, inputs Bernoulli(0.1) spikes
``[T, B, n_in]`` (the same shapes and loss as bench_lif.py):

* ``snntorch``: ``nn.Linear`` + ``snn.Leaky(beta, spike_grad=surrogate.fast_sigmoid(25),
  reset_mechanism="subtract")`` per layer, a Python loop over time steps (step-major), eager.
* ``norse``: ``norse.torch.SequentialState(nn.Linear, norse.torch.LIF(p), ...)`` applied to the
  whole ``[T, B, n]`` sequence: each ``nn.Linear`` runs over all time steps at once (layer-major),
  ``norse.torch.LIF`` loops over time in Python.  Norse's LIF is current-based (it has a synaptic
  current ``i``) and resets to ``v_reset`` (no subtract option); surrogate ``method="super"``
  (SuperSpike = fast sigmoid), ``alpha=25``.
* ``norse-box``: the closest Norse model to spikejax's ``LIF``: ``LIFBoxCell`` (no synaptic
  current) with ``reset_method=reset_subtract``, ``SequentialState(nn.Linear, LIFBoxCell, ...)``
  stepped over time in a Python loop (step-major).
* ``spyx``: ``spyx.nn.Sequential(nnx.Linear, spyx.nn.LIF(beta, activation=spyx.axn.superspike(25)),
  ...)`` driven by ``spyx.nn.run`` (one ``lax.scan`` over time, Linear inside the step),
  Flax NNX; the pure function from ``nnx.split``/``nnx.merge`` is ``jax.jit``-ed, gradients are
  taken w.r.t. the ``nnx.Param`` state.

``fwd``: forward only (torch under ``torch.no_grad()``); ``fwd+bwd``: forward, the scalar loss
``mean((spike_counts - target)^2)`` and the gradient w.r.t. all weights and biases.  Medians over
repeated calls; for Spyx (jitted) the first call (trace + compile) is reported as ``compile``;
for torch (eager) the first call is reported the same way (no compilation, just warm-up).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

BETA = math.exp(-C.DT / C.TAU_MEM)  # per-step membrane decay of the discrete models
LIBS = ("snntorch", "norse", "norse-box", "spyx")


def _version(name):
    import importlib.metadata as m

    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# torch-based peers


def _torch_data(cfg, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    T, B, sizes = cfg["steps"], cfg["batch"], cfg["sizes"]
    x = (torch.rand(T, B, sizes[0], generator=g) < C.P_IN).float()
    target = 2.0 * torch.rand(B, sizes[-1], generator=g)
    return x, target


def build_snntorch(cfg):
    import snntorch as snn
    import torch
    from snntorch import surrogate

    sizes = cfg["sizes"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fcs = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            self.lifs = torch.nn.ModuleList(
                snn.Leaky(beta=BETA, threshold=C.V_TH, spike_grad=surrogate.fast_sigmoid(slope=C.SURROGATE_SLOPE),
                          reset_mechanism="subtract")
                for _ in sizes[1:]
            )

        def forward(self, x):  # x [T, B, n_in] -> output spikes [T, B, n_out]
            mems = [lif.init_leaky() for lif in self.lifs]
            out = []
            for t in range(x.shape[0]):
                h = x[t]
                for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                    h, mems[i] = lif(fc(h), mems[i])
                out.append(h)
            return torch.stack(out)

    return Net()


def build_norse(cfg):
    import norse.torch as norse
    import torch

    sizes = cfg["sizes"]
    p = norse.LIFParameters(tau_mem_inv=torch.as_tensor(1.0 / C.TAU_MEM), v_th=torch.as_tensor(C.V_TH),
                            method="super", alpha=torch.as_tensor(C.SURROGATE_SLOPE))
    mods = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        mods += [torch.nn.Linear(a, b), norse.LIF(p, dt=C.DT)]
    model = norse.SequentialState(*mods)

    def forward(x):
        out, _ = model(x)
        return out

    return model, forward


def build_norse_box(cfg):
    import norse.torch as norse
    import torch
    from norse.torch.functional.reset import reset_subtract

    sizes = cfg["sizes"]
    p = norse.LIFBoxParameters(tau_mem_inv=torch.as_tensor(1.0 / C.TAU_MEM), v_th=torch.as_tensor(C.V_TH),
                               method="super", alpha=torch.as_tensor(C.SURROGATE_SLOPE), reset_method=reset_subtract)
    mods = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        mods += [torch.nn.Linear(a, b), norse.LIFBoxCell(p, dt=C.DT)]
    model = norse.SequentialState(*mods)

    def forward(x):
        state = None
        out = []
        for t in range(x.shape[0]):
            z, state = model(x[t], state)
            out.append(z)
        return torch.stack(out)

    return model, forward


def bench_torch(lib, cfg, args):
    import torch

    torch.manual_seed(0)
    if lib == "snntorch":
        model = build_snntorch(cfg)
        forward = model
    elif lib == "norse":
        model, forward = build_norse(cfg)
    else:
        model, forward = build_norse_box(cfg)
    x, target = _torch_data(cfg)
    params = [p for p in model.parameters() if p.requires_grad]

    def fwd():
        with torch.no_grad():
            return forward(x)

    def fwdbwd():
        for p in params:
            p.grad = None
        out = forward(x)
        loss = ((out.sum(0) - target) ** 2).mean()
        loss.backward()
        return loss

    rates = float(fwd().mean())
    res = {"output_spike_rate": rates}
    for mode, fn in (("fwd", fwd), ("fwd+bwd", fwdbwd)):
        res[mode] = C.time_fn(fn, lambda r: r, repeats=args.repeats, min_time=args.min_time)
    return res


# ---------------------------------------------------------------------------------------------
# Spyx (JAX + Flax NNX)


def bench_spyx(cfg, args):
    import jax
    import jax.numpy as jnp
    import spyx
    from flax import nnx

    sizes = cfg["sizes"]
    rngs = nnx.Rngs(0)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nnx.Linear(a, b, rngs=rngs),
                   spyx.nn.LIF((b,), beta=BETA, threshold=C.V_TH, activation=spyx.axn.superspike(C.SURROGATE_SLOPE),
                               rngs=rngs)]
    model = spyx.nn.Sequential(*layers)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    k_in, k_t = jax.random.split(jax.random.PRNGKey(0))
    T, B = cfg["steps"], cfg["batch"]
    x = jax.random.bernoulli(k_in, C.P_IN, (T, B, sizes[0])).astype(jnp.float32)
    target = jax.random.uniform(k_t, (B, sizes[-1]), jnp.float32, 0.0, 2.0)

    def forward(params, x):
        m = nnx.merge(graphdef, params, rest)
        out, _ = spyx.nn.run(m, x)
        return out

    def loss(params, x, target):
        counts = jnp.sum(forward(params, x), axis=0)
        return jnp.mean((counts - target) ** 2)

    fwd = jax.jit(forward)
    fwdbwd = jax.jit(jax.value_and_grad(loss))
    res = {}
    res["fwd"] = C.time_fn(lambda: fwd(params, x), jax.block_until_ready, repeats=args.repeats, min_time=args.min_time)
    res["fwd+bwd"] = C.time_fn(lambda: fwdbwd(params, x, target), jax.block_until_ready, repeats=args.repeats,
                               min_time=args.min_time)
    res["output_spike_rate"] = float(jnp.mean(fwd(params, x)))
    return res


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--libs", default=",".join(LIBS), help=f"comma-separated subset of {','.join(LIBS)}")
    ap.add_argument("--configs", default="all", help=f"comma-separated subset of {','.join(C.CONFIGS)} (default all)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, few repeats: a smoke test, not a measurement")
    ap.add_argument("--json", default=None)
    ap.add_argument("--compare", default=None, metavar="BENCH_LIF_JSON",
                    help="a bench_lif.py results file: adds spikejax's median and the peer/spikejax ratio")
    C.add_malloc_flag(ap)
    args = ap.parse_args(argv)
    malloc_tuned = C.tune_malloc(args.malloc == "tuned")
    if args.quick:
        args.repeats = min(args.repeats, 3)
        args.min_time = 0.0
    libs = [s.strip() for s in args.libs.split(",") if s.strip()]
    for lib in libs:
        if lib not in LIBS:
            raise SystemExit(f"unknown lib {lib!r}; choose from {', '.join(LIBS)}")
    configs = C.select_configs(args.configs, args.quick)

    info = C.machine_info()
    info["malloc"] = {"requested": args.malloc, "tuned": malloc_tuned}
    info["versions"] = {p: _version(p) for p in ("torch", "snntorch", "norse", "spyx", "jax", "jaxlib", "flax", "numpy")}
    all_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n_threads = args.threads or all_cores
    if any(lib != "spyx" for lib in libs):
        try:
            import torch

            torch.set_num_threads(n_threads)
            info["torch_threads"] = torch.get_num_threads()
        except Exception as e:
            info["torch_error"] = repr(e)
    if "spyx" in libs:
        try:
            import jax

            info["jax_backend"] = jax.default_backend()
            info["devices"] = [str(d) for d in jax.devices()]
        except Exception as e:
            info["jax_error"] = repr(e)
    print(f"# peer SNN libraries benchmark{' (QUICK: smoke-test sizes, not a measurement)' if args.quick else ''}")
    print(f"machine: {info['cpu_model']}, {info['cpu_count']} cores, load {info.get('loadavg_1_5_15')}; "
          f"torch threads {info.get('torch_threads')}; versions {info['versions']}", flush=True)

    results = []
    t_start = time.time()
    for name, cfg in configs.items():
        for lib in libs:
            entry = {"lib": lib, "version": _version("norse" if lib.startswith("norse") else lib), "config": name,
                     "shape": C.describe(cfg), **cfg}
            try:
                entry.update(bench_spyx(cfg, args) if lib == "spyx" else bench_torch(lib, cfg, args))
                print(f"  {name:9s} {lib:10s} fwd {C.fmt_ms(entry['fwd']['median_s'])} ms  "
                      f"fwd+bwd {C.fmt_ms(entry['fwd+bwd']['median_s'])} ms", flush=True)
            except Exception as e:
                entry["error"] = f"{type(e).__name__}: {e}"
                entry["traceback"] = traceback.format_exc()
                print(f"  {name:9s} {lib:10s} FAILED: {entry['error']}", flush=True)
            results.append(entry)

    ref = {}
    if args.compare:
        import json

        with open(args.compare) as f:
            lif = json.load(f)
        if bool(lif.get("quick")) != bool(args.quick):
            print(f"WARNING: {args.compare} has quick={lif.get('quick')}, this run quick={args.quick}: shapes differ")
        for r in lif["results"]:
            for mode in ("fwd", "fwd+bwd"):
                ref[(r["config"], mode)] = r[mode]["spikejax"]["median_s"]
    header = ["config", "shape", "lib", "pass", "first call s", "median ms", "repeats"]
    if ref:
        header += ["spikejax ms", "peer/spikejax"]
    rows = []
    for r in results:
        for mode in ("fwd", "fwd+bwd"):
            if "error" in r:
                row = [r["config"], r["shape"], r["lib"], mode, "-", f"ERROR: {r['error'][:60]}", "-"]
            else:
                m = r[mode]
                row = [r["config"], r["shape"], r["lib"], mode, f"{m['first_s']:.2f}", C.fmt_ms(m["median_s"]), m["repeats"]]
            if ref:
                sj = ref.get((r["config"], mode))
                row += [C.fmt_ms(sj), "-" if sj is None or "error" in r else f"{r[mode]['median_s'] / sj:.2f}"]
                if sj is not None and "error" not in r:
                    r[mode]["spikejax_median_s"] = sj
            rows.append(row)
    print()
    print(C.markdown_table(header, rows))
    out = {"benchmark": "bench_peers", "quick": args.quick, "args": vars(args), "machine": info,
           "settings": {"p_in": C.P_IN, "beta": BETA, "tau_mem": C.TAU_MEM, "dt": C.DT, "v_th": C.V_TH,
                        "surrogate_slope": C.SURROGATE_SLOPE, "dtype": "float32"},
           "wall_s": time.time() - t_start, "results": results}
    if args.json:
        C.atomic_write_json(args.json, out)
        print(f"\nwrote {args.json}")
    return out


if __name__ == "__main__":
    main()
