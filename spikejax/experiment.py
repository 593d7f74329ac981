"""Reproducible experiment machinery: config as code, self-describing results files, atomic
writes, checkpoint/resume and progress reporting.

An experiment is a module with

* ``CONFIG``: a dict of defaults (plain Python values; the types are used to parse ``--set``),
* ``QUICK``: a dict of overrides giving a small smoke configuration,
* ``CLAIMS`` (optional): published claims the results are compared with,
* ``run(cfg: dict, ctx: Context) -> dict``: returns the metrics (JSON-serialisable),
* ``result_tag(cfg) -> str`` (optional): for modules that run several variants (the rows of a
  table), a suffix naming the variant, so each writes ``<name>-<tag>.json``.

:func:`run_experiment` runs it and writes ``<out>/<name>[-quick].json`` atomically with the
config, seed, git commit, package versions, device, wall time and metrics.  Long runs call
``ctx.save_checkpoint(step, state)`` / ``ctx.load_checkpoint()`` to resume after an
interruption without losing finished work.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "parse_overrides",
    "Context",
    "run_experiment",
    "environment_info",
    "load_results",
]

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scipy", "mip", "scikit-learn", "optuna", "spikejax")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give results the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _to_jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy / jax arrays and scalars
        return _to_jsonable(np.asarray(obj).tolist())
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(path: os.PathLike, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(_to_jsonable(obj), indent=1, sort_keys=False) + "\n").encode())


def load_results(path: os.PathLike) -> dict:
    with open(path) as f:
        return json.load(f)


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() or None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if commit:
            return f"{commit}{'+dirty' if dirty else ''}"
    except Exception:
        pass
    # a copy of the tree without .git (the GPU machine, see benchmarks/gpu.sh): the commit it was copied from
    return os.environ.get("SPIKEJAX_GIT_COMMIT") or None


from . import runtime as _runtime  # noqa: E402


def environment_info() -> dict:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    import jax

    devices = [str(d) for d in jax.devices()]
    return {
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": devices,
        "device_kinds": sorted({d.device_kind for d in jax.devices()}),
        "packages": versions,
        "malloc_tuned": _runtime.allocator_tuned(),
        "loadavg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _parse_value(raw: str, default):
    if isinstance(default, bool):
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {raw!r}")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, str):
        return raw
    return ast.literal_eval(raw)  # lists, tuples, None


def parse_overrides(config: dict, items: list[str]) -> dict:
    """Apply ``key=value`` strings to a copy of ``config``; unknown keys list the valid ones."""
    cfg = dict(config)
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        k, raw = item.split("=", 1)
        k = k.strip()
        if k not in config:
            raise ValueError(f"unknown config key {k!r}; valid keys: {', '.join(sorted(config))}")
        try:
            cfg[k] = _parse_value(raw.strip(), config[k])
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"bad value for {k!r}: {raw!r} ({e})") from None
    return cfg


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(_to_jsonable(cfg), sort_keys=True).encode()).hexdigest()[:16]


class Context:
    """Handed to an experiment's ``run``: checkpoints, progress and auxiliary output paths."""

    def __init__(self, name: str, cfg: dict, out_dir: Path, ckpt_dir: Path, quiet: bool = False, stem: str | None = None):
        self.name = name
        self.stem = stem or f"{name}{'-quick' if cfg.get('_quick') else ''}"
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.ckpt_dir = Path(ckpt_dir)
        self.quiet = quiet
        self.t0 = time.time()
        self._hash = config_hash(cfg)
        self.resumed_from: int | None = None
        self._n: int | None = None  # the n of the current progress loop
        self._from = (0, self.t0)  # (step, time) the ETA's pace is measured from
        self._last = self.t0  # time of the last report (or of the resume)

    # -- progress ------------------------------------------------------------------------------
    def log(self, msg: str):
        if not self.quiet:
            print(f"[{self.name} {time.time() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def progress(self, i: int, n: int, **metrics):
        """Report step ``i`` of ``n`` (1-based) with metrics and an ETA.

        The ETA uses the pace of the steps run by this process only: after a resume from step k,
        the k steps done before it took no time here and must not make the rest look faster.
        A call with a new ``n`` starts a new series (e.g. evaluation after training), timed from
        the previous report.
        """
        now = time.time()
        if n != self._n:
            if self._n is not None or i <= self._from[0]:  # a later loop, or one the resume step does not count
                self._from = (0, self._last)
            self._n = n
        i0, t_from = self._from
        self._last = now
        done = i - i0
        eta = (now - t_from) / done * (n - i) if done > 0 else float("nan")
        ms = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        self.log(f"{i}/{n} {ms} (eta {eta:.0f}s)")

    # -- checkpoints ---------------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path:
        return self.ckpt_dir / f"{self.name}-{self._hash}.ckpt"

    def save_checkpoint(self, step: int, state: Any):
        import jax

        payload = {"step": int(step), "config_hash": self._hash, "state": jax.device_get(state)}
        atomic_write_bytes(self.ckpt_path, pickle.dumps(payload))

    def load_checkpoint(self):
        """Return ``(step, state)`` of the last checkpoint of this exact config, or ``None``."""
        if not self.ckpt_path.exists():
            return None
        with open(self.ckpt_path, "rb") as f:
            payload = pickle.load(f)
        if payload.get("config_hash") != self._hash:
            return None
        self.resumed_from = payload["step"]
        self._from = (int(payload["step"]), time.time())
        self._last = self._from[1]
        self.log(f"resuming from checkpoint step {payload['step']} ({self.ckpt_path})")
        return payload["step"], payload["state"]

    def clear_checkpoint(self):
        with contextlib.suppress(FileNotFoundError):
            self.ckpt_path.unlink()

    def aux_path(self, suffix: str) -> Path:
        """Path for a side file of this run (e.g. ``"raster.npz"``) next to the results file."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / f"{self.stem}.{suffix}"

    def save_npz(self, suffix: str, **arrays) -> Path:
        """Write arrays to the side file ``aux_path(suffix)`` atomically (compressed npz)."""
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return atomic_write_bytes(self.aux_path(suffix), buf.getvalue())


def run_experiment(
    module,
    *,
    quick: bool = False,
    overrides: list[str] | None = None,
    out_dir: os.PathLike = "results",
    ckpt_dir: os.PathLike | None = None,
    quiet: bool = False,
) -> Path:
    """Run an experiment module; return the path of its results file."""
    name = module.__name__.rsplit(".", 1)[-1]
    cfg = dict(module.CONFIG)
    if quick:
        cfg.update(getattr(module, "QUICK", {}))
    cfg = parse_overrides(cfg, list(overrides or []))
    cfg["_quick"] = bool(quick)
    out_dir = Path(out_dir)
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else Path(os.environ.get("SPIKEJAX_CKPT", "runs"))
    # modules that run several variants (rows of a table) name them with result_tag(cfg)
    tag = module.result_tag(cfg) if hasattr(module, "result_tag") else ""
    stem = f"{name}{'-' + tag if tag else ''}{'-quick' if quick else ''}"
    ctx = Context(name, cfg, out_dir, ckpt_dir, quiet=quiet, stem=stem)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.time()
    metrics = module.run(cfg, ctx)
    wall = time.time() - t0
    record = {
        "experiment": name,
        "description": (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else "",
        "command": f"python -m experiments {name}{' --quick' if quick else ''}"
        + "".join(f" --set {o}" for o in (overrides or [])),
        "quick": bool(quick),
        "config": {k: v for k, v in cfg.items() if not k.startswith("_")},
        "seed": cfg.get("seed"),
        "started_utc": started,
        "wall_time_s": round(wall, 2),
        "resumed_from_step": ctx.resumed_from,
        "environment": environment_info(),
        "claims": getattr(module, "CLAIMS", []),
        "metrics": metrics,
    }
    path = out_dir / f"{stem}.json"
    atomic_write_json(path, record)
    ctx.clear_checkpoint()
    ctx.log(f"wrote {path} ({wall:.1f}s)")
    return path
