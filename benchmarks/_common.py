"""Shared, dependency-free pieces of the speed benchmarks (bench_lif.py and peers/bench_peers.py).

Pure Python + the standard library only, so that it imports in the peers' separate virtualenv
(which has no spikejax) as well as in the project's one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

# Benchmark configurations.  ``sizes`` lists the layer widths (input first); every layer after the
# input is Linear + LIF (reset by subtraction, fast-sigmoid surrogate, float32).  Inputs are
# Bernoulli(p_in) spike trains of shape [steps, batch, sizes[0]].
#   mlp512   = (a)  784-512-512-10,     batch 64, 25 steps
#   long512  = (b)  512-512,            batch 16, 500 steps
#   mlp4096  = (c)  784-4096-4096-10,   batch 64, 25 steps
#   long4096 = (c)  4096-4096,          batch 16, 500 steps
CONFIGS: dict[str, dict] = {
    "mlp512": dict(sizes=(784, 512, 512, 10), batch=64, steps=25),
    "long512": dict(sizes=(512, 512), batch=16, steps=500),
    "mlp4096": dict(sizes=(784, 4096, 4096, 10), batch=64, steps=25),
    "long4096": dict(sizes=(4096, 4096), batch=16, steps=500),
}
# --quick: the same four shapes shrunk to smoke-test sizes (seconds in total).
QUICK_CONFIGS: dict[str, dict] = {
    "mlp512": dict(sizes=(64, 32, 32, 10), batch=4, steps=5),
    "long512": dict(sizes=(32, 32), batch=2, steps=20),
    "mlp4096": dict(sizes=(64, 48, 48, 10), batch=4, steps=5),
    "long4096": dict(sizes=(48, 48), batch=2, steps=20),
}
P_IN = 0.1  # input spike probability per step
# spikejax weight scale: init_mlp(gain=W_GAIN) (He-uniform x gain).  With gain 1 the current-driven
# LIF layers of these shapes stay silent; 16 makes every layer spike (about 2-5% of neurons per
# step, recorded as spike_rate_per_layer).  Dense compute does not depend on activity.
W_GAIN = 16.0
TAU_MEM = 20e-3  # s
DT = 1e-3  # s
V_TH = 1.0
SURROGATE_SLOPE = 25.0  # fast sigmoid 1/(1 + slope|x|)^2


def select_configs(names: str | None, quick: bool) -> dict[str, dict]:
    table = QUICK_CONFIGS if quick else CONFIGS
    if not names or names == "all":
        return dict(table)
    out = {}
    for n in names.split(","):
        n = n.strip()
        if n not in table:
            raise SystemExit(f"unknown config {n!r}; choose from {', '.join(table)} (comma separated) or 'all'")
        out[n] = table[n]
    return out


def describe(cfg: dict) -> str:
    return f"{'-'.join(map(str, cfg['sizes']))} B{cfg['batch']} T{cfg['steps']}"


# ---------------------------------------------------------------------------------------------
# Timing


def time_fn(fn: Callable[[], Any], sync: Callable[[Any], Any], *, repeats: int, min_time: float, max_repeats: int = 1000) -> dict:
    """Time ``sync(fn())``.

    The first call is timed alone (``first_s``: for a jitted function it includes tracing and
    compilation).  One untimed warm-up call follows; then at least ``repeats`` timed calls, and
    more (up to ``max_repeats``) until ``min_time`` seconds of timed calls have been spent, so
    fast configurations get many repeats.  Returns the median and spread in seconds, plus the
    process CPU time (user, sys) and minor page faults per timed call (Linux ``getrusage``; a
    large ``sys``/``minflt`` means the allocator maps fresh pages on every call).
    """
    r = time_interleaved({"fn": fn}, sync, repeats=repeats, min_time=min_time, max_repeats=max_repeats)["fn"]
    del r["interleaved"]  # one function: nothing to interleave with
    return r


def time_interleaved(fns: dict[str, Callable[[], Any]], sync: Callable[[Any], Any], *, repeats: int, min_time: float,
                     max_repeats: int = 1000) -> dict[str, dict]:
    """Time several functions with their calls interleaved (a, b, a, b, ...), so that a burst of load
    from elsewhere on a shared machine hits every function alike and their ratio stays meaningful.

    Per function, the statistics of :func:`time_fn` (``first_s``, median, min, max, IQR, repeats,
    CPU time and minor page faults counted around that function's own calls)."""
    first = {}
    for k, fn in fns.items():
        t0 = time.perf_counter()
        sync(fn())
        first[k] = time.perf_counter() - t0
        sync(fn())  # warm-up
    try:
        import resource
    except ImportError:  # pragma: no cover - non-POSIX
        resource = None
    times: dict[str, list[float]] = {k: [] for k in fns}
    usage = {k: [0.0, 0.0, 0] for k in fns}  # user s, sys s, minor faults (summed per function)
    spent = 0.0
    while True:
        n = len(next(iter(times.values())))
        if n >= repeats and (spent >= min_time or n >= max_repeats):
            break
        for k, fn in fns.items():
            r0 = resource.getrusage(resource.RUSAGE_SELF) if resource else None
            t0 = time.perf_counter()
            sync(fn())
            dt = time.perf_counter() - t0
            if r0 is not None:
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                u = usage[k]
                u[0] += r1.ru_utime - r0.ru_utime
                u[1] += r1.ru_stime - r0.ru_stime
                u[2] += r1.ru_minflt - r0.ru_minflt
            times[k].append(dt)
            spent += dt
    out = {}
    for k, ts in times.items():
        ts.sort()
        out[k] = {
            "first_s": first[k],
            "median_s": statistics.median(ts),
            "min_s": ts[0],
            "max_s": ts[-1],
            "iqr_s": (ts[(3 * len(ts)) // 4] - ts[len(ts) // 4]) if len(ts) >= 4 else float("nan"),
            "repeats": len(ts),
            "interleaved": True,
        }
        if resource is not None:
            n = len(ts)
            out[k].update(cpu_user_s_per_call=usage[k][0] / n, cpu_sys_s_per_call=usage[k][1] / n,
                          minflt_per_call=usage[k][2] / n)
    return out


# ---------------------------------------------------------------------------------------------
# Machine information


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tune_malloc(enabled: bool) -> bool:
    """Apply spikejax.runtime.tune_cpu_allocator (stdlib-only module, loaded by path so that the
    peers' venv, which has no spikejax, gets the very same allocator settings)."""
    if not enabled:
        return False
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "spikejax" / "runtime.py"
    spec = importlib.util.spec_from_file_location("_spikejax_runtime", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.tune_cpu_allocator()


def add_malloc_flag(ap) -> None:
    ap.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                    help="tuned (default): glibc serves large blocks from its heap (spikejax.runtime); "
                         "default: glibc as configured")


def machine_info() -> dict:
    info = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": platform.node(),
    }
    with contextlib.suppress(AttributeError, OSError):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, AttributeError):
        info["loadavg_1_5_15"] = list(os.getloadavg())
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    for var in ("XLA_FLAGS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "JAX_PLATFORMS", "CUDA_VISIBLE_DEVICES", "LD_PRELOAD",
                "MALLOC_CONF", "GLIBC_TUNABLES"):
        if var in os.environ:
            info.setdefault("env", {})[var] = os.environ[var]
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if out.stdout.strip():
            info["git_commit"] = out.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        pass
    if "git_commit" not in info and os.environ.get("SPIKEJAX_GIT_COMMIT"):
        # a copy of the tree without .git (the GPU machine, see benchmarks/gpu.sh): the commit it was copied from
        info["git_commit"] = os.environ["SPIKEJAX_GIT_COMMIT"]
    gpus = gpu_info()
    if gpus:
        info["gpus"] = gpus
    return info


def gpu_info() -> list[str]:
    """``"name, driver, memory"`` of each NVIDIA GPU that ``nvidia-smi`` lists (empty without one)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


# ---------------------------------------------------------------------------------------------
# Output


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    return obj


def atomic_write_json(path, obj) -> Path:
    """Atomic JSON write (temporary file + os.replace); spikejax.experiment's when importable."""
    try:
        from spikejax.experiment import atomic_write_json as _w  # noqa: PLC0415

        return _w(path, obj)
    except ImportError:
        pass
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(obj), f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def fmt_ms(seconds) -> str:
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return "n/a"
    ms = 1e3 * seconds
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
