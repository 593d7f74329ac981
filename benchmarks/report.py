"""Regenerate BENCHMARKS.md from the committed benchmark results files (never typed by hand).

    python benchmarks/report.py            # writes BENCHMARKS.md at the repository root

Sections are filled from, when present:

* ``benchmarks/results/bench_lif.json`` (and ``bench_lif-malloc-default.json``): spikejax vs the
  matmul floor (``benchmarks/bench_lif.py``);
* ``benchmarks/results/bench_peers.json``: snnTorch / Norse / Spyx on the same work
  (``benchmarks/peers/bench_peers.py``);
* ``benchmarks/results/bench_sweep.json``: vmapped sweep vs one-after-another
  (``benchmarks/bench_sweep.py``);
* ``benchmarks/results/bench_erbp.json``: eRBP training throughput (``benchmarks/bench_erbp.py``);
* ``benchmarks/results/bench_whetstone_conv.json``: Whetstone CNN training step per convolution
  implementation and epoch mode (``benchmarks/bench_whetstone_conv.py``);
* ``results/softlif_dropout_diabetes.json``: permanent-dropout samples, one vmapped call vs a
  Python loop (measured inside that experiment).

A missing file leaves its section saying so, with the command that produces it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RES = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _ms(s):
    return C.fmt_ms(s)


def _machine_line(m: dict, extra: str = "") -> str:
    load = m.get("loadavg_1_5_15")
    load_s = f"load average (1/5/15 min) at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}" if load else "load n/a"
    commit = m.get("git_commit", "n/a")
    gpu = f"; GPU: {'; '.join(m['gpus'])}" if m.get("gpus") else ""
    return (f"Machine: {m.get('cpu_model', '?')}, {m.get('cpus_usable', m.get('cpu_count', '?'))} usable cores, "
            f"{m.get('mem_total_gib', '?')} GiB{gpu}; {load_s}; commit `{commit[:12]}`{extra}.")


# (label, results file, command flags): the default run first; the others show what each choice buys
LIF_VARIANTS = (
    ("default", "bench_lif.json", ""),
    ("generic scan", "bench_lif-generic.json", " --fused off"),
    ("malloc default", "bench_lif-malloc-default.json", " --malloc default"),
)


def lif_section(out: list[str]) -> dict:
    recs = [(label, _load(RES / fname)) for label, fname, _ in LIF_VARIANTS]
    tuned = recs[0][1]
    out.append("## Linear + LIF networks vs the matmul floor (issue 2)\n")
    out.append("Commands (project venv, repository root):\n")
    out.append("```bash\n" + "".join(f"python benchmarks/bench_lif.py{flags} --json benchmarks/results/{fname}\n"
                                      for _, fname, flags in LIF_VARIANTS) + "```\n")
    if tuned is None:
        out.append("_Not measured yet (no `benchmarks/results/bench_lif.json`)._\n")
        return {}
    m = tuned["machine"]
    out.append(_machine_line(m, f"; jax {m.get('jax_version', '?')}, backend {m.get('jax_backend', '?')}") + "\n")
    out.append("Every layer after the input is Linear + LIF (subtractive reset, fast-sigmoid surrogate, float32); "
               "inputs are Bernoulli(0.1) spikes `[T, B, n_in]`. `fwd`: output spike trains; `fwd+bwd`: "
               "`value_and_grad` of a loss on the output spike counts. Floor: the dense matrix products alone "
               "(forward products; plus weight- and input-gradient products for `fwd+bwd`). Medians over "
               "repeated calls with `block_until_ready`; compile time (first call) reported separately. "
               "Variants: `default` = what a user gets (SpikingMLP's fused LIF layer, "
               "`spikejax.neurons.fused.lif_sequence`, and `spikejax.runtime.tune_cpu_allocator()`: glibc serves "
               "XLA's large temporaries from its heap instead of fresh mmaps, see `faults/call`); `generic scan` = "
               "`--fused off` (autodiff of `simulate(LIF.step)`); `malloc default` = glibc's default allocator "
               "settings. Each variant's row has its own floor, measured in the same run; `timing`: `interleaved` = "
               "spikejax and floor calls alternate (current `bench_lif.py`: a load burst on this shared machine hits "
               "both alike), `sequential` = all spikejax calls, then all floor calls (older runs). Weights: "
               f"`init_mlp(gain={C.W_GAIN:g})`; mean spike rate per step of each layer in `rates`.\n")
    rows = ["| config | shape | pass | variant | compile s | spikejax ms | floor ms | spikejax / floor | page faults per call | rates | repeats | timing |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by = {}
    for label, rec in recs:
        if rec is None:
            continue
        for r in rec["results"]:
            for mode in ("fwd", "fwd+bwd"):
                e = r[mode]
                by[(r["config"], mode, label)] = e
                rows.append(
                    f"| {r['config']} | {r['shape']} | {mode} | {label} | {e['spikejax']['first_s']:.2f} | "
                    f"{_ms(e['spikejax']['median_s'])} | {_ms(e['floor']['median_s'])} | **{e['ratio']:.2f}** | "
                    f"{e['spikejax'].get('minflt_per_call', float('nan')):.0f} | "
                    f"{' / '.join(f'{x:.3f}' for x in r.get('spike_rate_per_layer', []))} | {e['spikejax']['repeats']} | "
                    f"{'interleaved' if e['spikejax'].get('interleaved') else 'sequential'} |")
    out.append("\n".join(rows) + "\n")
    worst = max((v["ratio"], k) for k, v in by.items() if k[2] == "default")
    out.append(f"Target (issue 2): within 1.5x of the floor on every configuration. Worst ratio of the default "
               f"variant: **{worst[0]:.2f}** ({worst[1][0]} {worst[1][1]}).\n")
    return {(k[0], k[1]): v["spikejax"]["median_s"] for k, v in by.items() if k[2] == "default"}


def peers_section(out: list[str], sj: dict) -> None:
    rec = _load(RES / "bench_peers.json")
    out.append("## spikejax vs snnTorch, Norse and Spyx (issue 2)\n")
    out.append("Command (the peers live in their own virtualenv, never spikejax dependencies):\n")
    out.append("```bash\nbash benchmarks/peers/setup_peers.sh\nbenchmarks/peers/.venv/bin/python benchmarks/peers/bench_peers.py "
               "--json benchmarks/results/bench_peers.json --compare benchmarks/results/bench_lif.json\n```\n")
    if rec is None:
        out.append("_Not measured yet (no `benchmarks/results/bench_peers.json`)._\n")
        return
    m = rec["machine"]
    vers = ", ".join(f"{k} {v}" for k, v in rec["machine"].get("versions", {}).items() if v)
    out.append(_machine_line(m, f"; {vers}; torch threads {m.get('torch_threads', '?')}") + "\n")
    rows = ["| config | shape | library | pass | peer ms | spikejax ms | peer / spikejax |", "|---|---|---|---|---|---|---|"]
    wins, total = 0, 0
    for r in rec["results"]:
        for mode in ("fwd", "fwd+bwd"):
            e = r.get(mode)
            if not e or "median_s" not in e:
                rows.append(f"| {r['config']} | {r['shape']} | {r['lib']} | {mode} | {e.get('error', 'n/a') if e else 'n/a'} | | |")
                continue
            s = sj.get((r["config"], mode), e.get("spikejax_median_s"))
            ratio = e["median_s"] / s if s else float("nan")
            total += 1
            wins += ratio > 1
            rows.append(f"| {r['config']} | {r['shape']} | {r['lib']} {r.get('version', '')} | {mode} | {_ms(e['median_s'])} | "
                        f"{_ms(s) if s else 'n/a'} | **{ratio:.2f}** |")
    out.append("\n".join(rows) + "\n")
    out.append(f"spikejax is faster in {wins} of {total} (library, configuration, pass) comparisons "
               "(peer / spikejax > 1 means spikejax is faster).\n")


def _embedded(out: list[str], title: str, fname: str, command: str, intro: str = "") -> None:
    rec = _load(RES / fname)
    out.append(f"## {title}\n")
    if intro:
        out.append(intro + "\n")
    out.append(f"Command:\n\n```bash\n{command}\n```\n")
    if rec is None:
        out.append(f"_Not measured yet (no `benchmarks/results/{fname}`)._\n")
        return
    if "machine" in rec:
        out.append(_machine_line(rec["machine"]) + "\n")
    if rec.get("description"):
        out.append(rec["description"].rstrip(".") + ".\n")
    out.append(rec.get("markdown", "_(no table in the results file)_") + "\n")


def _sequential_s(fname: str, hidden: int, batch: int) -> dict[int, float] | None:
    """Median wall seconds of the sequential path per K in a bench_sweep results file."""
    rec = _load(RES / fname)
    if rec is None:
        return None
    return {r["K"]: r["sequential"]["median_s"] for r in rec["results"] if r["sizes"][1] == hidden and r["batch"] == batch}


def _host_devices_intro() -> str:
    text = ("`--host-devices 2` starts JAX with two CPU devices (`--xla_force_host_platform_device_count=2`; "
            "`jax.config.update(\"jax_num_cpu_devices\", 2)` does the same), so `spikejax.sweep.sweep` shards the K "
            "configurations over both cores and runs the two halves in parallel. The sequential column is the same loop "
            "as above, run in the same process on device 0; compare it with the single-device table above too.")
    one, four = _sequential_s("bench_sweep.json", 32, 8), _sequential_s("bench_sweep_hd4.json", 32, 8)
    ks = sorted(set(one or {}) & set(four or {}))
    if ks:  # more devices than cores slows the sequential loop down (and inflates the ratio)
        text += (" Not more devices than cores: with four devices on these two cores "
                 "(`python benchmarks/bench_sweep.py --host-devices 4 --hidden 32 --batch 8 --json "
                 "benchmarks/results/bench_sweep_hd4.json`) the sequential loop of 64-32-10 at batch 8 took "
                 + " / ".join(f"{four[k]:.2f}" for k in ks) + " s for K = " + " / ".join(map(str, ks))
                 + ", against " + " / ".join(f"{one[k]:.2f}" for k in ks) + " s on one device.")
    return text


def dropout_section(out: list[str], path: Path | None = None, title: str = "", command: str = "") -> None:
    out.append(f"## Permanent dropout: 1,000 samples in one vmapped call vs a Python loop (issue 6){title}\n")
    command = command or "python -m experiments softlif_dropout_diabetes"
    out.append(f"Command (measured inside the experiment, same run):\n\n```bash\n{command}\n```\n")
    rec = _load(path or ROOT / "results" / "softlif_dropout_diabetes.json")
    if rec is None:
        out.append("_Not measured yet._\n")
        return
    sp = rec["metrics"]["speed"]
    env = rec["environment"]
    gpu = f", device: {'; '.join(env['device_kinds'])}" if env.get("jax_backend") not in (None, "cpu") else ""
    out.append(f"Machine: {env.get('processor')}, {env.get('cpu_count')} cores{gpu}, jax {env['packages'].get('jax')}, "
               f"backend {env.get('jax_backend')}; commit `{(env.get('git_commit') or '')[:12]}`. {sp.get('note', '')}\n")
    rows = ["| inputs | vmapped (one call) ms | vmapped, chunks of 64 ms | loop of jitted calls ms | loop, one sync ms | "
            "eager loop ms (extrapolated) | speedup vs jitted loop | vs eager loop |", "|---|---|---|---|---|---|---|---|"]
    for label, t in ((f"{sp['n_observations']} observations (test set)", sp), ("1 observation", sp["single_observation"])):
        rows.append(f"| {label} | {t['vmapped_s']*1e3:.1f} | {t['vmapped_chunks64_s']*1e3:.1f} | {t['loop_s']*1e3:.1f} | "
                    f"{t['loop_async_s']*1e3:.1f} | {t['loop_eager_s_extrapolated']*1e3:.0f} | **{t['speedup']:.1f}x** | "
                    f"{t['speedup_vs_eager_loop']:.0f}x |")
    out.append("\n".join(rows) + "\n")
    out.append(f"Target (issue 6): at least 20x over the loop, for {sp['n_samples']} samples over the whole test set.\n")


def build() -> str:
    out = ["# Benchmarks\n",
           "Generated by `python benchmarks/report.py` from the results files in `benchmarks/results/` (and, for "
           "permanent dropout, `results/`); re-run a section's command, then the report, to refresh it. The CPU "
           "sections ran on this project's 2-core CPU machine; GPU runs, when one is lent, go to the last sections. Wall-clock numbers "
           "on a shared machine are noisy: each section records the load average when it ran.\n"]
    sj = lif_section(out)
    peers_section(out, sj)
    _embedded(out, "Vmapped hyperparameter sweep vs one configuration after another (issue 8)", "bench_sweep.json",
              "python benchmarks/bench_sweep.py --json benchmarks/results/bench_sweep.json")
    _embedded(out, "The same sweep with the CPU split into one XLA device per core (issue 8)", "bench_sweep_hd2.json",
              "python benchmarks/bench_sweep.py --host-devices 2 --json benchmarks/results/bench_sweep_hd2.json",
              intro=_host_devices_intro())
    _embedded(out, "eRBP training throughput (issue 5)", "bench_erbp.json",
              "python benchmarks/bench_erbp.py --mask-modes shared,per_sample,per_sample_offset --json benchmarks/results/bench_erbp.json")
    _embedded(out, "Whetstone CNN training step: convolution implementation x scanned epoch or one call per step (issue 4)",
              "bench_whetstone_conv.json", "python benchmarks/bench_whetstone_conv.py --json benchmarks/results/bench_whetstone_conv.json")
    dropout_section(out)
    gpu_sections(out)
    return "\n".join(out)


GPU_COMMAND = "bash benchmarks/gpu.sh  # on the GPU machine; see benchmarks/README.md, 'On a GPU'"


def gpu_sections(out: list[str]) -> None:
    """The same benchmarks on a GPU (``benchmarks/gpu.sh``), for the results files it wrote."""
    files = [RES / f for f in ("bench_sweep-gpu.json", "bench_erbp-gpu.json", "softlif_dropout_diabetes-gpu.json")]
    if not any(f.exists() for f in files):
        out.append("## On a GPU\n")
        out.append("_Not measured yet_: no GPU has been lent to this project's sessions. `benchmarks/gpu.sh` runs the "
                   "sweep, eRBP and permanent-dropout benchmarks on one (see benchmarks/README.md, 'On a GPU'); its "
                   "results files (`benchmarks/results/*-gpu.json`) add their sections here.\n")
        return
    _embedded(out, "Vmapped hyperparameter sweep vs one configuration after another, on a GPU (issue 8)",
              "bench_sweep-gpu.json", GPU_COMMAND)
    _embedded(out, "eRBP training throughput, on a GPU (issue 5)", "bench_erbp-gpu.json", GPU_COMMAND)
    dropout_section(out, RES / "softlif_dropout_diabetes-gpu.json", ", on a GPU", GPU_COMMAND)


def main() -> int:
    text = build()
    path = ROOT / "BENCHMARKS.md"
    tmp = path.with_name(".BENCHMARKS.md.tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomic
    print(ROOT / "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
